"""Embedding extraction and the retriever's interface."""

from __future__ import annotations

import pytest
import torch

from robustret.models import build_retriever
from robustret.retrieval import extract_embeddings


def test_extract_matches_embed_and_batching(device) -> None:
    model = build_retriever("resnet18", num_classes=3).to(device).eval()
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    out = extract_embeddings(model, x, batch_size=2, device=device, progress=False)
    assert out.shape == (5, 512) and out.dtype == torch.float32 and out.device.type == "cpu"
    with torch.no_grad():
        assert torch.allclose(out, model.embed(x.to(device)).cpu(), atol=1e-4)
    loader = [(x[:3], torch.zeros(3)), (x[3:], torch.zeros(2))]
    assert torch.allclose(
        extract_embeddings(model, loader, device=device, progress=False), out, atol=1e-4
    )


def test_pretrained_without_file_and_bad_weights(tmp_path) -> None:
    with pytest.raises(ValueError, match="--weights PATH"):
        build_retriever("resnet18", num_classes=2, pretrained="imagenet")
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(3, 512)}, bad)
    with pytest.raises(ValueError, match="bad.pth.*missing keys"):
        build_retriever("resnet18", num_classes=2, weights=bad)


def test_torchvision_weights_load(tmp_path) -> None:
    from torchvision.models import resnet18

    reference = resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_retriever("resnet18", num_classes=5, weights=path)
    assert torch.equal(model.trunk.resnet.conv1.weight, reference.conv1.weight)
    assert model.head.out_features == 5
