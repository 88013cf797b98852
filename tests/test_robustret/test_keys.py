"""Cache keys follow imports: a module's key covers what it imports, not its neighbours."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from robustret.core import keys

#: a tiny first-party-like tree: ``tinykeys.target`` imports ``mid`` (relative), which imports
#: ``leaf`` (``from pkg import submodule``) and ``util`` (absolute); ``demo`` is a command beside
#: them that nothing imports, ``a`` and ``b`` import each other
TREE = {
    "__init__.py": "from tinykeys import target\n",
    "target.py": "from . import mid\n\nVALUE = mid.VALUE + 1\n",
    "mid.py": "from tinykeys import leaf\nimport tinykeys.util\n\nVALUE = leaf.VALUE\n",
    "leaf.py": "VALUE = 1\n",
    "util.py": "import os\nimport numpy\n\nHELP = 1\n",
    "demo.py": "from tinykeys.target import VALUE\n\nprint(VALUE)\n",
    "a.py": "from .b import B\n\nA = 1\n",
    "b.py": "def late():\n    from tinykeys.a import A\n    return A\n\n\nB = 2\n",
    "sub/__init__.py": "from ..leaf import VALUE\n",
}


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tree on ``sys.path``; every source read before or after the test is forgotten."""
    for relative, text in TREE.items():
        path = tmp_path / "tinykeys" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    keys.clear_source_cache()
    yield tmp_path / "tinykeys"
    keys.clear_source_cache()


def _fresh(*modules: str) -> str:
    keys.clear_source_cache()  # the hash is read once per process; these tests edit files
    return keys.source_hash(*modules)


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "# edited\n")


def test_an_edit_to_what_the_target_imports_changes_its_key(tree: Path) -> None:
    first = _fresh("tinykeys.target")
    assert len(first) == 16 and int(first, 16) >= 0
    _edit(tree / "leaf.py")  # target -> mid (relative) -> leaf (from pkg import submodule)
    second = _fresh("tinykeys.target")
    assert second != first
    _edit(tree / "util.py")  # mid -> util (import pkg.module)
    assert _fresh("tinykeys.target") != second


def test_an_edit_to_a_module_nothing_imports_leaves_the_key(tree: Path) -> None:
    target, package, demo = _fresh("tinykeys.target"), _fresh("tinykeys"), _fresh("tinykeys.demo")
    _edit(tree / "demo.py")
    _edit(tree / "a.py")
    assert _fresh("tinykeys.target") == target
    assert _fresh("tinykeys") == package  # a package is its __init__ and what that imports
    assert _fresh("tinykeys.demo") != demo


def test_an_import_cycle_ends(tree: Path) -> None:
    keys.clear_source_cache()
    walked = [name for name, _ in itertools.islice(keys._closure("tinykeys.a"), 10)]
    assert sorted(walked) == ["tinykeys.a", "tinykeys.b"]  # each module once
    first = _fresh("tinykeys.a")
    assert first == _fresh("tinykeys.a") and first == _fresh("tinykeys.b") != _fresh("tinykeys")
    _edit(tree / "b.py")  # b's import of a sits in a function: it counts too
    assert _fresh("tinykeys.a") != first


def test_a_relative_import_from_a_subpackage_climbs(tree: Path) -> None:
    first = _fresh("tinykeys.sub")
    _edit(tree / "leaf.py")
    assert _fresh("tinykeys.sub") != first


def test_module_names_are_part_of_the_key(tree: Path) -> None:
    """The same bytes under another module name (a moved module) give another key."""
    (tree / "moved.py").write_text((tree / "leaf.py").read_text())
    assert _fresh("tinykeys.moved") != _fresh("tinykeys.leaf")


def test_first_party_packages_are_followed_others_are_not(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tree.parent / "tinyother"
    other.mkdir()
    (other / "__init__.py").write_text("X = 1\n")
    (tree / "leaf.py").write_text("import tinyother\n\nVALUE = 1\n")
    first = _fresh("tinykeys.target")
    _edit(other / "__init__.py")
    assert _fresh("tinykeys.target") == first  # not first party: like numpy
    monkeypatch.setattr(keys, "FIRST_PARTY", (*keys.FIRST_PARTY, "tinyother"))
    second = _fresh("tinykeys.target")
    _edit(other / "__init__.py")
    assert _fresh("tinykeys.target") != second


def test_the_key_is_order_free_and_read_once_per_process(tree: Path) -> None:
    both = _fresh("tinykeys.a", "tinykeys.target")
    assert both == keys.source_hash("tinykeys.target", "tinykeys.a", "tinykeys.target")
    assert both not in (_fresh("tinykeys.a"), _fresh("tinykeys.target"))
    _edit(tree / "leaf.py")
    assert keys.source_hash("tinykeys.a", "tinykeys.target") == both  # cached until cleared
    assert _fresh("tinykeys.a", "tinykeys.target") != both


def test_an_unknown_name_raises(tree: Path) -> None:
    for name in ("tinykeys_missing", "tinykeys.missing", "tinykeys.leaf.VALUE", "not a name"):
        with pytest.raises(ValueError, match="no such module"):
            _fresh(name)


def test_the_hash_of_each_named_module_can_be_replaced(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests elsewhere stand in an edit of a package by replacing ``_hash_of`` for its name."""
    first = _fresh("tinykeys.a", "tinykeys.target")
    real = keys._hash_of
    monkeypatch.setattr(keys, "_hash_of",
                        lambda name: "edited" if name == "tinykeys.a" else real(name))
    assert keys.source_hash("tinykeys.a", "tinykeys.target") != first
    assert keys.source_hash("tinykeys.target") == _fresh("tinykeys.target")


def test_the_real_packages_cover_their_imports_not_their_commands() -> None:
    keys.clear_source_cache()
    modules = {name for name, _ in keys._closure("degradations")}
    assert {"degradations", "degradations.noise", "robustret.core.registry"} <= modules
    assert "degradations.demo" not in modules
    assert "robustret.data.synthetic_render" in {
        name for name, _ in keys._closure("robustret.data.synthetic")}
