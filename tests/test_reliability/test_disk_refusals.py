"""A full disk and a read-only one are recognised as such: one line naming the file and what to
do (exit 2), optional caches go on without being written, and nothing half-written is left.

Where the machine lets the tests mount a tmpfs (root in a privileged container, as on the
project's machines), the disks are real: a 64 KiB tmpfs for "full", one remounted read-only
for "read-only". Elsewhere those tests skip and the simulated ones (an ``OSError`` with the
disk's ``errno`` raised where the bytes are written) still run.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import write_class_folders

import robustret.core.atomic as atomic
from robustret.cli import experiment
from robustret.cli.boundary import run_command
from robustret.core.checks import host_refusal
from robustret.core.io import atomic_save, write_optional_cache
from robustret.data.synthetic import SyntheticConfig, generate_cached


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (skipped where mounting is not permitted)."""
    where = tmp_path / "full"
    if os.geteuid() != 0 or not _mount_tmpfs(where, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root in a privileged container)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (skipped where mounting is not permitted)."""
    where = tmp_path / "ro"
    if os.geteuid() != 0 or not _mount_tmpfs(where, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root in a privileged container)")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _big_checkpoint() -> dict[str, torch.Tensor]:
    return {"weight": torch.arange(200_000, dtype=torch.float32)}  # 800 KB


# ---------------------------------------------------------------- the write path itself
def test_torch_save_on_a_real_full_disk_says_no_space_and_names_the_file(
        full_disk: Path) -> None:
    target = full_disk / "models" / "last.pt"
    with pytest.raises(OSError) as caught:
        atomic_save(_big_checkpoint(), target, checksum=True)
    assert caught.value.errno == errno.ENOSPC  # not torch's RuntimeError("file write failed")
    assert caught.value.filename == str(target)
    assert "disk full" in host_refusal(caught.value) and str(target) in host_refusal(caught.value)
    assert sorted(p.name for p in target.parent.iterdir()) == []  # no temporary file left


class _FillsUp:
    """A file handle whose disk fills up after ``room`` bytes."""

    def __init__(self, handle, room: int) -> None:
        self._handle, self._room = handle, room

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def test_torch_save_when_the_disk_fills_keeps_the_previous_file(tmp_path: Path,
                                                                monkeypatch) -> None:
    target = tmp_path / "last.pt"
    atomic_save({"weight": torch.ones(3)}, target, checksum=True)
    before = target.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen",
                        lambda fd, mode: _FillsUp(real_fdopen(fd, mode), room=4096))
    with pytest.raises(OSError) as caught:
        atomic_save(_big_checkpoint(), target, checksum=True)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert torch.load(target)["weight"].tolist() == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]


# ---------------------------------------------------------------- the boundary
@pytest.mark.parametrize(("error", "needles"), [
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/last.pt"),
     ["disk full", "/data/run/last.pt", "No space left on device", "resume"]),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/home/me/c"), ["disk full", "quota"]),
    (PermissionError(errno.EACCES, "Permission denied", "/shared/cache/x.npz"),
     ["permission denied", "/shared/cache/x.npz", "--cache-dir"]),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x"),
     ["permission denied", "Read-only file system"]),
])
def test_the_boundary_names_full_and_refusing_disks(error: OSError, needles: list[str],
                                                    capsys) -> None:
    def work() -> None:
        raise error

    assert run_command("prog", work) == (2, None)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("prog: error: ")
    for needle in needles:
        assert needle in err, err


def test_other_os_errors_are_bugs_with_their_traceback() -> None:
    def work() -> None:
        raise OSError(errno.EIO, "Input/output error", "/dev/sdz")

    with pytest.raises(OSError, match="Input/output"):
        run_command("prog", work)


# ---------------------------------------------------------------- optional caches
def test_an_optional_cache_the_disk_refuses_is_one_warning(tmp_path: Path, caplog) -> None:
    def refused() -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "c.npz"))

    with caplog.at_level(logging.WARNING):
        assert write_optional_cache(tmp_path / "c.npz", refused) is False
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot write the cache file {tmp_path / 'c.npz'} (Read-only file system); going on "
        "without it"]

    def broken() -> None:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(tmp_path))

    with pytest.raises(IsADirectoryError):  # not the disk's refusal: raised
        write_optional_cache(tmp_path / "c.npz", broken)


TINY = SyntheticConfig(render_size=16, n_instances=2, elevations=1, azimuths=2, lightings=1)


def test_rendering_into_a_real_read_only_cache_warns_and_renders(
        read_only_disk: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ROBUSTRET_CACHE", str(read_only_disk / "cache"))
    with caplog.at_level(logging.WARNING):
        first = generate_cached(TINY)
        second = generate_cached(TINY)
    assert (first["images"] == second["images"]).all()
    refusals = [r.getMessage() for r in caplog.records if "cannot write the cache" in
                r.getMessage()]
    assert len(refusals) == 2 and "Read-only file system" in refusals[0]


def test_a_full_cache_disk_renders_all_the_same(full_disk: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ROBUSTRET_CACHE", str(full_disk))
    big = SyntheticConfig(render_size=64, n_instances=2, elevations=1, azimuths=4, lightings=1)
    with caplog.at_level(logging.WARNING):
        arrays = generate_cached(big)
    assert arrays["images"].shape[-1] == 64
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    assert not list(full_disk.rglob("*.tmp*"))


# ---------------------------------------------------------------- the experiment
def _smoke(tmp_path: Path, *extra: str) -> list[str]:
    return ["--config", "experiments/configs/smoke.toml", "--out", str(tmp_path / "run"),
            "--no-tensorboard", "-q", *extra]


def test_a_read_only_default_model_cache_is_refused_before_training(
        tmp_path: Path, monkeypatch, capsys) -> None:
    import robustret.experiment.runner as runner

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the retriever was trained before the cache was checked")

    monkeypatch.setattr(runner, "trained_retriever", fail)
    locked = tmp_path / "shared-cache"
    locked.mkdir()
    monkeypatch.setenv("ROBUSTRET_CACHE", str(locked))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (Path(path) != locked
                                                           and real_access(path, mode)))
    assert experiment.main(_smoke(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the model cache" in err and "$ROBUSTRET_CACHE" in err


def test_a_model_cache_on_a_full_disk_is_one_line(full_disk: Path, tmp_path: Path,
                                                  capsys) -> None:
    data = write_class_folders(tmp_path / "data")
    status = experiment.main([
        "--dataset", f"folder:{data}", "--out", str(tmp_path / "run"), "--image-size", "32",
        "--retriever-epochs", "1", "--backbone", "resnet18", "--degrade", "gaussian_noise",
        "--restore", "none", "-q", "--no-tensorboard", "--cache-dir", str(full_disk)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("python -m robustret.experiment: error: disk full: cannot write "
                              f"{full_disk}")
