"""Robust retriever: stability fine-tuning on degraded images, and rows that say what it saw."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from robustret.cli.experiment import main
from robustret.core.checks import ConfigError
from robustret.data.base import ImageSet
from robustret.models import build_retriever
from robustret.train.robust import RobustTuneConfig, consistency_loss, finetune_robust


def _gallery(n: int = 16) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    low = torch.rand(n, 1, 4, 4, generator=g) * 0.3 + labels.view(-1, 1, 1, 1) * 0.5
    images = torch.nn.functional.interpolate(low, size=32, mode="nearest").clamp(0, 1)
    return ImageSet(images=images, labels=labels, class_names=("a", "b"))


def test_consistency_loss_pulls_the_degraded_embedding_only() -> None:
    clean = torch.randn(4, 8, requires_grad=True)
    degraded = torch.randn(4, 8, requires_grad=True)
    assert float(consistency_loss(clean.detach(), clean)) == 0.0
    loss = consistency_loss(degraded, clean)
    loss.backward()
    assert float(loss.detach()) > 0 and degraded.grad is not None and clean.grad is None
    scaled = consistency_loss(10 * degraded.detach(), 10 * clean.detach())
    assert torch.isclose(scaled, loss.detach())  # normalised by the clean mean square


def test_finetuning_changes_the_weights_resumes_and_is_seeded(tmp_path: Path) -> None:
    def tuned(folder: str, epochs: int) -> torch.nn.Module:
        model = build_retriever("resnet18", num_classes=2, in_channels=1)
        torch.manual_seed(0)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.02)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        config = RobustTuneConfig(epochs=epochs, batch_size=8, lr=1e-3, augment=False)
        result = finetune_robust(model, _gallery(), ["gaussian_noise"], config, device="cpu",
                                 out_dir=tmp_path / folder, progress=False)
        assert {"consistency", "accuracy_degraded"} <= set(result.final)
        assert not model.training
        assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())
        return model

    straight = tuned("straight", 2)
    tuned("resumed", 1)
    resumed = tuned("resumed", 2)  # one more epoch from the checkpoint of the first
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_bad_settings_and_names_say_what_is_valid() -> None:
    with pytest.raises(ConfigError, match="consistency_weight"):
        RobustTuneConfig(consistency_weight=-1)
    with pytest.raises(ConfigError, match="robust.epochs must be an integer"):
        RobustTuneConfig(epochs=1.5)
    model = build_retriever("resnet18", num_classes=2, in_channels=1)
    with pytest.raises(ConfigError, match="at least one degradation"):
        finetune_robust(model, _gallery(), [], RobustTuneConfig(), device="cpu")
    with pytest.raises(ConfigError, match="unknown degradation.*frost.*available"):
        finetune_robust(model, _gallery(), ["frost"], RobustTuneConfig(), device="cpu")


@pytest.mark.slow
def test_the_experiment_fine_tunes_and_rows_say_what_the_retriever_saw(
        tiny_folder: Path, tmp_path: Path) -> None:
    common = ["--dataset", f"folder:{tiny_folder}", "--image-size", "32", "--retriever-epochs",
              "1", "--backbone", "resnet18", "--degrade", "gaussian_noise", "motion_blur",
              "--restore", "none", "--topk", "1", "--cache-dir", str(tmp_path / "cache"),
              "--no-tensorboard", "-q", "--measures", "topk"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "robust"), "--robust-train",
                 "noise", "--robust-epochs", "1"]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    robust = json.loads((tmp_path / "robust" / "results.json").read_text())
    assert {tuple(row["retriever_seen"]) for row in plain["rows"]} == {()}
    # the noise mixture's members are seen, so gaussian_noise is seen and motion_blur is not
    assert {tuple(row["retriever_seen"]) for row in robust["rows"]} == {
        ("gaussian_noise", "noise", "salt_pepper", "speckle")}
    assert "| seen | unseen |" in (tmp_path / "robust" / "results.md").read_text()
    assert "| seen | unseen |" not in (tmp_path / "plain" / "results.md").read_text()
    assert robust["resolved"]["retriever_key"] != plain["resolved"]["retriever_key"]
    assert robust["config"]["robust_train"] == ["noise"]
    # a store written when the label was the bare mixture name: reused, relabelled
    stored = sorted((tmp_path / "robust" / ".conditions").glob("*.json"))
    for path in stored:
        record = json.loads(path.read_text())
        for row in record["rows"]:
            row["retriever_seen"] = ["noise"]
        path.write_text(json.dumps(record))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    assert main([*common, "--out", str(tmp_path / "robust"), "--robust-train",
                 "noise", "--robust-epochs", "1"]) == 0
    again = json.loads((tmp_path / "robust" / "results.json").read_text())
    assert {row["reused"] for row in again["rows"]} == {True}
    assert {tuple(row["retriever_seen"]) for row in again["rows"]} == {
        ("gaussian_noise", "noise", "salt_pepper", "speckle")}
    # motion_blur is evaluated although unseen in the fine-tuning
    assert {row["degradation"] for row in robust["rows"]} == {None, "gaussian_noise",
                                                              "motion_blur"}
