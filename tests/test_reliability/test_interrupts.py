"""Ctrl-C and SIGTERM at any moment: exit 130 with one line, the last checkpoint intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import robustret.core.atomic as atomic
import robustret.core.io as rio
from robustret.cli.experiment import main as experiment_main
from robustret.cli.restorer_train import main as restorer_main
from robustret.train.loop import train_loop

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT_LINE = "python -m robustret.experiment: interrupted; re-run the same command to resume"
RESTORER_LINE = "python -m restoration.train: interrupted; re-run the same command to resume"


def _interrupting_save(monkeypatch, *, after_bytes: int = 4096, how: str = "raise",
                       calls: int = 1) -> list[int]:
    """Make the next ``calls`` ``torch.save`` calls stop after ``after_bytes`` bytes written:
    ``raise`` KeyboardInterrupt in the writer (torch turns it into a RuntimeError), or send
    the process a real SIGINT / SIGTERM there."""
    real = torch.save
    done: list[int] = []

    def save(obj, f, *args, **kwargs):
        if len(done) >= calls:
            return real(obj, f, *args, **kwargs)
        done.append(1)

        class Writer:
            written = 0

            def write(self, data):
                self.written += len(memoryview(data).cast("B"))
                if self.written > after_bytes:
                    if how == "raise":
                        raise KeyboardInterrupt
                    os.kill(os.getpid(), signal.SIGINT if how == "sigint" else signal.SIGTERM)
                return f.write(data)

            def flush(self):
                f.flush()

        return real(obj, Writer(), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return done


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


@pytest.mark.parametrize("how", ["raise", "sigint", "sigterm"])
def test_interrupt_inside_torch_save_is_a_keyboard_interrupt(
    tmp_path: Path, monkeypatch, how: str
) -> None:
    path = rio.atomic_save({"w": torch.arange(10)}, tmp_path / "last.pt", checksum=True)
    before = path.read_bytes(), rio.checksum_path(path).read_text()
    _interrupting_save(monkeypatch, how=how)
    with rio.sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        rio.atomic_save({"w": torch.randn(256, 256)}, path, checksum=True)
    assert (path.read_bytes(), rio.checksum_path(path).read_text()) == before
    assert not _temporaries(tmp_path)
    rio.verify_file(path)


@pytest.mark.parametrize("moment", ["before the rename", "after the rename"])
def test_a_file_verifies_whenever_the_write_stops(tmp_path: Path, monkeypatch, moment) -> None:
    path = rio.atomic_save({"epoch": 1}, tmp_path / "last.pt", checksum=True)
    real_replace, real_digests = os.replace, atomic._write_digests
    if moment == "before the rename":
        def replace(src, dst):
            if Path(dst) == path:
                raise KeyboardInterrupt
            return real_replace(src, dst)
        monkeypatch.setattr(atomic.os, "replace", replace)
    else:
        calls = []

        def write_digests(target, digests):
            calls.append(1)
            if len(calls) == 2:  # the final sidecar, after the rename
                raise KeyboardInterrupt
            return real_digests(target, digests)
        monkeypatch.setattr(atomic, "_write_digests", write_digests)
    with pytest.raises(KeyboardInterrupt):
        rio.atomic_save({"epoch": 2}, path, checksum=True)
    monkeypatch.undo()
    expected = 1 if moment == "before the rename" else 2
    assert rio.load_checkpoint(path, required=True)["epoch"] == expected
    assert not _temporaries(tmp_path)


def test_sigterm_becomes_keyboard_interrupt_and_the_handler_is_restored() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), rio.sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at once; never reached
    assert signal.getsignal(signal.SIGTERM) is previous


def _toy_run(epochs: int, checkpoint: Path) -> nn.Module:
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(-1, 1, 8).reshape(2, 4))
        model.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.linspace(-1, 1, 32).reshape(8, 4)
    y = torch.tensor([0, 1] * 4)
    train_loop(model=model, optimizer=optimizer, make_batches=lambda epoch: [(x, y)],
               step=lambda b: (nn.functional.cross_entropy(model(b[0]), b[1]), {}),
               epochs=epochs, checkpoint=checkpoint, progress=False)
    return model


def test_interrupt_in_a_checkpoint_write_keeps_the_last_epoch(tmp_path: Path, monkeypatch) -> None:
    straight = _toy_run(3, tmp_path / "straight" / "last.pt")
    checkpoint = tmp_path / "run" / "last.pt"
    _toy_run(1, checkpoint)
    _interrupting_save(monkeypatch, after_bytes=100)
    with pytest.raises(KeyboardInterrupt):
        _toy_run(3, checkpoint)  # epoch 2's checkpoint write is interrupted
    monkeypatch.undo()
    assert rio.load_checkpoint(checkpoint, required=True)["epoch"] == 1
    assert not _temporaries(tmp_path)
    resumed = _toy_run(3, checkpoint)
    assert torch.equal(resumed.weight, straight.weight)


def _experiment_args(data: Path, tmp_path: Path, epochs: int = 1) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(tmp_path / "run"), "--image-size", "32",
            "--retriever-epochs", str(epochs), "--restorer-epochs", "1", "--backbone",
            "resnet18", "--degrade", "gaussian_noise", "--restore", "none", "--topk", "1",
            "-q", "--no-tensorboard", "--cache-dir", str(tmp_path / "cache")]


def test_experiment_interrupted_in_a_checkpoint_write_exits_130_with_one_line(
    tiny_folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    args = _experiment_args(tiny_folder, tmp_path)
    saves = _interrupting_save(monkeypatch)
    assert experiment_main(args) == 130
    assert saves == [1]
    assert capsys.readouterr().err == EXPERIMENT_LINE + "\n"
    assert not _temporaries(tmp_path) and not list((tmp_path / "cache").rglob("last.pt"))
    monkeypatch.undo()
    assert experiment_main(args) == 0
    assert "computed" in capsys.readouterr().out


def test_restorer_training_interrupted_exits_130_with_one_line(
    tiny_folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    out = tmp_path / "dae"
    args = ["--model", "dae", "--degrade", "gaussian_noise", "--dataset", f"folder:{tiny_folder}",
            "--out", str(out), "--epochs", "2", "--image-size", "32", "--no-tensorboard"]
    _interrupting_save(monkeypatch, how="sigterm", calls=2)  # both epochs' checkpoints
    previous = signal.getsignal(signal.SIGTERM)
    assert restorer_main(args) == 130
    assert capsys.readouterr().err.splitlines()[-1] == RESTORER_LINE
    assert not _temporaries(tmp_path) and not (out / "last.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_sigterm_to_a_running_experiment(tiny_folder: Path, tmp_path: Path) -> None:
    args = _experiment_args(tiny_folder, tmp_path, epochs=500)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "robustret.experiment", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "cache").rglob("last.pt")):  # training is under way
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.splitlines() == [EXPERIMENT_LINE]
    (checkpoint,) = (tmp_path / "cache").rglob("last.pt")
    assert rio.load_checkpoint(checkpoint, required=True)["epoch"] >= 1
    assert not _temporaries(tmp_path)
