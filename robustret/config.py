"""The experiment configuration: one frozen dataclass, loadable from TOML, saved as JSON.

Precedence: dataclass defaults < ``--config file.toml`` < explicit command-line flags.
Unknown keys are an error that lists the valid ones; validation lives in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILES = ("quick", "paper")
RESTORE_CHOICES = ("none", "dae", "srcnn", "classical", "auto", "all")
METRICS = ("l2", "cosine")
NOISE_FAMILY = ("noise", "gaussian_noise", "salt_pepper", "speckle")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one experiment run.

    Attributes:
        dataset: ``synthetic``, ``smallnorb:PATH`` or ``folder:PATH``.
        dataset_options: extra options of that reader (e.g. ``{"camera": 1}`` for smallNORB,
            ``{"instance_pattern": "obj(\\d+)__"}`` for a folder, view counts for ``synthetic``).
        degradations: names from ``degradations.available()``.
        severities: levels 1..5 (3 = the study's parameters).
        restore: ``none``, ``dae``, ``srcnn``, ``classical``, ``auto`` (the study's pairing:
            autoencoder for noise, SRCNN for low resolution and motion blur) or ``all``.
        metrics: ``l2`` and/or ``cosine``.
        ks: the k of top-k matching accuracy.
        profile: ``quick`` (minutes on a laptop CPU) or ``paper`` (the study's schedule).
        seed: the one seed every other seed derives from.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        out_dir: where results, logs and TensorBoard files go.
        weights: a local torchvision checkpoint to start the backbone from.
        backbone: retriever backbone (``resnet34`` as in the study).
        image_size: resize images to this square size (None: the profile's default).
        per_class: cap on images per class in each split (None: the profile's default).
        train_degrade: degradations used as training augmentation for the retriever.
        retriever_epochs, restorer_epochs: override the profile's epoch counts.
        cache_dir: where trained models are cached (None: ``robustret.paths.cache_dir()``).
        tensorboard: write TensorBoard logs.
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    degradations: tuple[str, ...] = ("noise",)
    severities: tuple[int, ...] = (3,)
    restore: str = "auto"
    metrics: tuple[str, ...] = METRICS
    ks: tuple[int, ...] = (1, 5, 10)
    profile: str = "quick"
    seed: int = 0
    device: str = "auto"
    out_dir: Path = Path("experiments/results/default")
    weights: Path | None = None
    backbone: str = "resnet34"
    image_size: int | None = None
    per_class: int | None = None
    train_degrade: tuple[str, ...] = ()
    retriever_epochs: int | None = None
    restorer_epochs: int | None = None
    cache_dir: Path | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name in ("degradations", "severities", "metrics", "ks", "train_degrade"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        for name in ("out_dir", "weights", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.restore not in RESTORE_CHOICES:
            raise ValueError(f"unknown restore mode {self.restore!r}; choose one of {', '.join(RESTORE_CHOICES)}")
        if not self.degradations:
            raise ValueError("at least one degradation is needed")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            raise ValueError(f"unknown metric {bad}; choose from {', '.join(METRICS)}")
        bad_sev = [s for s in self.severities if not isinstance(s, int) or not 1 <= s <= 5]
        if bad_sev or not self.severities:
            raise ValueError(f"severity must be an integer 1..5; got {list(self.severities)}")
        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"topk values must be positive integers; got {list(self.ks)}")
        for name in ("image_size", "per_class", "retriever_epochs", "restorer_epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if "epochs" in name else 1)):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        """The valid configuration keys."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build from a plain dict; unknown keys raise a ``ValueError`` listing the valid ones."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(cls.field_names())}")
        return cls(**values)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for key, value in dataclasses.asdict(self).items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a dict of :class:`ExperimentConfig` keys.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts`` (cache keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
