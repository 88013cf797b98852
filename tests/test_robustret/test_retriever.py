"""Retriever models: shapes, normalisation, backbones, weights files, checkpoint rebuild."""

from __future__ import annotations

import pytest
import torch

from robustret.core.io import atomic_save
from robustret.core.rng import make_generator
from robustret.models import BACKBONES, Retriever, build_retriever, init_retriever, load_retriever


def test_resnet34_shapes(device: torch.device) -> None:
    model = build_retriever("resnet34", num_classes=5, in_channels=1).to(device).eval()
    x = torch.rand(2, 1, 32, 32, device=device)
    assert model(x).shape == (2, 5)
    emb = model.embed(x)
    assert emb.shape == (2, 512) and model.embedding_dim == 512
    assert emb.device.type == device.type


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet50", 2048), ("vgg19", 4096)])
def test_backbone_dims(name: str, dim: int) -> None:
    model = build_retriever(name, num_classes=3, in_channels=3).eval()
    with torch.no_grad():
        assert model.embed(torch.rand(1, 3, 32, 32)).shape == (1, dim)
    assert model.embedding_dim == dim


def test_grayscale_stem_and_normalisation() -> None:
    model = build_retriever("resnet18", num_classes=4, in_channels=1).eval()
    assert (
        isinstance(model.stem, torch.nn.Conv2d)
        and model.stem.in_channels == 1
        and model.stem.out_channels == 3
    )
    seen = {}

    def hook(
        module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        seen["x"] = inputs[0]

    model.stem.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 1, 32, 32))
    assert torch.all(seen["x"] == -1.0)  # [0, 1] -> [-1, 1] before the stem


def test_bad_input_and_args() -> None:
    model = build_retriever("resnet18", num_classes=2, in_channels=1)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(KeyError, match="resnet18"):
        build_retriever("resnet35", num_classes=2)
    with pytest.raises(ValueError, match="--weights PATH"):
        build_retriever("resnet34", num_classes=2, pretrained="imagenet")
    assert "vgg19" in BACKBONES.names()


def test_weights_file_loaded_and_head_ignored(tmp_path) -> None:
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    model = build_retriever("resnet18", num_classes=3, in_channels=1, weights=path)
    assert torch.equal(model.trunk.resnet.conv1.weight, net.conv1.weight)
    assert model.head.out_features == 3 and model.weights_file == str(path)


def test_bad_weights_file_names_path_and_keys(tmp_path) -> None:
    from torchvision.models import resnet18

    path = tmp_path / "wrong.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"wrong\.pth does not fit.*missing keys: layer1\.2\.bn1"):
        build_retriever("resnet34", num_classes=3, weights=path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_retriever("resnet18", num_classes=3, weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        build_retriever("resnet18", num_classes=3, weights=junk)


def test_seeded_init_is_reproducible() -> None:
    a = init_retriever(build_retriever("resnet18", num_classes=3), make_generator(7))
    b = init_retriever(build_retriever("resnet18", num_classes=3), make_generator(7))
    c = init_retriever(build_retriever("resnet18", num_classes=3), make_generator(8))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)


def test_load_retriever_round_trip(tmp_path) -> None:
    model = build_retriever("resnet18", num_classes=3, in_channels=1).eval()
    atomic_save({"arch": model.arch(), "model": model.state_dict()}, tmp_path / "last.pt")
    loaded = load_retriever(tmp_path / "last.pt")
    assert isinstance(loaded, Retriever) and not loaded.training
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    atomic_save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="arch"):
        load_retriever(tmp_path / "other.pt")


def test_channels_last_same_result() -> None:
    model = build_retriever("resnet18", num_classes=3).eval()
    fast = build_retriever("resnet18", num_classes=3, channels_last=True).eval()
    fast.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x), fast.embed(x), rtol=1e-4, atol=1e-4)
