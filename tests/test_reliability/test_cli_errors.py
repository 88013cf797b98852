"""Every command answers bad input with one line and exit status 2, before any work."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from robustret.cli import data as data_cli
from robustret.cli import experiment, restorer_eval
from robustret.cli import restorer_train as restorer_cli

Main = Callable[[Sequence[str]], int]


def _fails_in_one_line(main: Main, argv: Sequence[str], capsys: pytest.CaptureFixture[str],
                       *needles: str) -> str:
    """Run ``main(argv)``; exit 2 (returned or from argparse), one line on stderr naming
    ``needles``, no traceback."""
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert "error" in last
    for needle in needles:
        assert needle in last, last
    return last


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any training reached would mean a check came too late."""
    import robustret.cli.restorer_train as cli

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(cli, "train_restorer", fail)


# ---------------------------------------------------------------- restoration.train
TRAIN = ["--model", "srcnn", "--degrade", "noise", "--image-size", "16", "--epochs", "0",
         "--no-tensorboard"]


@pytest.mark.parametrize("argv, needles", [
    (["--model", "unet", "--degrade", "noise", "--out", "x"], ["--model"]),
    (["--model", "dae", "--degrade", "frost", "--out", "x"], ["unknown degradation 'frost'"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--severity", "7"], ["--severity"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--epochs", "-1"], ["--epochs"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--seed", "-3"], ["--seed"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--image-size", "0"],
     ["--image-size"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--device", "tpu"], ["tpu"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--dataset", "imagenet"],
     ["imagenet"]),
    (["--model", "dae", "--degrade", "noise", "--out", "x", "--dataset", "folder:/nowhere"],
     ["/nowhere"]),
])
def test_restorer_train_bad_input(argv: list[str], needles: list[str],
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _no_training(monkeypatch)
    _fails_in_one_line(restorer_cli.main, argv, capsys, *needles)


def test_restorer_train_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _no_training(monkeypatch)
    out = tmp_path / "taken.txt"
    out.write_text("not a folder")
    _fails_in_one_line(restorer_cli.main, [*TRAIN, "--out", str(out)], capsys, "is a file")
    _fails_in_one_line(restorer_cli.main, [*TRAIN, "--out", str(out / "run")], capsys,
                       "which is a file")


def test_restorer_train_out_is_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _no_training(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (Path(path) != locked
                                                           and real_access(path, mode)))
    _fails_in_one_line(restorer_cli.main, [*TRAIN, "--out", str(locked / "run")], capsys,
                       "read-only")


def test_restorer_train_images_too_small(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _no_training(monkeypatch)
    argv = [*TRAIN, "--out", str(tmp_path / "run")]
    # 16 px images are smaller than the SRCNN preset's 33 px crops
    _fails_in_one_line(restorer_cli.main, argv, capsys, "crop_size 33", "16x16")
    argv[argv.index("16")] = "8"  # and 8 px images are smaller than SSIM's window
    _fails_in_one_line(restorer_cli.main, argv, capsys, "SSIM", "11 px")


# ---------------------------------------------------------------- restoration.evaluate
@pytest.mark.parametrize("argv, needles", [
    (["--queries", "-1"], ["--queries"]),
    (["--severity", "7"], ["--severity"]),
    (["--seed", "-1"], ["--seed"]),
    (["--restorers", "dae"], ["--restorers"]),
    (["--degrade", "frost"], ["frost"]),
    (["--models-dir", "/no/such/models"], ["/no/such/models"]),
    (["--dataset", "imagenet"], ["imagenet"]),
    (["--device", "tpu"], ["tpu"]),
])
def test_restorer_evaluate_bad_input(argv: list[str], needles: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _fails_in_one_line(restorer_eval.main, [*argv, "--queries", "2"] if "--queries" not in argv
                       else argv, capsys, *needles)


def test_restorer_evaluate_images_too_small_for_ssim(tiny_folder: Path) -> None:
    import torch

    from robustret.core.checks import ConfigError

    with pytest.raises(ConfigError, match="SSIM needs images of at least 11 px"):
        restorer_eval.evaluate(torch.rand(2, 1, 8, 8), ["noise"], ["identity"])
    with pytest.raises(ConfigError, match="no query images"):
        restorer_eval.evaluate(torch.rand(0, 1, 16, 16), ["noise"], ["identity"])


# ---------------------------------------------------------------- robustret.data
@pytest.mark.parametrize("argv, needles", [
    (["info", "--dataset", "synthetic", "--image-size", "0"], ["--image-size"]),
    (["info", "--dataset", "synthetic", "--per-class", "-2"], ["--per-class"]),
    (["info", "--dataset", "synthetic", "--seed", "-1"], ["--seed"]),
    (["info", "--dataset", "nowhere:x"], ["nowhere"]),
])
def test_data_info_bad_input(argv: list[str], needles: list[str],
                             capsys: pytest.CaptureFixture[str]) -> None:
    _fails_in_one_line(data_cli.main, argv, capsys, *needles)


def test_data_info_preview_cannot_be_written(tmp_path: Path, tiny_folder: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = f"folder:{tiny_folder}"
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    _fails_in_one_line(data_cli.main, ["info", "--dataset", spec, "--preview", str(tmp_path)],
                       capsys, "is a folder")
    _fails_in_one_line(data_cli.main, ["info", "--dataset", spec, "--preview",
                                       str(blocker / "grid.png")], capsys, "is a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (Path(path) != locked
                                                           and real_access(path, mode)))
    _fails_in_one_line(data_cli.main, ["info", "--dataset", spec, "--preview",
                                       str(locked / "grid.png")], capsys, "read-only")


# ---------------------------------------------------------------- robustret.cli.experiment
def _experiment(tmp_path: Path, *extra: str) -> list[str]:
    return ["--config", "experiments/configs/smoke.toml", "--cache-dir", str(tmp_path / "c"),
            "--no-tensorboard", "-q", *extra]


def _no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import robustret.experiment.runner as runner

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the retriever was trained before the input was checked")

    monkeypatch.setattr(runner, "trained_retriever", fail)


def test_experiment_out_is_a_file_or_read_only(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _no_run(monkeypatch)
    taken = tmp_path / "taken"
    taken.write_text("x")
    _fails_in_one_line(experiment.main, _experiment(tmp_path, "--out", str(taken)), capsys,
                       "is a file")
    _fails_in_one_line(experiment.main, _experiment(tmp_path, "--out", str(taken / "sub")),
                       capsys, "which is a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (Path(path) != locked
                                                           and real_access(path, mode)))
    _fails_in_one_line(experiment.main, _experiment(tmp_path, "--out", str(locked / "run")),
                       capsys, "read-only", "--out")


@pytest.mark.parametrize("section, needles", [
    ("[retriever]\nepochs = 1.5\n", ["[retriever]", "epochs"]),
    ("[retriever]\nlr = \"fast\"\n", ["[retriever]", "lr"]),
    ("[retriever]\naugment = \"yes\"\n", ["[retriever]", "augment"]),
    ("[restorers.dae]\nepochs = 1.5\n", ["[restorers.dae]", "epochs"]),
    ("[restorers.srcnn]\ncrop_size = \"big\"\n", ["[restorers.srcnn]", "crop_size"]),
    ("seed = 1.5\n", ["seed"]),
    ("tensorboard = \"no\"\n", ["tensorboard"]),
    ("[restorers]\ndae = 3\n", ["[restorers.dae]", "table"]),  # were AttributeError tracebacks
    ("retriever = 7\n", ["[retriever]", "table"]),
    ("restorers = 7\n", ["[restorers]", "table"]),
])
def test_experiment_toml_values_of_the_wrong_type(section: str, needles: list[str],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _no_run(monkeypatch)
    config = tmp_path / "bad.toml"
    config.write_text('dataset = "synthetic"\n' + section)
    argv = ["--config", str(config), "--out", str(tmp_path / "out"), "--cache-dir",
            str(tmp_path / "c")]
    _fails_in_one_line(experiment.main, argv, capsys, *needles)


def test_experiment_data_too_small_fails_before_training(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _no_run(monkeypatch)
    # a trained restorer validates by SSIM, which 8 px images cannot give (auto trains none)
    argv = _experiment(tmp_path, "--out", str(tmp_path / "out"), "--image-size", "8",
                       "--restore", "oracle")
    _fails_in_one_line(experiment.main, argv, capsys, "SSIM")


def test_experiment_binary_config_file_is_one_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not text (once a UnicodeDecodeError traceback)."""
    config = tmp_path / "config.toml"
    config.write_bytes(bytes(range(128, 256)))
    _fails_in_one_line(experiment.main, ["--config", str(config), "--out", str(tmp_path / "o")],
                       capsys, str(config), "not a text file")


def test_experiment_weights_that_are_not_a_checkpoint_is_one_line(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --weights file torch cannot read (once a ValueError traceback after the data)."""
    weights = tmp_path / "weights.pt"
    weights.write_text("not a checkpoint\n")
    _fails_in_one_line(experiment.main, [
        "--dataset", f"folder:{tiny_folder}", "--image-size", "16", "--backbone", "resnet18",
        "--weights", str(weights), "--out", str(tmp_path / "o"), "--cache-dir",
        str(tmp_path / "cache"), "--no-tensorboard", "-q"],
        capsys, "--weights", str(weights), "leave --weights out")


def test_restorer_evaluate_models_dir_holding_a_retriever(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A retriever's run folder passed as restorer runs (was a ValueError traceback)."""
    import torch

    run = tmp_path / "retriever-run"
    run.mkdir()
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}, "epoch": 1}, run / "last.pt")
    _fails_in_one_line(restorer_eval.main, [
        "--dataset", f"folder:{tiny_folder}", "--models-dir", str(run), "--queries", "2"],
        capsys, "not a restorer checkpoint", "restorer runs only")
