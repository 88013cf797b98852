"""Corrupt cached files of a whole run: each is reported once, rebuilt, and the numbers hold."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from conftest import write_class_folders

from robustret.cli.experiment import main


def _args(data: Path, tmp_path: Path) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(tmp_path / "run"), "--image-size", "32",
            "--retriever-epochs", "1", "--restorer-epochs", "1", "--backbone", "resnet18",
            "--degrade", "gaussian_noise", "--restore", "dae", "--topk", "1", "3", "-q",
            "--no-tensorboard", "--cache-dir", str(tmp_path / "cache")]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[tuple]]:
    """One finished run (data folder, run + cache folders, figures), made once per module."""
    data = write_class_folders(tmp_path_factory.mktemp("data") / "data")
    folder = tmp_path_factory.mktemp("clean")
    assert main(_args(data, folder)) == 0
    return data, folder, _figures(_rows(folder))


def _copy_of(clean_run: tuple[Path, Path, list[tuple]], tmp_path: Path) -> list[str]:
    """The clean run's folders copied into ``tmp_path``; returns the command that repeats it."""
    data, folder, _ = clean_run
    for name in ("run", "cache"):
        shutil.copytree(folder / name, tmp_path / name)
    return _args(data, tmp_path)


def _rows(tmp_path: Path) -> list[dict]:
    return json.loads((tmp_path / "run" / "results.json").read_text())["rows"]


def _figures(rows: list[dict]) -> list[tuple]:
    return [(r["query"], r["degradation"], r["severity"], r["restorer"], r["metric"], r["k"],
             r["accuracy"]) for r in rows]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _xor_64k(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start:start + (1 << 16)] = bytes(b ^ 0xFF for b in data[start:start + (1 << 16)])
    path.write_bytes(bytes(data))


def test_corrupt_checkpoints_are_retrained_and_the_figures_hold(
    clean_run, tmp_path: Path, caplog
) -> None:
    args, clean = _copy_of(clean_run, tmp_path), clean_run[2]
    models = tmp_path / "cache"
    (retriever,) = models.glob("retriever-*/last.pt")
    (dae,) = models.glob("dae-*/last.pt")
    _xor_64k(retriever)
    _xor_64k(dae)
    caplog.clear()
    assert main(args) == 0
    rows = _rows(tmp_path)
    assert _figures(rows) == clean and not any(row["reused"] for row in rows)
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert any(str(retriever) in w for w in warnings) and any(str(dae) in w for w in warnings)
    assert all("from scratch" in w for w in warnings)


def test_edited_or_truncated_condition_files_are_recomputed(
    clean_run, tmp_path: Path, caplog
) -> None:
    args, clean = _copy_of(clean_run, tmp_path), clean_run[2]
    files = {json.loads(path.read_text())["rows"][0]["query"]: path
             for path in (tmp_path / "run" / ".conditions").glob("*.json")}
    assert set(files) == {"clean", "degraded", "restored"}
    edited = json.loads(files["clean"].read_text())
    edited["rows"][0]["accuracy"] = 0.0 if edited["rows"][0]["accuracy"] > 0.5 else 1.0
    files["clean"].write_text(json.dumps(edited, indent=2) + "\n")
    text = files["degraded"].read_text()
    files["degraded"].write_text(text[: len(text) // 2])
    caplog.clear()
    assert main(args) == 0
    rows = _rows(tmp_path)
    assert _figures(rows) == clean
    assert {row["query"] for row in rows if not row["reused"]} == {"clean", "degraded"}
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert any(files["clean"].name in w for w in warnings)
    assert any(files["degraded"].name in w for w in warnings)


def test_a_checkpoint_without_its_checksum_is_retrained_not_trusted(
    clean_run, tmp_path: Path, caplog
) -> None:
    """A readable checkpoint with other weights and no ``.sha256`` sidecar (copied alone, or
    edited) once resumed as it was and changed the rows silently; now it is moved aside with
    one warning, retrained, and the figures hold."""
    import torch

    from robustret.core.io import checksum_path

    args, clean = _copy_of(clean_run, tmp_path), clean_run[2]
    (dae,) = (tmp_path / "cache").glob("dae-*/last.pt")
    state = torch.load(dae, map_location="cpu", weights_only=False)
    for name, tensor in state["model"].items():
        if tensor.is_floating_point():
            state["model"][name] = tensor + 0.5  # garbled weights in a well-formed file
    torch.save(state, dae)
    checksum_path(dae).unlink()
    caplog.clear()
    assert main(args) == 0
    assert _figures(_rows(tmp_path)) == clean
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and str(dae) in warnings[0] and "no checksum file" in warnings[0]
