"""Reading a configuration file: TOML, or the ``config.json`` a run writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the backport (setup.cfg requires it there)
    import tomli as tomllib

from robustret.core.checks import ConfigError


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, or the JSON ``config.json`` a run wrote, into a dict.

    A ``config.json`` also records ``world_size`` (how many processes ran it, a fact of the
    run, not a setting: torchrun decides it); it is left out of the returned settings.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is not valid TOML / JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text file (TOML or JSON): {exc.reason} at byte "
                          f"{exc.start}; pass a configuration such as "
                          "experiments/configs/smoke.toml") from exc
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a JSON object of settings")
        values.pop("world_size", None)
        return values
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


load_toml = load_config_file
