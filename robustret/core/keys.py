"""Cache keys: one fingerprint helper and the hash of the code that produced a cached value.

Every cached artefact (trained models, gallery embeddings, finished conditions, decoded data)
is stored under a key built with :func:`fingerprint` from everything that affects it, including
:func:`source_hash` of the modules whose code computed it: after an edit to that code, or to
any first-party module it imports, the key changes and the artefact is recomputed instead of
silently reused. An edit to a module that the code does not import (a command beside it)
leaves the key alone.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

FIRST_PARTY = ("robustret", "degradations", "restoration")
"""Top-level packages whose imports :func:`source_hash` follows (besides a module's own)."""


def fingerprint(*parts: Any) -> str:
    """A short stable hash (16 hex digits) of JSON-serialisable ``parts``.

    Dict keys are sorted and unknown objects (paths, dtypes) go through ``str``, so the same
    values give the same key in every process and on every machine.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class _Source(NamedTuple):
    """One module's source bytes and the first-party modules its import statements name."""

    data: bytes
    imports: tuple[str, ...]


@lru_cache(maxsize=None)
def _locate(module: str) -> tuple[Path | None, bool] | None:
    """The source file of ``module`` (None for a namespace package: a folder without an
    ``__init__.py``) and whether it is a package, or None when there is no such module.

    Only the top-level name is looked up on ``sys.path``; the rest is found on disk, so that
    nothing is imported (no package ``__init__`` runs).
    """
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec (__main__)
        return None
    if spec is None or (spec.origin is not None and not spec.origin.endswith(".py")):
        return None
    path = Path(spec.origin) if spec.origin is not None else None
    folders = [Path(folder) for folder in spec.submodule_search_locations or []]
    for part in parts[1:]:
        found, namespace = None, []
        for folder in folders:
            if (folder / part / "__init__.py").is_file():
                found = (folder / part / "__init__.py", [folder / part])
                break
            if (folder / f"{part}.py").is_file():
                found = (folder / f"{part}.py", [])
                break
            if (folder / part).is_dir():
                namespace.append(folder / part)
        if found is None and not namespace:
            return None
        path, folders = found if found is not None else (None, namespace)
    return path, path is None or path.name == "__init__.py"


def _named_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
                   roots: set[str]) -> list[str]:
    """The dotted names under ``roots`` that an import statement of ``module`` loads
    (``from p import m`` names the submodule ``p.m`` when there is one, else ``p``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] in roots]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        if node.level - 1 >= len(anchor):
            return []  # climbs above the top-level package: not importable
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    if base.split(".")[0] not in roots:
        return []
    return [f"{base}.{alias.name}" if _locate(f"{base}.{alias.name}") else base
            for alias in node.names]


@lru_cache(maxsize=None)
def _module(module: str) -> _Source | None:
    """The source of ``module`` and the first-party modules it imports (import statements
    anywhere in it, read with :mod:`ast`), or None when there is no such module.

    An import is followed when its top-level package is the module's own or in
    :data:`FIRST_PARTY`; a dotted name that is not a module (``import p.attr`` cannot be, but
    ``from p import attr`` can) counts as its longest prefix that is one.
    """
    located = _locate(module)
    if located is None:
        return None
    path, is_package = located
    if path is None:
        return _Source(b"", ())  # a namespace package: no code of its own
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError:
        return _Source(data, ())  # cannot run either; its bytes are still its key
    roots = {*FIRST_PARTY, module.split(".")[0]}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for name in _named_modules(module, is_package, node, roots):
            while name and _locate(name) is None:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return _Source(data, tuple(sorted(found)))


def _closure(module: str) -> Iterator[tuple[str, bytes]]:
    """``module`` and every first-party module it imports, transitively, with their sources."""
    if _module(module) is None:
        raise ValueError(f"cannot hash the source of {module!r}: no such module")
    seen, pending = {module}, [module]
    while pending:
        name = pending.pop()
        source = _module(name)
        if source is None:
            continue
        yield name, source.data
        for other in source.imports:
            if other not in seen:  # a cycle ends here
                seen.add(other)
                pending.append(other)


@lru_cache(maxsize=None)
def _hash_of(module: str) -> str:
    """SHA-256 (hex) of the names and bytes of ``module`` and the modules it imports."""
    digest = hashlib.sha256()
    for name, data in sorted(_closure(module)):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(data)
        digest.update(b"\0")
    return digest.hexdigest()


_CACHES = (_hash_of, _module, _locate)  # the real ones, also while a test replaces _hash_of


def clear_source_cache() -> None:
    """Forget every source read so far: the next :func:`source_hash` reads the files again
    (for tests that edit source files within one process)."""
    for cached in _CACHES:
        cached.cache_clear()


def source_hash(*modules: str) -> str:
    """Hash (16 hex digits) of the source of ``modules`` and of what they import.

    A module counts with every first-party module (:data:`FIRST_PARTY`, or its own top-level
    package) that its import statements name, transitively; a package is its ``__init__.py``
    and what that imports, not every file below it. Dynamic imports (``importlib``) are not
    seen.

    Args:
        modules: dotted names, e.g. ``"degradations"``, ``"robustret.retrieval"``.
    Returns:
        A key part that changes whenever any byte of those files changes, or a module among
        them is renamed. Files are read once per process (the hash is cached), so edits made
        while a run is going count from the next run on.
    Raises:
        ValueError: a name that is not a module with Python source.
    """
    return fingerprint(*(_hash_of(name) for name in sorted(set(modules))))
