"""Verified cache files: checksums, corrupt files rebuilt with one warning, stale temporaries."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from robustret.core import interrupts
from robustret.core import io as rio
from robustret.core.paths import cache_dir
from robustret.data.folder import _cache_key, decode_folder, list_images
from robustret.evaluation.results import Condition, ResultRow
from robustret.experiment.condition_store import ConditionStore
from robustret.experiment.trained import TrainedModel, gallery_embeddings
from robustret.models import build_retriever


def _xor(path: Path, offset: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + length, len(data))):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- robustret.core.io (atomic, checksums, interrupts) ---------------------------------------


def test_checksummed_save_roundtrips_and_sidecar_is_sha256sum_format(tmp_path: Path) -> None:
    path = rio.atomic_save({"w": torch.arange(5)}, tmp_path / "c.pt", checksum=True)
    sidecar = rio.checksum_path(path)
    assert sidecar.name == "c.pt.sha256"
    assert sidecar.read_text() == f"{rio.file_digest(path)}  c.pt\n"
    assert torch.equal(rio.verified_load(path)["w"], torch.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "c.pt.sha256"]


@pytest.mark.parametrize("damage", ["xor", "truncate", "zeros"])
def test_damaged_file_raises_corrupt_file_error_naming_it(tmp_path: Path, damage: str) -> None:
    path = rio.atomic_save({"w": torch.randn(64, 64)}, tmp_path / "c.pt", checksum=True)
    size = path.stat().st_size
    if damage == "xor":
        _xor(path, size // 2, 64)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: size // 2])
    else:
        path.write_bytes(bytes(size))
    with pytest.raises(rio.CorruptFileError, match="c.pt") as info:
        rio.load_checkpoint(path)
    assert isinstance(info.value, ValueError) and info.value.path == path


def test_a_file_without_sidecar_is_accepted_only_when_not_required(tmp_path: Path) -> None:
    path = tmp_path / "user.pt"
    torch.save({"w": torch.ones(2)}, path)  # a user's own file: no sidecar
    assert torch.equal(rio.load_checkpoint(path)["w"], torch.ones(2))
    with pytest.raises(rio.CorruptFileError, match="no checksum file user.pt.sha256"):
        rio.verified_load(path)
    with pytest.raises(rio.CorruptFileError, match="no checksum"):
        rio.read_verified(path)


def test_a_write_without_checksum_drops_the_old_sidecar(tmp_path: Path) -> None:
    path = rio.atomic_write_text(tmp_path / "a.txt", "one", checksum=True)
    rio.atomic_write_text(path, "two")
    assert not rio.checksum_path(path).exists()
    assert rio.read_verified(path, required=False) == b"two"


def test_restorer_and_retriever_loaders_verify_when_a_sidecar_exists(tmp_path: Path) -> None:
    import restoration
    from robustret.models import load_retriever

    model = build_retriever("resnet18", num_classes=3, in_channels=1)
    path = rio.atomic_save({"arch": model.arch(), "model": model.state_dict()},
                           tmp_path / "retriever.pt", checksum=True)
    load_retriever(path)
    _xor(path, path.stat().st_size // 2, 1 << 16)
    with pytest.raises(ValueError, match="retriever.pt is corrupt"):
        load_retriever(path)

    dae = restoration.build("dae")
    saved = restoration.save(dae, tmp_path / "dae.pt")  # saved without a sidecar: still loads
    restoration.load(saved)
    rio.atomic_save(torch.load(saved, weights_only=False), saved, checksum=True)
    _xor(saved, saved.stat().st_size // 2, 1 << 16)
    with pytest.raises(ValueError, match="dae.pt is corrupt"):
        restoration.load(saved)


# --- stale temporary files -----------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_are_removed_a_live_writers_kept(tmp_path: Path) -> None:
    host = interrupts._HOST
    dead = tmp_path / f".last.pt.{host}-{_dead_pid()}.0a1b2c3d.tmp"
    live = tmp_path / f".last.pt.{host}-{os.getppid()}.0a1b2c3e.tmp"
    other_host = tmp_path / ".last.pt.elsewhere-1.0a1b2c3f.tmp"
    old_other_host = tmp_path / ".last.pt.elsewhere-2.0a1b2c40.tmp"
    legacy_old = tmp_path / ".last.pt.k3j_x9qa.tmp"  # mkstemp's name, from before
    for temp in (dead, live, other_host, old_other_host, legacy_old):
        temp.write_bytes(b"partial")
    long_ago = time.time() - 2 * rio.STALE_TEMP_SECONDS
    for temp in (old_other_host, legacy_old):
        os.utime(temp, (long_ago, long_ago))
    rio.atomic_save({"epoch": 1}, tmp_path / "last.pt", checksum=True)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["last.pt", "last.pt.sha256", live.name, other_host.name])


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    rio.atomic_save({"epoch": 1}, target, checksum=True)
    script = (
        "import sys, time, torch\n"
        "from robustret.core.io import atomic_save\n"
        "class Slow:\n"
        "    def __reduce__(self):\n"
        "        time.sleep(120)\n"
        "        return (int, ())\n"
        f"atomic_save({{'epoch': 2, 'w': torch.zeros(1 << 16), 'x': Slow()}}, {str(target)!r},"
        " checksum=True)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".last.pt.*.tmp")):
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        writer.kill()
        writer.wait()
    assert list(tmp_path.glob(".last.pt.*.tmp"))  # SIGKILL: no cleanup ran
    assert rio.load_checkpoint(target, required=True)["epoch"] == 1
    rio.atomic_save({"epoch": 3}, target, checksum=True)
    assert not list(tmp_path.glob(".*.tmp"))
    assert rio.load_checkpoint(target, required=True)["epoch"] == 3


# --- gallery embeddings --------------------------------------------------------------------


@pytest.fixture
def retriever(tmp_path: Path) -> TrainedModel:
    torch.manual_seed(0)
    model = build_retriever("resnet18", num_classes=3, in_channels=1).eval()
    return TrainedModel(model, "k", tmp_path / "retriever" / "last.pt", "content")


def _gallery_file(retriever: TrainedModel) -> Path:
    (path,) = retriever.checkpoint.parent.glob("gallery_embeddings-*.npy")
    return path


@pytest.mark.parametrize("damage", ["truncate", "zeros", "xor"])
def test_damaged_gallery_embeddings_are_recomputed_with_one_warning(
    retriever: TrainedModel, images: torch.Tensor, damage: str, caplog, monkeypatch
) -> None:
    device = torch.device("cpu")
    first, key = gallery_embeddings(retriever, images, device)
    first = first.clone()
    path = _gallery_file(retriever)
    assert key in path.name
    size = path.stat().st_size
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: size // 2])
    elif damage == "zeros":
        path.write_bytes(bytes(size))
    else:
        _xor(path, size // 2, 256)
    calls = []
    import robustret.experiment.trained

    real = robustret.experiment.trained.write_embeddings
    monkeypatch.setattr(robustret.experiment.trained, "write_embeddings",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with caplog.at_level(logging.INFO):
        again, again_key = gallery_embeddings(retriever, images, device)
    assert calls == [1] and again_key == key and torch.equal(again, first)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and path.name in warnings[0]
    caplog.clear()
    gallery_embeddings(retriever, images, device)  # rewritten and verified: reused silently
    assert calls == [1] and not _warnings(caplog)


@pytest.mark.parametrize("bad", ["short", "nan", "float64"])
def test_embeddings_with_a_valid_checksum_but_wrong_rows_are_recomputed(
    retriever: TrainedModel, images: torch.Tensor, bad: str, caplog
) -> None:
    device = torch.device("cpu")
    first, key = gallery_embeddings(retriever, images, device)
    first = first.clone()
    path = _gallery_file(retriever)
    wrong = {"short": first[:2], "nan": first * float("nan"), "float64": first.double()}[bad]
    buffer = io.BytesIO()
    np.save(buffer, wrong.numpy())
    rio.atomic_write_bytes(path, buffer.getvalue(), checksum=True)
    again, _ = gallery_embeddings(retriever, images, device)
    assert torch.equal(again, first)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and path.name in warnings[0]


def test_gallery_embeddings_of_another_key_are_replaced(
    retriever: TrainedModel, images: torch.Tensor
) -> None:
    device = torch.device("cpu")
    folder = retriever.checkpoint.parent
    folder.mkdir(parents=True)
    rio.atomic_save({"embeddings": torch.zeros(4, 512)}, folder / "gallery_embeddings.pt",
                    checksum=True)  # the format of earlier versions
    gallery_embeddings(retriever, images, device)
    _, other = gallery_embeddings(retriever, images[:3], device)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"gallery_embeddings-{other}.npy", f"gallery_embeddings-{other}.npy.sha256"]


# --- finished conditions -------------------------------------------------------------------


def _store_with_one_condition(tmp_path: Path) -> tuple[ConditionStore, Condition, Path]:
    store = ConditionStore(tmp_path / ".conditions")
    condition = Condition("degraded", "noise", 3)
    rows = [ResultRow(condition, "l2", 1, 0.25), ResultRow(condition, "l2", 5, 0.5)]
    path = store.save(condition, "key", rows)
    assert [row.accuracy for row in store.load(condition, "key")] == [0.25, 0.5]
    return store, condition, path


def test_an_edited_accuracy_in_a_condition_file_is_not_trusted(tmp_path: Path, caplog) -> None:
    store, condition, path = _store_with_one_condition(tmp_path)
    stored = json.loads(path.read_text())
    stored["rows"][0]["accuracy"] = 0.99
    path.write_text(json.dumps(stored, indent=2) + "\n")
    assert store.load(condition, "key") is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and path.name in warnings[0] and "SHA-256" in warnings[0]


@pytest.mark.parametrize("content", ["truncate", '{"rows": []}\n'])
def test_a_broken_condition_file_is_one_warning_naming_it(
    tmp_path: Path, caplog, content: str
) -> None:
    store, condition, path = _store_with_one_condition(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2] if content == "truncate" else content)
    assert store.load(condition, "key") is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and path.name in warnings[0]


def test_the_condition_store_removes_stale_temporaries(tmp_path: Path) -> None:
    folder = tmp_path / ".conditions"
    folder.mkdir()
    stale = folder / f".clean-abc.json.{interrupts._HOST}-{_dead_pid()}.00ff00ff.tmp"
    stale.write_text("{")
    ConditionStore(folder)
    assert not stale.exists()


# --- decoded images ------------------------------------------------------------------------


def test_an_image_rewritten_with_its_mtime_restored_is_decoded_again(tiny_folder: Path) -> None:
    first = decode_folder(tiny_folder, 32)
    image = tiny_folder / "class0" / "img00.png"
    before = image.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity, so the ctime moves on
    cv2.imwrite(str(image), np.full((32, 32), 7, np.uint8))  # same size on disk or not, ...
    with open(image, "r+b") as handle:  # ... now pad/cut it to exactly the old size, in place
        handle.truncate(before.st_size)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))  # as rsync -t / cp -p do
    assert image.stat().st_size == before.st_size
    assert image.stat().st_mtime_ns == before.st_mtime_ns
    again = decode_folder(tiny_folder, 32)
    index = again["files"].index("class0/img00.png")
    assert not np.array_equal(again["images"][index], first["images"][index])
    assert (again["images"][index] == 7).all()


def test_a_corrupt_decoded_image_cache_is_decoded_again(tiny_folder: Path, caplog) -> None:
    first = decode_folder(tiny_folder, 32)
    cache = cache_dir("folders") / f"{_cache_key(tiny_folder, list_images(tiny_folder)[1], 32)}.npz"
    _xor(cache, cache.stat().st_size // 2, 512)
    again = decode_folder(tiny_folder, 32)
    assert np.array_equal(again["images"], first["images"])
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and cache.name in warnings[0]
    caplog.clear()
    decode_folder(tiny_folder, 32)
    assert not _warnings(caplog)
