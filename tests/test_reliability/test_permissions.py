"""Files written through robustret.core.io get the process's normal permissions (the umask's)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

import robustret.core.io as rio
from robustret.evaluation.results import Condition, ResultRow
from robustret.experiment.condition_store import ConditionStore


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one after."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    written = [
        rio.atomic_write_text(tmp_path / "results.md", "table"),
        rio.atomic_write_json(tmp_path / "results.json", {"rows": []}),
        rio.atomic_write_bytes(tmp_path / "cache.npz", b"\0" * 10, checksum=True),
        rio.atomic_save({"w": torch.zeros(2)}, tmp_path / "last.pt", checksum=True),
    ]
    written += [rio.checksum_path(tmp_path / "cache.npz"), rio.checksum_path(tmp_path / "last.pt")]
    assert {path.name: _mode(path) for path in written} == {path.name: expected
                                                           for path in written}


def test_a_rewritten_file_gets_the_umask_not_its_old_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = rio.atomic_write_text(tmp_path / "a.txt", "one")
    path.chmod(0o600)
    rio.atomic_write_text(path, "two")
    assert _mode(path) == 0o644


def test_finished_conditions_are_readable_by_colleagues(tmp_path: Path, umask) -> None:
    umask(0o022)
    condition = Condition("clean")
    path = ConditionStore(tmp_path / ".conditions").save(
        condition, "key", [ResultRow(condition, "l2", 1, 0.5)])
    assert _mode(path) == 0o644 and _mode(rio.checksum_path(path)) == 0o644
