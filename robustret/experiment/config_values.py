"""The checks of single values of an experiment configuration
(:class:`robustret.experiment.config.ExperimentConfig`): integers, names, paths, the index and
its options, the device; each bad value is a :class:`~robustret.core.checks.ConfigError`
saying what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustret.core.checks import ConfigError
from robustret.core.device import resolve_device
from robustret.retrieval.ann import check_options
from robustret.retrieval.index_kinds import APPROXIMATE, index_kind


def as_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """``value`` when it is an integer in ``low..high`` (not a bool; no upper bound: None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}; got {value!r}")
    return value


def as_strings(value: object, name: str) -> tuple[str, ...]:
    """A name or a list of names, as a tuple."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{name} must be a list of names; got {value!r}")
    return tuple(items)


def as_ints(value: object, name: str, low: int, high: int | None = None) -> tuple[int, ...]:
    """An integer or a non-empty list of distinct integers in ``low..high``, as a tuple."""
    items = (value,) if isinstance(value, int) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{name} must be a non-empty list of integers; got {value!r}")
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int) or v < low
           or (high is not None and v > high)]
    if bad:
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be integers {span}; got {list(items)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{name} lists a value twice: {list(items)}")
    return tuple(items)


def as_path(value: object, name: str) -> Path | None:
    """None, or a path from a non-empty string."""
    if value is None:
        return None
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a path (a string); got {value!r}")
    return Path(value)


def plain(value: Any) -> Any:
    """JSON-ready: paths as strings, tuples as lists, inside dicts and lists too."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def index_options(index: object, options: object) -> dict[str, int]:
    """Check the index name and its options' names and kinds (values against the gallery
    size are checked once the data is loaded, :func:`robustret.experiment.runner.run`)."""
    try:
        kind = index_kind(index)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if not isinstance(options, Mapping):
        raise ConfigError(f"index_options must be a table; got {options!r}")
    if not kind.approximate:
        if options:
            raise ConfigError(f"index_options apply to the approximate indexes "
                              f"({', '.join(APPROXIMATE)}); index {index} takes none")
        return {}
    try:
        return check_options(kind.backend, options)
    except ValueError as exc:
        raise ConfigError(f"index_options: {exc}") from exc


def check_device(spec: str) -> None:
    """A device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    try:
        resolve_device(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
