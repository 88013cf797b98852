"""Where robustret keeps caches (decoded data sets, trained models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder (not created): ``$ROBUSTRET_CACHE`` wins; otherwise
    ``$XDG_CACHE_HOME/robustret`` or ``~/.cache/robustret``."""
    root = os.environ.get("ROBUSTRET_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robustret"


def cache_dir(*parts: str) -> Path:
    """The cache folder :func:`cache_root`, or its sub-folder ``parts``, created on demand.

    A folder that cannot be created (a read-only or full disk) is returned all the same: a
    reader finds nothing in it, and a writer meets the disk's refusal
    (:func:`robustret.core.io.write_optional_cache` turns it into one warning for optional
    caches).
    """
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # reported by whoever writes into it
    return path
