"""Metric-learning losses: mining picks the hardest pairs, each loss falls on a tiny separable
problem, class-balanced batches, and the retriever trained with each loss."""

from __future__ import annotations

import pytest
import torch

from robustret.train.class_batches import class_balanced_batches
from robustret.train.classifier import RetrieverTrainConfig, settings_key
from robustret.train.metric_losses import (
    arcface_logits,
    arcface_loss,
    contrastive_loss,
    hardest_pairs,
    pairwise_distances,
    triplet_loss,
)


def test_mining_picks_the_farthest_positive_and_the_nearest_negative() -> None:
    points = torch.tensor([[0.0], [1.0], [3.0], [1.5], [10.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    distances = pairwise_distances(points)
    assert torch.allclose(distances, (points - points.T).abs(), atol=1e-5)
    positive, negative, valid = hardest_pairs(distances, labels)
    assert positive.tolist()[:3] == [2, 2, 0]  # anchor 0: 3 is farther than 1
    assert negative.tolist()[:3] == [3, 3, 3]  # 1.5 is the nearest other-class point
    assert positive.tolist()[3:] == [4, 3] and negative.tolist()[3:] == [1, 2]
    assert valid.all()
    _, _, alone = hardest_pairs(distances[:4, :4], torch.tensor([0, 0, 0, 1]))
    assert alone.tolist() == [True, True, True, False]  # class 1 has no positive


def test_triplet_loss_is_zero_when_every_margin_holds_and_counts_violations() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    loss, active = triplet_loss(apart, labels, margin=0.2)
    assert float(loss) == 0.0 and active == 0.0
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.01], [-1.0, 0.01]])
    loss, active = triplet_loss(mixed, labels, margin=0.2)
    assert float(loss) == pytest.approx(2.0 - 0.01 + 0.2, abs=1e-3) and active == 1.0


def _separable(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 8, generator=generator) * 3
    labels = torch.arange(4).repeat_interleave(6)
    return centres[labels] + torch.randn(24, 8, generator=generator), labels


@pytest.mark.parametrize("name", ["triplet", "contrastive", "arcface"])
def test_each_loss_falls_on_a_separable_problem(name: str) -> None:
    torch.manual_seed(0)
    x, labels = _separable()
    net = torch.nn.Linear(8, 6)
    centres = torch.nn.Parameter(torch.randn(4, 6))
    optimizer = torch.optim.Adam([*net.parameters(), centres], lr=0.05)

    def loss() -> torch.Tensor:
        out = net(x)
        if name == "triplet":
            return triplet_loss(out, labels)[0]
        if name == "contrastive":
            return contrastive_loss(out, labels)[0]
        return arcface_loss(out, centres, labels)[0]

    first = float(loss().detach())
    for _ in range(60):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert float(loss().detach()) < 0.5 * first


def test_arcface_adds_the_margin_to_the_true_class_only() -> None:
    embeddings = torch.tensor([[1.0, 1.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = arcface_logits(embeddings, weight, torch.tensor([0]), margin=0.0, scale=1.0)
    shifted = arcface_logits(embeddings, weight, torch.tensor([0]), margin=0.3, scale=1.0)
    angle = torch.tensor(torch.pi / 4)
    assert float(shifted[0, 0]) == pytest.approx(float(torch.cos(angle + 0.3)), abs=1e-5)
    assert float(shifted[0, 1]) == pytest.approx(float(plain[0, 1]), abs=1e-6)


def test_class_balanced_batches_cover_each_image_once_in_groups_of_a_class() -> None:
    labels = torch.tensor([0] * 9 + [1] * 8 + [2] * 3)
    batches = class_balanced_batches(labels, batch_size=8, per_class=4,
                                     generator=torch.Generator().manual_seed(0))
    seen = torch.cat(batches)
    assert sorted(seen.tolist()) == list(range(20))
    for batch in batches:
        counts = torch.bincount(labels[batch])
        assert int(counts.max()) >= 2  # at least one positive pair in each batch
    again = class_balanced_batches(labels, batch_size=8, per_class=4,
                                   generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    with pytest.raises(ValueError, match="per_class must be >= 2"):
        class_balanced_batches(labels, 8, 1, torch.Generator())


def test_loss_settings_are_checked_and_left_out_of_the_key_at_their_defaults() -> None:
    default = RetrieverTrainConfig.quick()
    assert "loss" not in settings_key(default) and "margin" not in settings_key(default)
    assert settings_key(RetrieverTrainConfig.quick(loss="triplet"))["loss"] == "triplet"
    assert RetrieverTrainConfig.quick(loss="triplet").margin_value == 0.2
    with pytest.raises(ValueError, match="loss must be one of"):
        RetrieverTrainConfig.quick(loss="softmax")
    with pytest.raises(ValueError, match="margin is a setting of the metric losses"):
        RetrieverTrainConfig.quick(margin=0.3)


@pytest.mark.parametrize("loss", ["triplet", "arcface"])
def test_the_retriever_trains_with_a_metric_loss(loss: str) -> None:
    from robustret.data.base import ImageSet
    from robustret.models import build_retriever
    from robustret.train.classifier import train_retriever

    x, labels = torch.rand(16, 1, 32, 32), torch.arange(4).repeat_interleave(4)
    model = build_retriever("resnet18", num_classes=4)
    config = RetrieverTrainConfig(epochs=2, batch_size=8, lr_step=1, augment=False, loss=loss,
                                  channels_last=False)
    result = train_retriever(model, ImageSet(x, labels, list("abcd")), config, device="cpu")
    metric = "accuracy" if loss == "arcface" else "active"
    assert len(result.history) == 2 and metric in result.final
    assert all(torch.isfinite(p).all() for p in model.parameters())
