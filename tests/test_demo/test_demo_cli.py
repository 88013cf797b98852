"""``python -m robustret.demo``: a folder that is no finished run is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustret.core.checks import ConfigError
from robustret.demo.__main__ import main
from robustret.demo.run import load_run


def test_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--run", str(tmp_path), "--port", "0"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "synthetic"}))
    missing = tmp_path / "gone" / "last.pt"
    (tmp_path / "results.json").write_text(
        json.dumps({"resolved": {"retriever_checkpoint": str(missing)}}))
    with pytest.raises(ConfigError, match="checkpoint .* is missing"):
        load_run(tmp_path, "cpu")


def test_unreadable_results(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "results.json").write_text("not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_run(tmp_path, "cpu")


def test_bad_port() -> None:
    with pytest.raises(SystemExit):
        main(["--run", "OUT", "--port", "70000"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this host has CUDA")
def test_cuda_asked_for_without_cuda_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """(was a ValueError traceback)"""
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"weights")
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "synthetic"}))
    (tmp_path / "results.json").write_text(
        json.dumps({"resolved": {"retriever_checkpoint": str(checkpoint)}}))
    assert main(["--run", str(tmp_path), "--port", "0", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "CUDA is not available" in err.splitlines()[-1]


def test_ctrl_c_while_serving_exits_130(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """(was a KeyboardInterrupt traceback)"""
    import robustret.demo.app as app
    import robustret.demo.run as run

    class Interrupted:
        def run(self, sockets: object) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "load_run", lambda folder, device: object())
    monkeypatch.setattr(app, "create_app", lambda service: object())
    monkeypatch.setattr(app, "make_server", lambda application: Interrupted())
    assert main(["--run", "OUT", "--port", "0"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def _run_with_checkpoint(tmp_path: Path) -> Path:
    """A run folder whose retriever checkpoint is cached as the experiment caches it (with a
    sidecar)."""
    from robustret.core.io import atomic_save
    from robustret.models import build_retriever

    model = build_retriever("resnet18", num_classes=3, in_channels=1)
    checkpoint = tmp_path / "cache" / "last.pt"
    atomic_save({"arch": model.arch(), "model": model.state_dict()}, checkpoint, checksum=True)
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "synthetic"}))
    (tmp_path / "results.json").write_text(
        json.dumps({"resolved": {"retriever_checkpoint": str(checkpoint)}}))
    return checkpoint


@pytest.mark.parametrize("damage", ["sidecar deleted", "bytes changed"])
def test_a_checkpoint_that_does_not_verify_is_refused(tmp_path: Path, damage: str,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """(a checkpoint without its sidecar was loaded unchecked)"""
    from robustret.core.io import checksum_path

    def never_serve(_app: object) -> None:
        raise AssertionError("the page was served from an unverified checkpoint")

    monkeypatch.setattr("robustret.demo.app.make_server", never_serve)

    checkpoint = _run_with_checkpoint(tmp_path)
    if damage == "sidecar deleted":
        checksum_path(checkpoint).unlink()
    else:
        data = bytearray(checkpoint.read_bytes())
        data[-100] ^= 0xFF
        checkpoint.write_bytes(bytes(data))
    assert main(["--run", str(tmp_path), "--port", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert "retriever checkpoint cannot be trusted" in err[-1] and str(checkpoint) in err[-1]
