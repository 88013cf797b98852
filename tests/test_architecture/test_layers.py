"""The house's architecture, enforced: packages are layers, imports flow down, nothing cycles.

Every import statement of every first-party module is read from its AST (function-local ones
included), so an import that climbs a layer, or closes a cycle, fails here with its file and
line. The table is docs/architecture.md's; each package's docstring states its row.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOTS = ("robustret", "degradations", "restoration")

CORE = {"robustret", "robustret.core"}
LEAVES = CORE | {"degradations", "restoration", "robustret.data", "robustret.models",
                 "robustret.retrieval"}
MIDDLE = LEAVES | {"robustret.train", "robustret.evaluation"}

#: package -> the packages its modules may import (besides its own modules)
MAY_IMPORT: dict[str, set[str]] = {
    "robustret": set(),
    "robustret.core": {"robustret"},
    "degradations": CORE,
    "restoration": CORE | {"degradations"},  # the Wiener filter builds the blur's kernel
    "robustret.data": CORE,
    "robustret.models": CORE,
    "robustret.retrieval": CORE,
    "robustret.train": LEAVES,
    "robustret.evaluation": LEAVES,
    "robustret.report": MIDDLE,
    "robustret.experiment": MIDDLE | {"robustret.report"},
    "robustret.cli": {"*"},
    "robustret.demo": {"*"},
}

#: command shims: entry points that nothing imports; each only calls a ``robustret.cli`` main
SHIMS = {"restoration.train", "restoration.evaluate"}


@dataclass(frozen=True)
class Import:
    """One first-party import: who imports what, where, and whether inside a function."""

    importer: str
    target: str
    line: int
    local: bool


def _modules() -> dict[str, Path]:
    found = {}
    for root in ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    """The row of the layer table a module belongs to (its longest listed prefix)."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in MAY_IMPORT:
            return prefix
    raise AssertionError(f"{module} is in no package of the layer table; add its row")


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The first-party modules an import statement loads (``from p import m`` names module m)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = importer.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                 for a in node.names]
    targets = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name.split(".")[0] in ROOTS:
            targets.append(name)
    return targets


def _imports(module: str, source: str) -> tuple[list[Import], list[tuple[int, str]]]:
    """The module's first-party imports, and its function-local third-party ones (line, name)."""
    tree = ast.parse(source)
    is_package = MODULES[module].name == "__init__.py"
    local_lines = set()
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    local_lines.add(node.lineno)
    found, third_party = [], []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets = _resolve(module, is_package, node)
        local = node.lineno in local_lines
        found += [Import(module, t, node.lineno, local) for t in targets if t != module]
        if local and not targets:
            name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            third_party.append((node.lineno, str(name)))
    return found, third_party


def _all_imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        found += _imports(module, path.read_text(encoding="utf-8"))[0]
    return found


def _is_shim(module: str) -> bool:
    return module in SHIMS or module.endswith(".__main__")


def climbs(imports: list[Import]) -> list[str]:
    """Every import that the layer table does not allow, as ``file:line: a -> b``."""
    bad = []
    for imp in imports:
        if _is_shim(imp.importer):
            continue
        own, theirs = _package_of(imp.importer), _package_of(imp.target)
        allowed = MAY_IMPORT[own]
        if own != theirs and "*" not in allowed and theirs not in allowed:
            bad.append(f"{MODULES[imp.importer].relative_to(REPO_ROOT)}:{imp.line}: "
                       f"{imp.importer} ({own}) -> {imp.target} ({theirs})")
    return bad


def cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in imports:
        edges[imp.importer].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_package_is_a_row_of_the_table_and_says_what_it_may_import() -> None:
    for package in MAY_IMPORT:
        init = REPO_ROOT / Path(*package.split(".")) / "__init__.py"
        assert init.is_file(), f"{package} has no __init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if package not in ("robustret",):
            assert "may import" in doc.lower(), f"{package}'s docstring omits what it may import"
    for module in MODULES:
        _package_of(module)


def test_no_import_climbs_a_layer() -> None:
    assert climbs(_all_imports()) == []


def test_no_import_cycle() -> None:
    assert cycles(_all_imports()) == []


def test_first_party_imports_sit_at_the_top_of_their_module() -> None:
    """Function-local imports hide a module's dependencies; only the command shims may defer
    their import of the command (so that importing a leaf never loads the top)."""
    local = [f"{MODULES[i.importer].relative_to(REPO_ROOT)}:{i.line}: {i.target}"
             for i in _all_imports() if i.local and not _is_shim(i.importer)]
    assert local == []


def test_function_local_third_party_imports_say_why() -> None:
    """A lazy import of an optional or heavy dependency carries a comment on its line or on the
    lines just above it (``# lazy: ...``; one comment may head a group of imports)."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, name in _imports(module, "\n".join(lines))[1]:
            start = line - 1  # the comment may head the run of import lines this one is in
            while start > 0 and lines[start - 1].strip().startswith(("import ", "from ")):
                start -= 1
            if not any("# lazy" in text for text in lines[max(start - 1, 0):line]):
                silent.append(f"{path.relative_to(REPO_ROOT)}:{line}: {name}")
    assert silent == []


@pytest.mark.parametrize("importer, target, expected", [
    ("robustret.retrieval.index", "robustret.experiment.config", 1),  # layer 2 -> 5
    ("robustret.core.io", "robustret.data.base", 1),  # the foundation imports nothing above
    ("degradations.noise", "restoration.base", 1),  # a leaf library -> its neighbour
    ("robustret.experiment.runner", "robustret.report.files", 0),  # 5 -> 4 is down
    ("restoration.train", "robustret.cli.restorer_train", 0),  # a command shim
])
def test_the_checker_finds_a_climb(importer: str, target: str, expected: int) -> None:
    """The checker itself: a planted upward import is reported, a downward one is not."""
    assert len(climbs([Import(importer, target, 1, False)])) == expected


def test_the_checker_finds_a_cycle() -> None:
    planted = [Import("robustret.core.io", "robustret.core.keys", 1, False),
               Import("robustret.core.keys", "robustret.core.io", 1, False)]
    assert cycles(planted) == [["robustret.core.io", "robustret.core.keys"]]


_PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:  # after each import: what of robustret is loaded so far
    importlib.import_module(name)
    loaded[name] = sorted(m for m in sys.modules if m == "robustret" or m.startswith("robustret."))
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("library", ["restoration", "degradations"])
def test_importing_a_leaf_library_loads_only_the_foundation(library: str) -> None:
    """At run time too: one fresh interpreter imports each module of the library in turn
    (``sys.modules`` only grows, so the first module that pulls in an upper layer is named)."""
    names = sorted(m for m in MODULES if m.split(".")[0] == library and not _is_shim(m)
                   and not m.endswith("__main__"))
    done = subprocess.run([sys.executable, "-c", _PROBE, *names], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.splitlines()[-1])
    for module, modules in loaded.items():
        above = [m for m in modules if _package_of(m) not in CORE]
        assert above == [], f"import {module} pulled in upper layers"
