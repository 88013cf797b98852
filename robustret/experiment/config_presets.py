"""The profiles' presets of a configuration's sections: ``[retriever]`` and each
``[restorers.NAME]`` as overrides of the profile's training settings, and the profile's image
size."""

from __future__ import annotations

import dataclasses
from typing import Any

from robustret.core.checks import ConfigError
from robustret.experiment.recipes import train_config
from robustret.train.classifier import RetrieverTrainConfig
from robustret.train.restorer_config import RestorerTrainConfig

PROFILES = ("quick", "paper")
#: What each profile sets in the data: the quick profile resizes to 64 px (minutes on a CPU).
PROFILE_IMAGE_SIZE: dict[str, int | None] = {"quick": 64, "paper": None}


def check_profile(profile: object) -> str:
    """``profile`` when it is one of :data:`PROFILES`."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return str(profile)


def section_values(cls: type, overrides: dict[str, Any], label: str) -> dict[str, Any]:
    """The overrides of a ``[label]`` section of ``cls`` (lists as tuples); unknown keys are a
    ConfigError listing the valid ones."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in [{label}]; "
                          f"valid: {', '.join(valid)}")
    return {k: tuple(v) if isinstance(v, list) and k != "model_options" else v
            for k, v in overrides.items()}


def retriever_preset(profile: str, overrides: dict[str, Any]) -> RetrieverTrainConfig:
    """The profile's retriever training settings with ``overrides``."""
    values = section_values(RetrieverTrainConfig, overrides, "retriever")
    preset = RetrieverTrainConfig.paper if profile == "paper" else RetrieverTrainConfig.quick
    try:
        return preset(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[retriever]: {exc}") from exc


def several(severities: object) -> bool:
    """Whether ``severities`` (a config value; None: the default, one) names more than one, so
    that a restorer learns several at once (a recipe's ``sweep`` schedule)."""
    return isinstance(severities, (list, tuple)) and len(set(severities)) > 1


def restorer_preset(profile: str, name: str, overrides: dict[str, Any], *,
                    sweep: bool = False) -> RestorerTrainConfig:
    """The profile's training settings of restorer recipe ``name`` with ``overrides``."""
    values = section_values(RestorerTrainConfig, overrides, f"restorers.{name}")
    model = values.pop("model", None)
    try:
        section = train_config(name, profile, sweep=sweep, **values)
        if model is not None and model != section.model:
            raise ConfigError(f"[restorers.{name}] trains model {model!r}; recipe {name} is the "
                              f"network {section.model!r}")
        return section
    except KeyError as exc:
        raise ConfigError(f"[restorers.{name}]: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[restorers.{name}]: {exc}") from exc
