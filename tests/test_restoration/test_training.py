"""Restorer training: the loss goes down, resume equals a straight run, CLI flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import restoration
from robustret.cli.restorer_train import build_parser, main
from robustret.core.checks import ConfigError
from robustret.train.restorer import train_restorer
from robustret.train.restorer_batches import random_crops
from robustret.train.restorer_config import RestorerTrainConfig


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g)
    up = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    return up.clamp(0, 1)


def _noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (images + 0.1 * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def _config(model: str, **overrides) -> RestorerTrainConfig:
    options = ({"widths": [4, 4, 4, 4, 4]} if model == "dae"
               else {"widths": [4, 4, 4, 4], "residual": True})
    base = dict(model=model, model_options=options, degrade="gaussian_noise", epochs=1,
                batch_size=8, lr=1e-2, lr_step=1, samples_per_epoch=16, val_images=8,
                device="cpu")
    return RestorerTrainConfig(**{**base, **overrides})


def _train(tmp_path, config, name="run"):
    return train_restorer(config, tmp_path / name, train_images=_images(24),
                          val_images=_images(8, 1), degrade=_noise, progress=False,
                          tensorboard=False)


@pytest.mark.parametrize("model", ["dae", "srcnn"])
def test_training_lowers_the_loss(tmp_path, model: str) -> None:
    crop = 16 if model == "srcnn" else None
    result = _train(tmp_path, _config(model, epochs=4, crop_size=crop, lr_step=10))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert {"val_psnr", "val_ssim", "val_psnr_degraded"} <= set(result.history[-1])
    loaded = restoration.load(tmp_path / "run")
    x = _images(2)
    assert torch.equal(loaded(x), result.model(x))
    assert loaded.checkpoint_info["degradation"] == "gaussian_noise"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 4


def test_resume_equals_straight_run(tmp_path) -> None:
    straight = _train(tmp_path, _config("dae", epochs=2), "straight")
    first = _train(tmp_path, _config("dae", epochs=1), "resumed")
    assert first.resumed_from == 0 and len(first.history) == 1
    second = _train(tmp_path, _config("dae", epochs=2), "resumed")
    assert second.resumed_from == 1 and [h["epoch"] for h in second.history] == [1, 2]
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.history[-1]["loss"] == second.history[-1]["loss"]


def test_other_configuration_is_not_resumed(tmp_path) -> None:
    _train(tmp_path, _config("dae", epochs=1))
    with pytest.raises(ValueError, match="another configuration"):
        _train(tmp_path, _config("dae", epochs=1, lr=1e-3))


def test_random_crops_take_the_same_window() -> None:
    clean = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    cc, dd = random_crops(clean, clean + 1, 5, torch.Generator().manual_seed(0))
    assert cc.shape == (2, 1, 5, 5) and torch.equal(dd, cc + 1)


def test_presets_and_validation() -> None:
    paper = RestorerTrainConfig.paper("srcnn", "lowres")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.lr_step) == (200, 64, 1e-3, 40)
    quick = RestorerTrainConfig.quick("srcnn", "lowres")
    assert quick.crop_size == 33 and quick.epochs < 20
    again = RestorerTrainConfig.quick("srcnn", "lowres", epochs=99, device="cpu")
    assert quick.fingerprint() == again.fingerprint()
    other_lr = RestorerTrainConfig.quick("srcnn", "lowres", lr=2e-3)
    assert quick.fingerprint() != other_lr.fingerprint()
    networks = ", ".join(restoration.networks())
    with pytest.raises(ConfigError, match=f"unknown restorer network 'unet'.*{networks}"):
        RestorerTrainConfig(model="unet")
    with pytest.raises(ConfigError, match="only trainable"):
        RestorerTrainConfig(model="median")
    with pytest.raises(ConfigError, match="unknown degradation 'frost'"):
        RestorerTrainConfig(degrade="frost")
    with pytest.raises(ValueError, match="batch_size"):
        RestorerTrainConfig(batch_size=0)


def test_fingerprint_includes_the_training_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import robustret.train.restorer_config as trainer

    before = RestorerTrainConfig.quick("dae").fingerprint()
    monkeypatch.setattr(trainer, "source_hash", lambda *modules: "edited " + ",".join(modules))
    assert RestorerTrainConfig.quick("dae").fingerprint() != before


def test_cli_parser_offers_the_registry_networks(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--model", "dae", "--degrade", "noise", "--out", "x",
                                      "--epochs", "2"])
    assert (args.profile, args.epochs, args.dataset) == ("quick", 2, "synthetic")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "unet", "--degrade", "noise", "--out", "x"])
    offered = ", ".join(repr(name) for name in restoration.networks())
    assert f"choose from {offered}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "median", "--degrade", "noise", "--out", "x"])


def test_cli_bad_degradation_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "dae", "--degrade", "frost", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown degradation 'frost'" in err and "Traceback" not in err


def test_a_hybrid_front_end_gets_the_drawn_blur_in_training(tmp_path, monkeypatch) -> None:
    """The parameters the degradation drew reach the restorer in training and validation,
    as they do at evaluation (a Wiener front end must deconvolve the blur each image got)."""
    from restoration.classical import WienerDeblur
    from robustret.train.restorer_batches import default_degrade

    seen: list[torch.Tensor] = []
    original = WienerDeblur.restore_raw

    def recording(self, images, a=None, b=None):
        seen.append(torch.as_tensor(a).clone())
        return original(self, images, a=a, b=b)

    monkeypatch.setattr(WienerDeblur, "restore_raw", recording)
    config = _config("hybrid", model_options={"front": "wiener", "widths": [4]},
                     degrade="motion_blur", samples_per_epoch=8, val_images=4)
    train_restorer(config, tmp_path / "run", train_images=_images(8), val_images=_images(4, 1),
                   degrade=default_degrade("motion_blur", 5), progress=False, tensorboard=False)
    assert len(seen) >= 2  # one training batch (8 images), one validation pass (4)
    gen = torch.Generator().manual_seed(0)
    _, drawn = default_degrade("motion_blur", 5)(_images(8), gen)
    assert set(drawn) >= {"a", "b"}
    assert seen[0].shape == (8,) and seen[-1].shape == (4,)
    assert not torch.all(seen[0] == seen[0][0])  # per-image draws, not one assumed blur


def test_the_training_code_names_every_module_of_the_trainer() -> None:
    """The trainer is split by job; an edit to any of its modules must change the resume and
    cache keys, so each is in TRAINING_CODE (and the experiment's RESTORER_CODE)."""
    import pkgutil

    import robustret.train
    from robustret.experiment.trained import RESTORER_CODE
    from robustret.train.restorer_config import TRAINING_CODE

    modules = {f"robustret.train.{found.name}"
               for found in pkgutil.iter_modules(robustret.train.__path__)
               if found.name.startswith("restorer")}
    assert len(modules) >= 5 and modules <= set(TRAINING_CODE) <= set(RESTORER_CODE)
    assert {"robustret.train.loop", "robustret.train.averaging"} <= set(TRAINING_CODE)


def test_the_cli_and_the_experiment_validate_on_the_same_held_out_gallery_images(
        tmp_path, tiny_folder, monkeypatch) -> None:
    """``python -m restoration.train`` and the experiment hand the trainer the same images:
    the gallery less the same seeded tenth to train on, that tenth to validate on (one
    function, ``gallery_holdout``), never the queries."""
    from types import SimpleNamespace

    import robustret.cli.restorer_train as cli
    import robustret.experiment.trained as trained
    from robustret.data import load
    from robustret.experiment.config import ExperimentConfig
    from robustret.train.restorer_validation import gallery_holdout

    given: dict[str, dict] = {}

    def capturing(entry: str):
        def train(config, out_dir, **kwargs):  # stands in for training
            given[entry] = kwargs
            return SimpleNamespace(model=torch.nn.Identity(), final={}, history=[],
                                   resumed_from=0, degraded_psnr=0.0, degraded_ssim=0.0,
                                   checkpoint=Path(out_dir) / "last.pt")
        return train

    monkeypatch.setattr(cli, "train_restorer", capturing("cli"))
    monkeypatch.setattr(trained, "train_restorer", capturing("experiment"))
    monkeypatch.setattr(trained, "weights_key", lambda model, checkpoint: "weights")
    dataset, seed = f"folder:{tiny_folder}", 5
    assert main(["--model", "dae", "--degrade", "noise", "--dataset", dataset, "--seed",
                 str(seed), "--out", str(tmp_path / "cli"), "--no-tensorboard"]) == 0
    data = load(dataset, seed=seed)
    config = ExperimentConfig.from_dict({"dataset": dataset, "seed": seed,
                                         "restorers": {"dae": {}}}).resolved()
    retriever = trained.TrainedModel(torch.nn.Identity(), "r", None, "rk")
    trained.trained_restorer("dae", "noise", [3], config, data, "data", torch.device("cpu"),
                             tmp_path / "models", retriever, torch.zeros(len(data.gallery), 4))

    train_part, held = gallery_holdout(len(data.gallery), seed)
    assert len(held) >= 2 and len(train_part) + len(held) == len(data.gallery)
    from_cli, from_experiment = given["cli"], given["experiment"]
    assert torch.equal(from_cli["val_images"], from_experiment["val_images"])
    assert torch.equal(from_cli["val_images"], data.gallery.images[held])
    assert torch.equal(from_cli["train_images"], from_experiment["train_images"])
    assert torch.equal(from_cli["train_images"], data.gallery.images[train_part])


def test_params_from_estimated_feeds_the_estimate_in_training_and_validation(
        tmp_path, monkeypatch) -> None:
    """With ``params_from = "estimated"`` the Wiener front end gets the blur estimated from each
    degraded image, never the drawn one, in training and validation alike."""
    import robustret.train.restorer_batches as batches
    from restoration.classical import WienerDeblur
    from robustret.train.restorer_batches import default_degrade

    seen, estimated = [], []
    original, estimate = WienerDeblur.restore_raw, batches.estimate_degradation

    def recording(self, images, a=None, b=None):
        seen.append(torch.as_tensor(a).clone())
        return original(self, images, a=a, b=b)

    def recorded_estimate(images, *args, **kwargs):
        out = estimate(images, *args, **kwargs)
        estimated.append(out.blur_a.clone())
        return out

    monkeypatch.setattr(WienerDeblur, "restore_raw", recording)
    monkeypatch.setattr(batches, "estimate_degradation", recorded_estimate)
    config = _config("hybrid", model_options={"front": "wiener", "widths": [4]},
                     degrade="motion_blur", samples_per_epoch=8, val_images=4,
                     params_from="estimated")
    train_restorer(config, tmp_path / "run", train_images=_images(8), val_images=_images(4, 1),
                   degrade=default_degrade("motion_blur", 5), progress=False, tensorboard=False)
    assert len(estimated) >= 2 and len(seen) >= 2  # the validation subset, a training batch
    # validation is drawn first, then each training batch; every pass gets its estimate
    assert torch.equal(seen[-1], estimated[0]) and torch.equal(seen[0], estimated[1])


def test_with_estimated_params_keeps_the_images_and_replaces_the_parameters() -> None:
    from restoration.estimate import estimate_degradation
    from robustret.train.restorer_batches import default_degrade, with_estimated_params

    drawn_fn = default_degrade("motion_blur", 5)
    degraded, drawn = drawn_fn(_images(6), torch.Generator().manual_seed(3))
    out, params = with_estimated_params(drawn_fn)(_images(6), torch.Generator().manual_seed(3))
    assert torch.equal(out, degraded)
    expected = estimate_degradation(degraded).params()
    assert set(params) == set(expected) and set(params) >= {"a", "b", "level", "kind", "severity"}
    assert all(torch.equal(params[name], expected[name]) for name in expected)
    assert not torch.equal(params["a"], drawn["a"])  # the estimate, not the draw
    with pytest.raises(ConfigError, match="params_from must be one of drawn, estimated"):
        RestorerTrainConfig(params_from="oracle")
