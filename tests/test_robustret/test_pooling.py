"""GeM pooling: its limits (average at p = 1, maximum for large p), its gradient into p, its
swap into a backbone, and the retriever built with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustret.models import build_retriever, load_retriever
from robustret.models.backbones import Backbone, use_gem
from robustret.models.pooling import GeM, gem, global_pool_name


def _map() -> torch.Tensor:
    return torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)) + 0.01


def test_gem_at_p1_is_the_average_and_approaches_the_maximum() -> None:
    x = _map()
    average = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(gem(x, 1.0), average, atol=1e-6)
    assert gem(x, 3.0).shape == (2, 3, 1, 1)
    maximum = x.amax(dim=(2, 3), keepdim=True)
    gaps = [float((maximum - gem(x, p)).max()) for p in (3.0, 30.0, 300.0)]
    assert gaps[0] > gaps[1] > gaps[2] >= 0 and gaps[2] < 0.02  # 20 positions: n^(-1/p)
    assert torch.isfinite(gem(x * 100, 300.0)).all()  # no overflow for large p


def test_gem_clamps_p_below_one_and_activations_below_eps() -> None:
    x = _map()
    assert torch.allclose(gem(x, 0.2), gem(x, 1.0))
    negative = -x
    assert torch.allclose(gem(negative, 3.0), torch.full((2, 3, 1, 1), 1e-6), rtol=1e-4)
    with pytest.raises(ValueError, match="feature map"):
        gem(torch.rand(2, 3), 3.0)


def test_gradient_flows_into_learnable_p_and_not_into_a_fixed_one() -> None:
    learned = GeM(3.0)
    learned(_map()).sum().backward()
    assert learned.p.grad is not None and float(learned.p.grad.abs().sum()) > 0
    fixed = GeM(3.0, learn=False)
    assert "p" in dict(fixed.named_buffers()) and not list(fixed.parameters())
    with pytest.raises(ValueError, match=">= 1"):
        GeM(0.5)


def test_use_gem_replaces_the_global_pool_or_refuses_a_token_model() -> None:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert global_pool_name(trunk) == "1"
    backbone = Backbone(trunk, head_name="", embedding_dim=4, pool_name="1")
    use_gem(backbone, "tiny", GeM(1.0))
    assert isinstance(trunk[1], GeM)
    tokens = Backbone(nn.Identity(), head_name="head", embedding_dim=4, pool_name=None)
    with pytest.raises(ValueError, match="token model.*--pooling avg"):
        use_gem(tokens, "vit", GeM())


def test_retriever_with_gem_embeds_records_its_pooling_and_reloads(tmp_path) -> None:
    from robustret.core.io import atomic_save

    model = build_retriever("resnet18", num_classes=3, pooling="gem", gem_p=2.0).eval()
    x = torch.rand(2, 1, 32, 32)
    assert model.embed(x).shape == (2, 512)
    assert model.arch()["pooling"] == "gem" and model.arch()["gem_p"] == 2.0
    assert "pooling" not in build_retriever("resnet18", num_classes=3).arch()  # avg: as before
    assert "trunk.resnet.avgpool.p" in model.state_dict()
    atomic_save({"arch": model.arch(), "model": model.state_dict()}, tmp_path / "last.pt")
    again = load_retriever(tmp_path / "last.pt")
    assert torch.allclose(again.embed(x), model.embed(x))
    with pytest.raises(ValueError, match="--pooling avg"):
        build_retriever("vgg19", num_classes=3, pooling="gem")
