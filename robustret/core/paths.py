"""Where robustret keeps caches (decoded data sets, trained models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder, created on demand.

    ``$ROBUSTRET_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/robustret`` or
    ``~/.cache/robustret``. ``parts`` name a sub-folder.
    """
    root = os.environ.get("ROBUSTRET_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robustret"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
