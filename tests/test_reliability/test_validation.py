"""Checks against the data before any training (robustret.experiment.preflight) and nested config
types."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustret.core.checks import ConfigError, check_writable_folder
from robustret.data import ImageSet, RetrievalData
from robustret.experiment.config import ExperimentConfig, load_config_file
from robustret.experiment.preflight import check_against_data, ssim_window
from robustret.train.classifier import RetrieverTrainConfig
from robustret.train.restorer_config import RestorerTrainConfig

SMOKE = Path("experiments/configs/smoke.toml")


def _data(size: int = 32, gallery: int = 12, queries: int = 6) -> RetrievalData:
    def part(n: int) -> ImageSet:
        return ImageSet(torch.rand(n, 1, size, size), torch.arange(n) % 3, ["a", "b", "c"])

    return RetrievalData("test", part(gallery), part(queries), ["a", "b", "c"])


def _config(**values: object) -> ExperimentConfig:
    return ExperimentConfig.from_dict({"degradations": ["noise"], **values}).resolved()


def test_a_plain_config_passes() -> None:
    assert check_against_data(_config(ks=[1, 5]), _data()) is None


def test_top_k_larger_than_the_gallery() -> None:
    with pytest.raises(ConfigError, match="top-k 20 is larger than the gallery"):
        check_against_data(_config(ks=[1, 20]), _data(gallery=12))


@pytest.mark.parametrize("split, sizes", [("gallery", dict(gallery=0)),
                                          ("query", dict(queries=0))])
def test_an_empty_split(split: str, sizes: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=f"the {split} split .* is empty"):
        check_against_data(_config(ks=[1]), _data(**sizes))


def test_images_too_small_for_ssim_when_a_network_trains() -> None:
    assert ssim_window() == 11
    with pytest.raises(ConfigError, match="SSIM, which needs images of at least 11 px"):
        check_against_data(_config(ks=[1], restore="dae"), _data(size=10))
    # no network in the plan: no restorer training, no SSIM
    check_against_data(_config(ks=[1], restore="median"), _data(size=10))


def test_a_crop_larger_than_the_images() -> None:
    config = _config(ks=[1], degradations=["lowres"], restore="srcnn")
    assert config.restorers["srcnn"].crop_size == 33
    with pytest.raises(ConfigError, match=r"crop_size 33 is larger than the 32x32.*"
                                          r"\[restorers.srcnn\]"):
        check_against_data(config, _data(size=32))
    check_against_data(config, _data(size=40))


def test_a_restorers_min_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import restoration

    monkeypatch.setattr(restoration.RESTORERS.get("median"), "min_size", 48)
    with pytest.raises(ConfigError, match="restorer median needs images of at least 48 px"):
        check_against_data(_config(ks=[1], restore="median"), _data(size=32))


def test_a_degradation_that_does_not_fit_the_images() -> None:
    # lowres severity 5 reduces by 3 Haar levels: 8 px at least
    config = _config(ks=[1], degradations=["lowres"], severities=[5], restore="none")
    with pytest.raises(ConfigError, match="lowres at severity 5 cannot run on the 6x6 images"):
        check_against_data(config, _data(size=6))
    check_against_data(config, _data(size=8))


def test_the_shipped_smoke_config_can_run_every_restorer() -> None:
    values = load_config_file(SMOKE)
    config = ExperimentConfig.from_dict(
        {**values, "restore": "all", "degradations": ["noise", "lowres", "motion_blur"]})
    config = config.resolved().validate()
    size = values["image_size"]
    check_against_data(config, _data(size=size, gallery=30, queries=30))


@pytest.mark.slow
def test_the_shipped_smoke_config_runs_every_restorer(tmp_path: Path) -> None:
    from robustret.cli.experiment import main

    argv = ["--config", str(SMOKE), "--restore", "all", "--degrade", "noise", "lowres",
            "motion_blur", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
            "--per-class", "2", "--topk", "1", "--metric", "l2", "--no-tensorboard", "-q"]
    assert main(argv) == 0
    assert (tmp_path / "out" / "results.md").is_file()


@pytest.mark.parametrize("values, key", [
    (dict(epochs=1.5), "epochs"), (dict(lr="fast"), "lr"), (dict(augment="yes"), "augment"),
    (dict(batch_size=True), "batch_size"), (dict(max_images=2.5), "max_images"),
    (dict(channels_last=1), "channels_last"), (dict(label_smoothing="0"), "label_smoothing"),
])
def test_retriever_section_types(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} must be"):
        RetrieverTrainConfig(**values)
    with pytest.raises(ConfigError, match=rf"\[retriever\]: {key} must be"):
        ExperimentConfig.from_dict({"retriever": values})


@pytest.mark.parametrize("values, key", [
    (dict(epochs=1.5), "epochs"), (dict(lr="fast"), "lr"), (dict(severity="3"), "severity"),
    (dict(crop_size="big"), "crop_size"), (dict(samples_per_epoch=True), "samples_per_epoch"),
    (dict(device=0), "device"), (dict(model_options=[1]), "model_options"),
])
def test_restorer_section_types(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} must be"):
        RestorerTrainConfig(**values)
    with pytest.raises(ConfigError, match=rf"\[restorers.dae\]: {key} must be"):
        ExperimentConfig.from_dict({"restorers": {"dae": values}})


def test_out_dir_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        ExperimentConfig(out_dir=taken).validate()
    with pytest.raises(ConfigError, match="lies inside .*taken, which is a file"):
        ExperimentConfig(cache_dir=taken / "models").validate()
    check_writable_folder(tmp_path / "new" / "deeper", "out_dir", "--out")  # made on demand
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (Path(path) != tmp_path
                                                           and real_access(path, mode)))
    with pytest.raises(ConfigError, match="read-only.*--out"):
        ExperimentConfig(out_dir=tmp_path / "run").validate()
