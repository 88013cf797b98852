"""Reading a configuration file: TOML, or the ``config.json`` a run writes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the backport (setup.cfg requires it there)
    import tomli as tomllib

from robustret import __version__
from robustret.core.checks import ConfigError
from robustret.core.keys import source_hash

log = logging.getLogger(__name__)

CODE_KEY = "code"
"""The key of ``config.json`` that records the code that wrote it (not a setting)."""


def code_record() -> dict[str, str]:
    """What ``config.json`` records of the code that ran it: robustret's version and the hash
    of the run's source (:func:`robustret.core.keys.source_hash` of the runner and all it
    imports)."""
    return {"version": __version__, "source": source_hash("robustret.experiment.runner")}


def load_config_file(path: str | Path, *, settings: Sequence[str] = ()) -> dict[str, Any]:
    """Read a TOML config file, or the JSON ``config.json`` a run wrote, into a dict.

    A ``config.json`` also records ``world_size`` (how many processes ran it, a fact of the
    run, not a setting: torchrun decides it) and the code that wrote it (:func:`code_record`);
    both are left out of the returned settings. One written by other code (another version or
    source, or from before ``config.json`` recorded its code) is read as written, with one
    warning naming that code and those of ``settings`` (the valid keys) the file lacks, which
    take today's defaults: an old file never silently runs another pipeline.

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
        _note_other_code(path, values.pop(CODE_KEY, None), values, settings)
        return values
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc



def _note_other_code(path: Path, recorded: object, values: Mapping[str, Any],
                     settings: Sequence[str]) -> None:
    """One warning when ``recorded`` (a ``config.json``'s code record) is not today's."""
    today = code_record()
    if recorded == today:
        return
    written = (f"version {recorded.get('version')}, source {recorded.get('source')}"
               if isinstance(recorded, Mapping) else "code that did not record itself")
    missing = [name for name in settings if name not in values]
    lacks = f", and those it lacks take today's defaults: {', '.join(missing)}" if missing else ""
    log.warning("%s was written by other code (%s; today: version %s, source %s); its settings "
                "are used as written%s", path, written, today["version"], today["source"], lacks)
