"""Backbones by name: torchvision classification models (``tv:NAME``), timm models
(``timm:NAME``, skipped without timm), their gray 1x1 stem, GeM where a map exists, and the
one-line error of a weights file whose keys do not fit."""

from __future__ import annotations

import pytest
import torch

from robustret.core.checks import ConfigError
from robustret.experiment.config import ExperimentConfig
from robustret.models import build_retriever
from robustret.models.backbones import build_backbone, check_backbone


def _gray() -> torch.Tensor:
    return torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_a_torchvision_model_builds_and_embeds_a_gray_batch() -> None:
    model = build_retriever("tv:mobilenet_v3_small", num_classes=3).eval()
    assert isinstance(model.stem, torch.nn.Conv2d) and model.stem.in_channels == 1
    assert model.head_name == "classifier.3" and model.embedding_dim == 1024
    with torch.no_grad():
        assert model.embed(_gray()).shape == (2, 1024) and model(_gray()).shape == (2, 3)
    gem = build_retriever("tv:mobilenet_v3_small", num_classes=3, pooling="gem").eval()
    assert "trunk.net.avgpool.p" in gem.state_dict()
    with torch.no_grad():
        assert gem.embed(_gray()).shape == (2, 1024)


def test_plain_torchvision_names_and_registered_names_resolve() -> None:
    assert build_backbone("tv:resnet18").pool_name == "resnet.avgpool"  # the registered one
    check_backbone("convnext_tiny")
    check_backbone("tv:vit_b_16")
    with pytest.raises(ValueError, match="unknown torchvision classification model 'nope'"):
        check_backbone("tv:nope")
    with pytest.raises(KeyError, match="tv:NAME"):
        check_backbone("resnet35")
    with pytest.raises(ConfigError, match="resnet35"):
        ExperimentConfig(backbone="resnet35").validate()


def test_weights_with_wrong_keys_are_one_line_naming_them(tmp_path) -> None:
    state = build_retriever("resnet18", num_classes=2).trunk.resnet.state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(1000, 512)  # the file's head: ignored
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as caught:
        build_retriever("resnet18", num_classes=2, weights=path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: extra.weight" in message and "fc.weight" not in message


def test_weights_load_into_a_gem_trunk(tmp_path) -> None:
    source = build_retriever("resnet18", num_classes=2)
    path = tmp_path / "good.pth"
    torch.save(source.trunk.resnet.state_dict(), path)
    model = build_retriever("resnet18", num_classes=2, pooling="gem", weights=path)
    assert torch.equal(model.trunk.resnet.conv1.weight, source.trunk.resnet.conv1.weight)
    assert float(model.trunk.resnet.avgpool.p.detach()) == 3.0  # not in the file: its setting


def test_a_timm_model_builds_embeds_a_gray_batch_and_takes_gem(tmp_path) -> None:
    timm = pytest.importorskip("timm", reason="timm is not installed (the 'timm' extra)")
    model = build_retriever("timm:resnet18", num_classes=3, pooling="gem").eval()
    assert model.head_name == "fc" and model.embedding_dim == 512
    with torch.no_grad():
        assert model.embed(_gray()).shape == (2, 512)
    net = timm.create_model("resnet18", pretrained=False)  # a timm checkpoint, head included
    path = tmp_path / "timm_resnet18.pth"
    torch.save(net.state_dict(), path)
    loaded = build_retriever("timm:resnet18", num_classes=3, weights=path)
    assert torch.equal(loaded.trunk.net.conv1.weight, net.conv1.weight)
    with pytest.raises(ValueError, match="token model"):
        build_retriever("timm:vit_tiny_patch16_224", num_classes=3, pooling="gem")


def test_construction_draws_are_fixed_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = build_backbone("tv:vit_b_16").trunk.net.encoder.pos_embedding
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    assert torch.equal(build_backbone("tv:vit_b_16").trunk.net.encoder.pos_embedding, first)
