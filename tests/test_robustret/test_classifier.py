"""Retriever training: loss goes down, seeded determinism, checkpoint loads via load_retriever."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from robustret.models import build_retriever, load_retriever
from robustret.train.classifier import RetrieverTrainConfig, train_retriever


def _gallery(n: int = 16) -> SimpleNamespace:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = 0.1 * torch.rand(n, 1, 16, 16, generator=generator)
    images[labels == 1, :, 4:12, 4:12] += 0.8  # class 1: bright square
    return SimpleNamespace(images=images.clamp(0, 1), labels=labels)


def _train(tmp_path=None, epochs: int = 3, seed: int = 0, device="cpu"):
    model = build_retriever("resnet18", num_classes=2)
    config = RetrieverTrainConfig(
        epochs=epochs, batch_size=8, lr=1e-3, seed=seed, channels_last=False
    )
    result = train_retriever(
        model, _gallery(), config, device=device, out_dir=tmp_path, progress=False
    )
    return model, result


def test_loss_decreases_and_checkpoint_loads(tmp_path, device) -> None:
    model, result = _train(tmp_path, device=device)
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert "accuracy" in result.final
    loaded = load_retriever(tmp_path / "last.pt", device)
    x = _gallery().images[:4].to(device)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)
    assert loaded.embed(x).shape == (4, 512)


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, _ = _train(epochs=1, seed=1)
    b, _ = _train(epochs=1, seed=1)
    c, _ = _train(epochs=1, seed=2)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)


def test_degrade_hook_called() -> None:
    calls = []

    def degrade(x, generator):
        calls.append(x.shape[0])
        return (x + 0.1 * torch.rand(x.shape, generator=generator)).clamp(0, 1)

    model = build_retriever("resnet18", num_classes=2)
    train_retriever(
        model,
        _gallery(16),
        RetrieverTrainConfig(epochs=1, batch_size=8, channels_last=False),
        device="cpu",
        progress=False,
        train_degrade=degrade,
    )
    assert calls and all(0 < n <= 8 for n in calls)


def test_presets() -> None:
    assert RetrieverTrainConfig.paper().epochs == 200
    assert RetrieverTrainConfig.quick().epochs < 20


def test_loaded_trunk_weights_survive_seeded_init(tmp_path) -> None:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    model = build_retriever("resnet18", num_classes=2, weights=tmp_path / "r18.pth")
    state = torch.get_rng_state()
    train_retriever(
        model,
        _gallery(8),
        RetrieverTrainConfig(epochs=0, channels_last=False),
        device="cpu",
        progress=False,
    )
    assert torch.equal(torch.get_rng_state(), state)  # seeded init never touches the global RNG
    assert torch.equal(model.trunk.resnet.conv1.weight, net.conv1.weight)
