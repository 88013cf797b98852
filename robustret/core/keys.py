"""Cache keys: one fingerprint helper and the hash of the code that produced a cached value.

Every cached artefact (trained models, gallery embeddings, finished conditions, decoded data)
is stored under a key built with :func:`fingerprint` from everything that affects it, including
:func:`source_hash` of the packages whose code computed it: after any edit to that code the key
changes and the artefact is recomputed instead of silently reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A short stable hash (16 hex digits) of JSON-serialisable ``parts``.

    Dict keys are sorted and unknown objects (paths, dtypes) go through ``str``, so the same
    values give the same key in every process and on every machine.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _source_files(module: str) -> tuple[Path, list[Path]]:
    """The folder the paths are named relative to, and the sorted source files of ``module``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot hash the source of {module!r}: no such module")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every .py file below it
        return origin.parent, sorted(origin.parent.rglob("*.py"))
    return origin.parent, [origin]


@lru_cache(maxsize=None)
def _hash_of(module: str) -> str:
    digest = hashlib.sha256()
    root, files = _source_files(module)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def source_hash(*modules: str) -> str:
    """Hash (16 hex digits) of the source files of ``modules`` (packages: every ``.py`` below).

    Args:
        modules: dotted names, e.g. ``"degradations"``, ``"robustret.retrieval"``.
    Returns:
        A key part that changes whenever any byte of those files changes. Files are read once
        per process (the hash is cached), so edits made while a run is going count from the
        next run on.
    Raises:
        ValueError: a name that is not an importable module.
    """
    return fingerprint(*(_hash_of(name) for name in sorted(set(modules))))
