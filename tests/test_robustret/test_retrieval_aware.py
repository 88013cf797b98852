"""Retrieval-aware restorer training: the feature term, its guide, recipes, the hybrid."""

from __future__ import annotations

import json

import pytest
import torch

import restoration
from robustret.core.checks import ConfigError
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.recipes import RECIPES, recipe, recipe_names, restorer_names
from robustret.models import build_retriever
from robustret.train.restorer import train_restorer
from robustret.train.restorer_batches import EpochBatches
from robustret.train.restorer_config import RestorerTrainConfig
from robustret.train.restorer_losses import (
    class_loss,
    clean_features,
    feature_loss,
    mean_pair_distance,
    neighbour_loss,
)
from robustret.train.restorer_validation import RetrievalGuide, gallery_holdout


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g)
    return torch.nn.functional.interpolate(low, size=32, mode="bilinear").clamp(0, 1)


def _noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (images + 0.2 * torch.randn(images.shape, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def retriever() -> torch.nn.Module:
    torch.manual_seed(0)  # test-side only: a fixed untrained retriever
    return build_retriever("resnet18", num_classes=2, in_channels=1).eval()


def test_feature_loss_is_zero_on_the_clean_image_and_reaches_only_the_input(retriever) -> None:
    clean = _images(4)
    assert float(feature_loss(retriever, clean, clean, ("embedding",)).detach()) == 0.0
    restored = _noise(clean, torch.Generator().manual_seed(1)).requires_grad_(True)
    loss = feature_loss(retriever, restored, clean, ("layer2", "embedding"))
    assert float(loss.detach()) > 0
    loss.backward()
    assert restored.grad is not None and float(restored.grad.abs().sum()) > 0


def _guide(retriever, n_val: int) -> RetrievalGuide:
    gallery = _images(6, 7)
    with torch.no_grad():
        embeddings = retriever.embed(gallery)
    return RetrievalGuide(retriever, "retriever-key", embeddings, torch.tensor([0, 1] * 3),
                          torch.tensor([0, 1] * (n_val // 2)))


def _config(**overrides) -> RestorerTrainConfig:
    base = dict(model="dae", model_options={"widths": [4, 4, 4, 4, 4]},
                degrade="gaussian_noise", epochs=1, batch_size=4, lr=1e-2, lr_step=1,
                samples_per_epoch=8, val_images=4, device="cpu", feature_weight=1.0)
    return RestorerTrainConfig(**{**base, **overrides})


def test_training_through_the_frozen_retriever_reports_retrieval_validation(
        tmp_path, retriever) -> None:
    before = {k: v.clone() for k, v in retriever.state_dict().items()}
    flags = [p.requires_grad for p in retriever.parameters()]
    result = train_restorer(_config(), tmp_path / "run", train_images=_images(8),
                            val_images=_images(4, 1), degrade=_noise, progress=False,
                            tensorboard=False, guide=_guide(retriever, 4))
    record = result.history[-1]
    assert {"feature_loss", "pixel_loss", "val_top1", "val_top1_degraded", "val_top1_clean",
            "val_embedding_cosine"} <= set(record)
    assert 0.0 <= record["val_top1"] <= 1.0 and -1.0 <= record["val_embedding_cosine"] <= 1.0
    after = retriever.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats too
    assert [p.requires_grad for p in retriever.parameters()] == flags
    assert not retriever.training


def test_the_retriever_is_part_of_the_resume_key(tmp_path, retriever) -> None:
    kwargs = dict(train_images=_images(8), val_images=_images(4, 1), degrade=_noise,
                  progress=False, tensorboard=False)
    train_restorer(_config(), tmp_path / "run", guide=_guide(retriever, 4), **kwargs)
    other = _guide(retriever, 4)
    other = RetrievalGuide(other.retriever, "another-retriever", other.gallery_embeddings,
                           other.gallery_labels, other.val_labels)
    with pytest.raises(ValueError, match="another configuration"):
        train_restorer(_config(), tmp_path / "run", guide=other, **kwargs)


def test_the_task_term_is_the_heads_cross_entropy_and_reaches_the_input(
        retriever) -> None:
    restored = _images(4).requires_grad_(True)
    labels = torch.tensor([0, 1, 1, 0])
    embedding = retriever.features(restored, ("layer1", "embedding"))["embedding"]
    loss = class_loss(retriever, embedding, labels)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(retriever(restored), labels)
    torch.testing.assert_close(loss.detach(), want)
    loss.backward()
    assert restored.grad is not None and float(restored.grad.abs().sum()) > 0
    retriever.zero_grad(set_to_none=True)


def test_each_batch_carries_the_positions_of_its_own_images() -> None:
    n = 10  # image i is the constant i / n: a batch's positions name its images
    images = (torch.arange(n, dtype=torch.float32) / n).view(n, 1, 1, 1).expand(n, 1, 8, 8)
    config = _config(batch_size=3, samples_per_epoch=None)
    batches = EpochBatches(images.contiguous(), config, 0, lambda x, g: x, torch.device("cpu"))
    seen = []
    for _, clean, _, _, index in batches:
        assert index.dtype == torch.int64
        torch.testing.assert_close(clean[:, 0, 0, 0] * n, index.float())
        seen += index.tolist()
    assert sorted(seen) == list(range(n)) and seen != list(range(n))  # shuffled, all once


def test_hflip_mirrors_some_images_looks_up_their_mirrored_features_and_keeps_the_draws(
        ) -> None:
    n = 12  # image i: the constant i / n plus a left-to-right ramp, so a mirror is visible
    ramp = torch.linspace(0.0, 0.05, 8).view(1, 1, 1, 8)
    images = ((torch.arange(n, dtype=torch.float32) / n).view(n, 1, 1, 1) + ramp).expand(
        n, 1, 8, 8).contiguous()
    rows = {"embedding": torch.arange(2 * n, dtype=torch.float32)[:, None]}  # row r holds r

    def recording(draws: list[float]):
        def degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            draws.append(float(torch.rand(1, generator=g)))
            return x
        return degrade

    plain_draws: list[float] = []
    for _ in EpochBatches(images, _config(batch_size=4, samples_per_epoch=None), 0,
                           recording(plain_draws), torch.device("cpu"), rows):
        pass
    flip_draws: list[float] = []
    mirrored = []
    for _, clean, _, features, index in EpochBatches(
            images, _config(batch_size=4, samples_per_epoch=None, hflip=True), 0,
            recording(flip_draws), torch.device("cpu"), rows):
        for image, position, row in zip(clean, index, features["embedding"][:, 0]):
            flipped = bool(image[0, 0, 0] > image[0, 0, -1])
            torch.testing.assert_close(image, images[position].flip(-1) if flipped
                                       else images[position])
            assert int(row) == int(position) + (n if flipped else 0)
            mirrored.append(flipped)
    assert any(mirrored) and not all(mirrored)
    assert flip_draws == plain_draws  # the degradations' stream is untouched
    with pytest.raises(ConfigError, match="hflip"):
        _config(hflip="yes")
    assert _config(hflip=True).fingerprint() != _config().fingerprint()


def test_training_with_hflip_caches_both_orientations_features(tmp_path, retriever,
                                                                monkeypatch) -> None:
    import robustret.train.restorer as trainer

    computed = []
    real = trainer.clean_features

    def counting(model, images, layers, **kwargs):
        computed.append(images.clone())
        return real(model, images, layers, **kwargs)

    monkeypatch.setattr(trainer, "clean_features", counting)
    train = _images(8)
    result = train_restorer(_config(hflip=True), tmp_path / "run", train_images=train,
                            val_images=_images(4, 1), degrade=_noise, progress=False,
                            tensorboard=False, guide=_guide(retriever, 4))
    assert len(computed) == 1 and torch.equal(computed[0], torch.cat([train, train.flip(-1)]))
    assert result.history[-1]["feature_loss"] > 0


def test_ema_decay_trains_the_same_steps_and_returns_and_saves_their_average(
        tmp_path, retriever) -> None:
    def train(folder: str, **overrides):
        return train_restorer(_config(epochs=2, **overrides), tmp_path / folder,
                              train_images=_images(8), val_images=_images(4, 1),
                              degrade=_noise, progress=False, tensorboard=False,
                              guide=_guide(retriever, 4))

    plain, averaged = train("plain"), train("ema", ema_decay=0.5)
    assert [r["loss"] for r in plain.history] == [r["loss"] for r in averaged.history]
    plain_weights, average = plain.model.state_dict(), averaged.model.state_dict()
    assert any(not torch.equal(plain_weights[k], average[k]) for k in plain_weights)
    loaded = restoration.load(tmp_path / "ema").state_dict()  # what a user gets from the folder
    assert all(torch.equal(loaded[k], average[k]) for k in average)
    recorded = json.loads((tmp_path / "ema" / "config.json").read_text())
    assert (recorded["ema_decay"], recorded["threads"]) == (0.5, torch.get_num_threads())
    for bad in (1.0, -0.5, "0.9"):
        with pytest.raises(ConfigError, match="ema_decay"):
            _config(ema_decay=bad)
    assert _config(ema_decay=0.9).fingerprint() != _config().fingerprint()


def test_the_neighbour_term_is_the_soft_nearest_neighbour_loss_of_admissible_rows() -> None:
    gallery = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    gallery_labels = torch.tensor([0, 0, 1, 1])
    embedding = torch.tensor([[0.5, 0.5]], requires_grad=True)
    excluded = torch.tensor([[True, False, False, False]])  # row 0: its own instance
    loss = neighbour_loss(embedding, torch.tensor([0]), gallery, gallery_labels, excluded, 2.0)
    squared = torch.tensor([0.5, 6.5, 24.5])  # to rows 1, 2, 3
    weights = torch.softmax(-squared / 2.0, dim=0)
    torch.testing.assert_close(loss.detach(), -torch.log(weights[0]))
    loss.backward()  # pulls the embedding toward row 1, its one admissible same-class row
    assert embedding.grad is not None and float(embedding.grad[0, 0]) < 0
    # a row whose class has no admissible gallery row adds nothing; none at all: zero
    alone = torch.tensor([[True, True, False, False]])
    free = torch.zeros(1, 4, dtype=torch.bool)
    both = neighbour_loss(torch.cat([embedding, embedding]).detach(), torch.tensor([0, 0]),
                          gallery, gallery_labels, torch.cat([alone, free]), 2.0)
    torch.testing.assert_close(both, neighbour_loss(embedding.detach(), torch.tensor([0]),
                                                    gallery, gallery_labels, free, 2.0))
    nothing = neighbour_loss(embedding, torch.tensor([0]), gallery, gallery_labels, alone, 2.0)
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad


def test_mean_pair_distance_is_the_mean_over_all_pairs() -> None:
    rows = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    want = torch.cdist(rows.double(), rows.double()).pow(2).mean().float()
    torch.testing.assert_close(mean_pair_distance(rows), want)


def test_instance_groups_are_one_per_class_and_instance() -> None:
    from robustret.data import ImageSet
    from robustret.experiment.trained import instance_groups

    images = torch.zeros(5, 1, 4, 4)
    labels = torch.tensor([0, 0, 1, 1, 0])
    instance = torch.tensor([0, 1, 0, 0, 0])  # instance 0 of class 0 and of class 1 differ
    groups = instance_groups(ImageSet(images, labels, ["a", "b"], {"instance": instance}))
    assert groups.tolist() == [0, 1, 2, 2, 0]
    assert instance_groups(ImageSet(images, labels, ["a", "b"])) is None


def test_training_with_the_neighbour_term_leaves_out_each_images_group(
        tmp_path, retriever, monkeypatch) -> None:
    import dataclasses

    import robustret.train.restorer as trainer

    kwargs = dict(train_images=_images(8), val_images=_images(4, 1), degrade=_noise,
                  progress=False, tensorboard=False)
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    guide = dataclasses.replace(_guide(retriever, 4), train_labels=torch.tensor([0, 1] * 4),
                                train_groups=groups)
    config = _config(neighbour_weight=0.5, feature_weight=0.0, epochs=1)
    with pytest.raises(ValueError, match="neighbour_weight 0.5 needs one label"):
        train_restorer(config, tmp_path / "a", **kwargs,
                       guide=dataclasses.replace(guide, train_labels=None))
    with pytest.raises(ValueError, match="train_groups"):
        train_restorer(config, tmp_path / "b", **kwargs,
                       guide=dataclasses.replace(guide, train_groups=groups[:4]))
    with pytest.raises(ConfigError, match="neighbour_weight 0.5.*needs the experiment's"):
        train_restorer(config, tmp_path / "n", **kwargs)
    calls = []
    real = trainer.neighbour_loss

    def spy(embedding, labels, gallery, gallery_labels, excluded, temperature):
        calls.append((labels, gallery.shape, excluded))
        return real(embedding, labels, gallery, gallery_labels, excluded, temperature)

    monkeypatch.setattr(trainer, "neighbour_loss", spy)
    record = train_restorer(config, tmp_path / "c", guide=guide, **kwargs).history[-1]
    assert record["neighbour_loss"] > 0 and "class_loss" not in record
    labels, shape, excluded = calls[0]
    assert shape[0] == 8  # every training image is a candidate neighbour
    # each row leaves out exactly its own pair of images (one group)
    assert excluded.sum(dim=1).tolist() == [2] * excluded.shape[0]
    calls.clear()  # with the feature term and hflip the cached features hold 2N rows
    train_restorer(dataclasses.replace(config, feature_weight=1.0, feature_layers=("embedding",),
                                       hflip=True), tmp_path / "d", guide=guide, **kwargs)
    assert calls[0][1][0] == 8  # the mirrored images' rows are no neighbours
    assert config.through_retriever and config.fingerprint() != _config(
        feature_weight=0.0).fingerprint()
    for name, bad in (("neighbour_weight", -1.0), ("neighbour_temperature", 0.0)):
        with pytest.raises(ConfigError, match=name):
            _config(**{name: bad})


def test_training_with_the_task_term_needs_labels_and_logs_it(tmp_path, retriever) -> None:
    import dataclasses

    kwargs = dict(train_images=_images(8), val_images=_images(4, 1), degrade=_noise,
                  progress=False, tensorboard=False)
    guide = _guide(retriever, 4)
    config = _config(class_weight=0.5, feature_weight=0.0)
    with pytest.raises(ValueError, match="one label per training image"):
        train_restorer(config, tmp_path / "a", guide=guide, **kwargs)
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\)"):
        train_restorer(config, tmp_path / "b", **kwargs,
                       guide=dataclasses.replace(guide, train_labels=torch.arange(8)))
    with pytest.raises(ConfigError, match="needs the experiment's retriever"):
        train_restorer(config, tmp_path / "c", **kwargs)
    labeled = dataclasses.replace(guide, train_labels=torch.tensor([0, 1] * 4))
    record = train_restorer(config, tmp_path / "d", guide=labeled, **kwargs).history[-1]
    assert record["class_loss"] > 0 and "feature_loss" not in record
    with pytest.raises(ValueError, match="another configuration"):  # the retriever steers it
        train_restorer(config, tmp_path / "d", **kwargs,
                       guide=dataclasses.replace(labeled, key="another-retriever"))
    for bad in (-1.0, "high"):
        with pytest.raises(ConfigError, match="class_weight"):
            _config(class_weight=bad)
    assert config.through_retriever and not _config(feature_weight=0.0).through_retriever
    assert config.fingerprint() != _config(feature_weight=0.0).fingerprint()


def test_clean_features_are_the_retrievers_and_refused_past_the_memory_cap(
        retriever, monkeypatch) -> None:
    images = _images(5)
    layers = ("layer1", "embedding")
    got = clean_features(retriever, images, layers, batch_size=2, device=torch.device("cpu"))
    with torch.no_grad():
        want = retriever.features(images, layers)
    assert got is not None and set(got) == set(layers)
    for name in layers:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
    monkeypatch.setattr("robustret.train.restorer_losses.FEATURE_CACHE_BYTES", 1000)
    assert clean_features(retriever, images, layers, batch_size=2,
                          device=torch.device("cpu")) is None


def test_training_on_the_cached_clean_features_is_training_on_fresh_ones(
        tmp_path, retriever, monkeypatch) -> None:
    """Each step looks its images' features up by index: the same losses and weights as
    computing them in the step (a cap of 0 bytes turns the cache off)."""
    kwargs = dict(train_images=_images(12), val_images=_images(4, 1), degrade=_noise,
                  progress=False, tensorboard=False, guide=_guide(retriever, 4))
    config = _config(epochs=2, feature_layers=("layer1", "embedding"))
    cached = train_restorer(config, tmp_path / "cached", **kwargs)
    monkeypatch.setattr("robustret.train.restorer_losses.FEATURE_CACHE_BYTES", 0)
    fresh = train_restorer(config, tmp_path / "fresh", **kwargs)
    for a, b in zip(cached.history, fresh.history):
        assert a["feature_loss"] == pytest.approx(b["feature_loss"], rel=1e-4)
    for a, b in zip(cached.model.parameters(), fresh.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_feature_term_without_a_guide_or_with_an_unknown_layer_is_refused(
        tmp_path, retriever) -> None:
    kwargs = dict(train_images=_images(8), val_images=_images(4, 1), degrade=_noise,
                  progress=False, tensorboard=False)
    with pytest.raises(ConfigError, match="needs the experiment's retriever"):
        train_restorer(_config(), tmp_path / "a", **kwargs)
    with pytest.raises(ConfigError, match="unknown feature layer"):
        train_restorer(_config(feature_layers=("layer9",)), tmp_path / "b",
                       guide=_guide(retriever, 4), **kwargs)
    with pytest.raises(ConfigError, match="feature_weight"):
        _config(feature_weight=-1.0)
    for bad in (-1.0, "high"):
        with pytest.raises(ConfigError, match="severity_bias"):
            _config(severity_bias=bad)
    assert _config(severity_bias=2.0).fingerprint() != _config().fingerprint()  # a new model
    with pytest.raises(ConfigError, match="severity_per_image"):
        _config(severity_per_image="yes")
    assert _config(severity_per_image=True).fingerprint() != _config().fingerprint()
    for bad in (-1, 2.5):
        with pytest.raises(ConfigError, match="extra_objects"):
            _config(extra_objects=bad)
    assert _config(extra_objects=5).fingerprint() != _config().fingerprint()
    with pytest.raises(ConfigError, match="pixel_loss"):
        _config(pixel_loss="huber")


def test_an_untrained_hybrid_is_exactly_its_front_end() -> None:
    x = _images(3)
    params = {"a": torch.full((3,), 0.05), "b": torch.zeros(3)}
    for front in ("median", "wiener", "identity"):
        hybrid = restoration.build("hybrid", front=front, widths=(4,))
        assert torch.equal(hybrid(x, params), restoration.build(front)(x, params))
    assert "hybrid" in restoration.networks()
    with pytest.raises(ValueError, match="front"):
        restoration.build("hybrid", front="dae")


def _gated(hybrid: restoration.Restorer) -> restoration.Restorer:
    with torch.no_grad():
        hybrid.gate.fill_(1.0)
    return hybrid.eval()


@pytest.mark.parametrize("body, widths", [("plain", (4,)), ("unet", (4, 4, 4))])
def test_a_conditioned_hybrid_reads_each_images_severity_and_kind(body, widths) -> None:
    x = _images(2)[:, :, :30, :30]  # a side not divisible by 4: the unet pads and crops
    torch.manual_seed(0)
    hybrid = _gated(restoration.build("hybrid", front="median", widths=widths, body=body,
                                      condition=("severity", "kind")))
    kind = torch.tensor([0, 2])
    low, high = (hybrid.restore(x, {"severity": torch.tensor([s, s]), "kind": kind},
                                clamp=False) for s in (1.0, 5.0))
    assert low.shape == x.shape
    assert not torch.allclose(low, high)  # the severity changes the output ...
    per_image = hybrid.restore(x, {"severity": torch.tensor([1.0, 5.0]), "kind": kind},
                               clamp=False)
    assert torch.allclose(per_image[0], low[0], atol=1e-6)  # ... image by image
    assert torch.allclose(per_image[1], high[1], atol=1e-6)
    with pytest.raises(ValueError, match=r"needs the degradation parameter\(s\) severity;"):
        hybrid(x, {"kind": kind})
    with pytest.raises(ValueError, match="kind"):
        hybrid(x, {"severity": 3.0, "kind": torch.tensor([0, 3])})


@pytest.mark.parametrize("body, widths", [("plain", (4, 6)), ("unet", (4, 6, 8))])
def test_hybrid_weights_are_channels_last_after_loading_and_compute_as_contiguous_ones(
        body, widths) -> None:
    """The memory format is a speed choice only: a loaded net keeps it (trained and cached nets
    compute alike) and its outputs are a contiguous copy's up to rounding."""
    import io

    def convolutions(hybrid: restoration.Restorer) -> list[torch.Tensor]:
        return [p for p in hybrid.net.parameters() if p.ndim == 4]

    torch.manual_seed(0)
    trained = _gated(restoration.build("hybrid", front="median", widths=widths, body=body))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    loaded = restoration.build("hybrid", front="median", widths=widths, body=body)
    loaded.load_state_dict(torch.load(buffer))
    for hybrid in (trained, loaded):  # (a 1 x 1 kernel to one channel is both formats)
        assert all(p.is_contiguous(memory_format=torch.channels_last)
                   for p in convolutions(hybrid))
        assert sum(not p.is_contiguous() for p in convolutions(hybrid)) >= 2
    contiguous = _gated(restoration.build("hybrid", front="median", widths=widths, body=body))
    contiguous.load_state_dict(trained.state_dict())
    contiguous.to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in convolutions(contiguous))
    x = _images(2)
    assert torch.allclose(loaded.eval()(x), contiguous(x), atol=1e-5)
    assert torch.allclose(trained(x), contiguous(x), atol=1e-5)


def test_hybrid_options_are_checked() -> None:
    with pytest.raises(ValueError, match="condition"):
        restoration.build("hybrid", condition=("fog",))
    with pytest.raises(ValueError, match="body"):
        restoration.build("hybrid", body="transformer")
    with pytest.raises(ValueError, match="one width per scale, at least two"):
        restoration.build("hybrid", body="unet", widths=(8,))


def test_a_three_scale_unet_is_the_earlier_releases_and_a_four_scale_one_pads_to_8() -> None:
    """Checkpoints of the three-scale body keep loading and computing the same: its parameter
    names and its forward pass are those of the earlier fixed three-scale network."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    three = restoration.build("hybrid", front="bicubic", widths=(4, 6, 8), body="unet").net
    assert sorted({key.split(".")[0] for key in three.state_dict()}) == [
        "dec0", "dec1", "down0", "down1", "enc0", "enc1", "enc2", "out"]
    x = torch.rand(2, 2, 16, 20)  # (degraded, front) planes of one channel
    with torch.no_grad():
        e0 = three.enc0(x)
        e1 = three.enc1(three.down0(e0))
        e2 = three.enc2(three.down1(e1))
        d1 = three.dec1(torch.cat([F.interpolate(e2, scale_factor=2.0), e1], 1))
        d0 = three.dec0(torch.cat([F.interpolate(d1, scale_factor=2.0), e0], 1))
        torch.testing.assert_close(three(x), three.out(d0))
    four = _gated(restoration.build("hybrid", front="bicubic", widths=(4, 4, 4, 4), body="unet"))
    assert four.net.multiple == 8 and hasattr(four.net, "enc3") and not hasattr(four.net, "enc4")
    odd = _images(2)[:, :, :26, :26]  # padded to 32 (28 would not halve three times), cropped back
    assert four.restore(odd, {"level": torch.tensor([1, 3])}, clamp=False).shape == odd.shape


def test_a_shuffled_unet_runs_its_scales_on_space_to_depth_blocks(tmp_path) -> None:
    """``shuffle = 2``: the finest scale works on 2x2 blocks (4 times the channels, half the
    side), the output is full resolution, odd sides are padded to ``2 * 2 ** (scales - 1)``,
    and a checkpoint rebuilds the same network."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    hybrid = _gated(restoration.build("hybrid", front="identity", widths=(4, 6, 8),
                                      body="unet", shuffle=2, condition=("level",)))
    net = hybrid.net
    assert net.multiple == 8
    assert net.enc0[0].in_channels == 4 * 3 and net.out.out_channels == 4  # (x, front, level)
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(x), F.pixel_shuffle(net._scales(F.pixel_unshuffle(x, 2)), 2))
        # the finest convolutions see half the side: their output is 8 x 12 for 16 x 24
        assert net.enc0(F.pixel_unshuffle(x, 2)).shape[-2:] == (8, 12)
    odd = _images(2)[:, :, :26, :30]
    params = {"level": torch.tensor([1, 3])}
    out = hybrid.restore(odd, params, clamp=False)
    assert out.shape == odd.shape and not torch.equal(out, odd)
    again = restoration.load(restoration.save(hybrid, tmp_path / "shuffled.pt"))
    assert again.shuffle == 2
    torch.testing.assert_close(again.restore(odd, params, clamp=False), out)
    for bad, body in ((0, "unet"), (True, "unet"), (1.5, "unet"), (2, "plain")):
        with pytest.raises(ValueError, match="shuffle"):
            restoration.build("hybrid", widths=(4, 4), body=body, shuffle=bad)


def test_severities_are_drawn_uniformly_or_weighted_by_their_power() -> None:
    from robustret.train.restorer_batches import draw_one, severity_weights

    def draw_severity(severities: list[int], bias: float, g: torch.Generator) -> int:
        return draw_one(severities, g, severity_weights(severities, bias))

    def counts(bias: float) -> list[int]:
        g = torch.Generator().manual_seed(0)
        drawn = [draw_severity([1, 2, 3, 4, 5], bias, g) for _ in range(5000)]
        return [drawn.count(s) for s in (1, 2, 3, 4, 5)]

    uniform, squared = counts(0.0), counts(2.0)
    assert all(900 < c < 1100 for c in uniform)
    expected = [5000 * s * s / 55 for s in (1, 2, 3, 4, 5)]  # 91, 364, 818, 1455, 2273
    assert all(abs(c - e) < 0.15 * e + 30 for c, e in zip(squared, expected))
    # bias 0 keeps the stream of the uniform draw that preceded it: one randint per batch
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [draw_severity([2, 4, 5], 0.0, g) for _ in range(20)] == [
        [2, 4, 5][int(torch.randint(3, (1,), generator=h))] for _ in range(20)]
    single = torch.Generator().manual_seed(1)
    assert draw_severity([4], 2.0, single) == 4
    assert torch.equal(single.get_state(), torch.Generator().manual_seed(1).get_state())


def test_severities_drawn_per_image_follow_the_weights_in_one_call() -> None:
    from robustret.train.restorer_batches import draw_many, severity_weights

    g = torch.Generator().manual_seed(0)
    drawn = draw_many([1, 2, 3, 4, 5], 5000, g, severity_weights([1, 2, 3, 4, 5], 2.0))
    expected = [5000 * s * s / 55 for s in (1, 2, 3, 4, 5)]
    assert all(abs(drawn.count(s) - e) < 0.15 * e + 30 for s, e in zip((1, 2, 3, 4, 5), expected))
    uniform = draw_many([1, 2, 3], 3000, torch.Generator().manual_seed(1))
    assert all(900 < uniform.count(s) < 1100 for s in (1, 2, 3))
    single = torch.Generator().manual_seed(1)
    assert draw_many([4], 3, single) == [4, 4, 4]
    assert torch.equal(single.get_state(), torch.Generator().manual_seed(1).get_state())


def test_degrade_by_severity_degrades_each_image_at_its_own_severity_in_order() -> None:
    import degradations
    from robustret.train.restorer_batches import degrade_by_severity

    images = _images(6)
    drawn = [5, 1, 5, 3, 1, 5]
    calls: list[tuple[int, int]] = []

    def at(part: torch.Tensor, severity: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        calls.append((severity, part.shape[0]))
        return degradations.apply(part, "lowres", severity, generator=torch.Generator(),
                                  return_params=True)

    out, params = degrade_by_severity(images, drawn, at)
    assert calls == [(1, 2), (3, 1), (5, 3)]  # one call per severity, ascending
    assert params["severity"].tolist() == [float(s) for s in drawn]
    assert params["level"].dtype == torch.int64
    for i, severity in enumerate(drawn):  # lowres at 1 and 5 is deterministic
        if severity != 3:
            alone = degradations.apply(images[i:i + 1], "lowres", severity)
            torch.testing.assert_close(out[i:i + 1], alone)
            assert params["level"][i] == {1: 1, 5: 3}[severity]
    with pytest.raises(ValueError, match="one per image"):
        degrade_by_severity(images, drawn[:5], at)

    def inconsistent(part: torch.Tensor, severity: int
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return part, {"a" if severity == 1 else "b": torch.zeros(part.shape[0])}

    with pytest.raises(ValueError, match="parameters"):
        degrade_by_severity(images, drawn, inconsistent)


@pytest.mark.parametrize("per_image", [False, True])
def test_the_experiments_restorer_draws_one_severity_per_batch_or_per_image(
        tmp_path, retriever, monkeypatch, per_image: bool) -> None:
    import robustret.experiment.trained as restorer_module
    from robustret.data.base import ImageSet, RetrievalData
    from robustret.experiment.trained import TrainedModel, trained_restorer

    captured = {}

    def capture(config, out_dir, **kwargs):  # stands in for training: keep what it was given
        captured.update(kwargs, config=config)
        raise RuntimeError("captured")

    monkeypatch.setattr(restorer_module, "train_restorer", capture)
    section = {"severity_per_image": per_image} if per_image else {}
    config = ExperimentConfig.from_dict({"severities": [1, 2, 3, 4, 5],
                                         "restorers": {"oracle_hybrid-severe": section}}).resolved()
    images = _images(20)
    labels = torch.tensor([0, 1] * 10)
    gallery = ImageSet(images, labels, ["a", "b"])
    data = RetrievalData("tiny", gallery, ImageSet(images[:4], labels[:4], ["a", "b"]), ["a", "b"])
    with pytest.raises(RuntimeError, match="captured"):
        trained_restorer("oracle_hybrid-severe", "lowres", [1, 2, 3, 4, 5], config, data, "data",
                         torch.device("cpu"), tmp_path, TrainedModel(retriever, "r", None, "rk"),
                         torch.zeros(20, 4))
    assert captured["config"].severity_per_image is per_image
    drawn = [sorted(set(captured["degrade"](images[:16], torch.Generator().manual_seed(b))[1]
                        ["severity"].tolist())) for b in range(8)]
    if per_image:  # bias 2: most batches of 16 mix three or more severities
        assert sum(len(batch) >= 3 for batch in drawn) >= 6
    else:
        assert all(len(batch) == 1 for batch in drawn)


def test_degradations_report_the_severity_of_their_parameters() -> None:
    import degradations

    x = _images(3)
    _, params = degradations.apply(x, "noise", 4, generator=torch.Generator().manual_seed(0),
                                   return_params=True)
    assert params[degradations.SEVERITY].tolist() == [4.0, 4.0, 4.0] and "kind" in params
    _, indexed = degradations.apply_indexed(x, "lowres", 2, seed=0, indices=[0, 1, 2],
                                            return_params=True)
    assert indexed["severity"].tolist() == [2.0, 2.0, 2.0]
    _, replaced = degradations.apply(x, "lowres", 2, generator=torch.Generator(),
                                     return_params=True, levels=3)
    assert "severity" not in replaced  # an override: the severity no longer names the level
    for code, part in enumerate(degradations.noise.MIXTURE_KINDS):  # a single noise: its kind
        _, alone = degradations.apply(x, part, 1, generator=torch.Generator(), return_params=True)
        assert alone["kind"].tolist() == [code] * 3  # what the mixture-trained hybrid reads


def test_gallery_holdout_is_a_seeded_disjoint_tenth() -> None:
    train, held = gallery_holdout(50, seed=3)
    assert len(held) == 5 and len(train) == 45
    assert sorted(torch.cat([train, held]).tolist()) == list(range(50))
    again, other = gallery_holdout(50, seed=3), gallery_holdout(50, seed=4)
    assert torch.equal(again[1], held) and not torch.equal(other[1], held)


def test_recipes_name_networks_and_resolve_into_the_configuration() -> None:
    assert {"dae", "srcnn", "dae_retrieval", "srcnn_retrieval", "hybrid"} <= set(recipe_names())
    assert all(recipe(name).model in restoration.networks() for name in recipe_names())
    assert set(restoration.classical()) <= set(restorer_names())
    config = ExperimentConfig(restore="dae_retrieval").validate().resolved()
    assert config.restorers["dae_retrieval"].model == "dae"
    assert config.restorers["dae_retrieval"].feature_weight == RECIPES["dae_retrieval"].overrides[
        "feature_weight"]
    assert config.restorers["dae"].feature_weight == 0.0  # the study's pixel-trained DAE
    deeper = config.restorers["oracle_hybrid"]  # one severity: the recipe's quick schedule
    assert (deeper.epochs, deeper.lr_step) == (8, 4)
    assert deeper.model_options["body"] == "unet" and "layer1" in deeper.feature_layers
    sweep = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved()
    longer = RECIPES["oracle_hybrid"].sweep
    assert (longer["epochs"], longer["lr_step"]) == (24, 8)  # docs/results.md, section 00
    assert longer["epochs"] > RECIPES["oracle_hybrid"].quick["epochs"]
    assert (sweep.restorers["oracle_hybrid"].epochs, sweep.restorers["oracle_hybrid"].lr_step) == (
        longer["epochs"], longer["lr_step"])  # one model for five severities: the longer one
    assert sweep.restorers["dae_retrieval"].epochs == 15  # a recipe without one keeps its preset
    parsed = ExperimentConfig.from_dict({"severities": [1, 5], "restorers": {
        "oracle_hybrid": {"lr": 2e-3}}})
    assert (parsed.restorers["oracle_hybrid"].epochs, parsed.restorers["oracle_hybrid"].lr) == (
        longer["epochs"], 2e-3)
    paper = ExperimentConfig(profile="paper", severities=(1, 5)).validate().resolved()
    assert paper.restorers["oracle_hybrid"].epochs == 200  # the paper schedule is kept
    with pytest.raises(KeyError, match="unknown restorer recipe"):
        recipe("dae_magic")
    with pytest.raises(ConfigError, match="recipe"):
        ExperimentConfig.from_dict({"restorers": {"dae_magic": {}}}).resolved()


def test_the_severe_variant_is_oracle_hybrid_with_its_severity_bias() -> None:
    from dataclasses import asdict, replace

    from robustret.experiment.recipes import SEVERE_BIAS

    for severities in ((3,), (1, 2, 3, 4, 5)):
        for profile in ("quick", "paper"):
            resolved = ExperimentConfig(profile=profile,
                                        severities=severities).validate().resolved()
            severe = resolved.restorers["oracle_hybrid-severe"]
            plain = resolved.restorers["oracle_hybrid"]
            assert severe.severity_bias == SEVERE_BIAS > 0 and plain.severity_bias == 0.0
            # everything else, the schedule of the profile and of a sweep included, is shared
            assert asdict(replace(severe, severity_bias=0.0)) == asdict(plain)
            assert severe.fingerprint() != plain.fingerprint()
    sweep = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved()
    assert (sweep.restorers["oracle_hybrid-severe"].epochs,
            sweep.restorers["oracle_hybrid-severe"].lr_step) == (24, 8)


def test_the_objects_variant_is_oracle_hybrid_with_objects_and_a_bias_when_it_sweeps() -> None:
    from dataclasses import asdict, replace

    for profile in ("quick", "paper"):
        one = ExperimentConfig(profile=profile, severities=(3,)).validate().resolved()
        assert asdict(one.restorers["oracle_hybrid-objects"]) == asdict(
            one.restorers["oracle_hybrid"])  # one severity (the main job): the same training
    sweep = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved()
    objects, plain = sweep.restorers["oracle_hybrid-objects"], sweep.restorers["oracle_hybrid"]
    assert (objects.extra_objects, plain.extra_objects) == (10, 0)
    assert (objects.severity_bias, plain.severity_bias) == (1.0, 0.0)
    assert asdict(replace(objects, extra_objects=0, severity_bias=0.0)) == asdict(
        plain)  # the same schedule
    assert objects.fingerprint() != plain.fingerprint()
    assert ExperimentConfig.from_dict({"severities": [1, 5], "restorers": {
        "oracle_hybrid-objects": {"extra_objects": 0}}}).resolved().restorers[
        "oracle_hybrid-objects"].extra_objects == 0  # a configuration can turn them off


def test_the_hybrid_sweeps_on_a_shorter_schedule_and_validation_cadence_is_not_learned() -> None:
    from dataclasses import asdict, replace

    one = ExperimentConfig(severities=(3,)).validate().resolved().restorers
    sweep = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved().restorers
    assert (one["hybrid"].epochs, one["hybrid"].lr_step, one["hybrid"].val_every) == (10, 4, 1)
    assert (sweep["hybrid"].epochs, sweep["hybrid"].lr_step, sweep["hybrid"].val_every) == (
        6, 2, 2)
    assert asdict(replace(sweep["hybrid"], epochs=10, lr_step=4, val_every=1)) == asdict(
        one["hybrid"])  # only the schedule differs
    for name in ("oracle_hybrid", "oracle_hybrid-objects", "oracle_hybrid-long"):
        assert (one[name].val_every, sweep[name].val_every) == (1, 4)
    config = sweep["oracle_hybrid"]
    assert replace(config, val_every=1).fingerprint() == config.fingerprint()
    assert replace(config, lr_step=3).fingerprint() != config.fingerprint()
    with pytest.raises(ConfigError, match="val_every"):
        replace(config, val_every=0)


def test_the_long_recipe_is_the_severe_one_with_twice_its_sweep_steps() -> None:
    from dataclasses import asdict, replace

    for profile in ("quick", "paper"):
        one = ExperimentConfig(profile=profile, severities=(3,)).validate().resolved()
        assert asdict(one.restorers["oracle_hybrid-long"]) == asdict(
            one.restorers["oracle_hybrid-severe"])  # one severity: the same training
    sweep = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved()
    long, severe = sweep.restorers["oracle_hybrid-long"], sweep.restorers["oracle_hybrid-severe"]
    assert (long.epochs, long.lr_step) == (2 * severe.epochs, 2 * severe.lr_step) == (48, 16)
    assert asdict(replace(long, epochs=severe.epochs, lr_step=severe.lr_step)) == asdict(severe)
    assert long.fingerprint() != severe.fingerprint()
    paper = ExperimentConfig(profile="paper", severities=(1, 5)).validate().resolved()
    assert paper.restorers["oracle_hybrid-long"].epochs == paper.restorers[
        "oracle_hybrid-severe"].epochs  # the paper profile keeps its own schedule
    longer = ExperimentConfig.from_dict({"severities": [1, 5], "restorers": {
        "oracle_hybrid-long": {"epochs": 30}}}).resolved()
    assert longer.restorers["oracle_hybrid-long"].epochs == 30


def test_every_shipped_configuration_loads_and_the_bias_ablation_sets_its_bias() -> None:
    from pathlib import Path

    import tomllib

    resolved = {}
    for path in sorted(Path("experiments/configs").glob("*.toml")):
        with path.open("rb") as handle:
            resolved[path.stem] = ExperimentConfig.from_dict(tomllib.load(handle)).resolved()
    bias = resolved["ablation_hybrid_unet_severity_bias"].restorers["oracle_hybrid"]
    assert (bias.severity_bias, bias.epochs, bias.lr_step) == (2.0, 24, 8)
    bias3 = resolved["ablation_hybrid_unet_severity_bias3"].restorers["oracle_hybrid"]
    task = resolved["ablation_hybrid_unet_task_term"].restorers["oracle_hybrid"]
    assert (bias3.severity_bias, bias3.class_weight, bias3.epochs) == (3.0, 0.0, 24)
    assert (task.severity_bias, task.class_weight, task.epochs) == (3.0, 0.5, 24)
    assert resolved["smoke"].restorers["oracle_hybrid"].severity_bias == 0.0
    for stem, weight in (("ablation_hybrid_unet_neighbour", 0.1),
                         ("ablation_hybrid_unet_neighbour_w03", 0.3)):
        near = resolved[stem].restorers["oracle_hybrid-severe"]
        assert (near.neighbour_weight, near.neighbour_temperature, near.severity_bias,
                near.epochs) == (weight, 0.1, 2.0, 24)
    lr2 = resolved["ablation_hybrid_unet_lr2"].restorers["oracle_hybrid-severe"]
    flip = resolved["ablation_hybrid_unet_hflip"].restorers["oracle_hybrid-severe"]
    both = resolved["ablation_hybrid_unet_lr2_hflip"].restorers["oracle_hybrid-severe"]
    assert (lr2.lr, lr2.hflip, lr2.severity_bias, lr2.epochs) == (0.002, False, 2.0, 24)
    assert (flip.lr, flip.hflip, flip.severity_bias) == (0.001, True, 2.0)
    assert (both.lr, both.hflip, both.severity_bias) == (0.002, True, 2.0)
    layers = resolved["ablation_hybrid_unet_layer2_embedding"].restorers["oracle_hybrid-severe"]
    assert layers.feature_layers == ("layer2", "embedding")
    shuffled = resolved["ablation_hybrid_unet_shuffle"].restorers["oracle_hybrid-severe"]
    assert dict(shuffled.model_options)["shuffle"] == 2
    ema = resolved["ablation_hybrid_unet_ema"].restorers["oracle_hybrid-severe"]
    assert (ema.ema_decay, ema.lr, ema.severity_bias, ema.epochs) == (0.995, 0.001, 2.0, 24)
    mixed = resolved["ablation_hybrid_unet_per_image"].restorers["oracle_hybrid-severe"]
    assert (mixed.severity_per_image, mixed.severity_bias, mixed.epochs) == (True, 2.0, 24)
    assert not ema.severity_per_image
    extra = resolved["ablation_hybrid_unet_extra_objects"].restorers["oracle_hybrid-severe"]
    assert (extra.extra_objects, extra.severity_bias, extra.epochs) == (5, 2.0, 24)
    long = resolved["ablation_hybrid_unet_extra_objects_long"].restorers["oracle_hybrid-severe"]
    assert (long.extra_objects, long.epochs, long.lr_step, long.severity_bias) == (20, 48, 16, 2.0)
    longer = resolved["ablation_hybrid_unet_long"].restorers["oracle_hybrid-severe"]
    assert (longer.extra_objects, longer.epochs, longer.lr_step) == (0, 48, 16)
    noise = resolved["ablation_hybrid_unet_noise_extra_objects"].restorers["oracle_hybrid"]
    assert (noise.extra_objects, noise.epochs, noise.lr_step, noise.severity_bias) == (
        10, 24, 8, 0.0)
    biased = resolved["ablation_hybrid_unet_noise_objects_bias"].restorers["oracle_hybrid-objects"]
    auto = ExperimentConfig(severities=(1, 2, 3, 4, 5)).validate().resolved().restorers[
        "oracle_hybrid-objects"]
    assert biased.fingerprint() == auto.fingerprint()  # the ablation trained today's auto
    assert (biased.extra_objects, biased.severity_bias, biased.epochs) == (10, 1.0, 24)
    assert ema.extra_objects == 0
    for stem, front in (("ablation_hybrid_unet_level_only", "hybrid"),
                        ("ablation_hybrid_unet_level_bicubic", "bicubic")):
        options = dict(resolved[stem].restorers["oracle_hybrid-severe"].model_options)
        assert options["condition"] == ["level"] and options.get("front", "hybrid") == front


def test_validation_leaves_out_the_gallery_images_of_a_val_images_own_instance() -> None:
    import dataclasses

    from robustret.train.restorer_validation import RetrievalCheck

    class Flat(torch.nn.Module):
        def embed(self, images: torch.Tensor) -> torch.Tensor:
            return images.flatten(1)

    own, other_class, same_class = torch.zeros(4), torch.full((4,), 0.1), torch.ones(4)
    gallery = torch.stack([own, other_class, same_class])  # the val image is `own`, class 0
    guide = RetrievalGuide(Flat(), "flat", gallery, torch.tensor([0, 1, 0]), torch.tensor([0]))
    val = own.view(1, 1, 2, 2)
    pick = torch.tensor([0])
    whole = RetrievalCheck(guide, val, pick, torch.device("cpu"))(val, val)
    assert whole["val_top1_clean"] == 1.0  # it finds itself
    grouped = dataclasses.replace(guide, gallery_groups=torch.tensor([0, 1, 2]),
                                  val_groups=torch.tensor([0]))
    honest = RetrievalCheck(grouped, val, pick, torch.device("cpu"))(val, val)
    assert honest["val_top1_clean"] == 0.0  # its own instance left out: the other class wins
    with pytest.raises(ValueError, match="gallery_groups"):
        RetrievalCheck(dataclasses.replace(grouped, gallery_groups=torch.tensor([0, 1])), val,
                        pick, torch.device("cpu"))


def test_the_experiments_restorer_trains_on_extra_rendered_objects(
        tmp_path, retriever, monkeypatch, caplog) -> None:
    import robustret.experiment.trained as restorer_module
    from robustret.data import load, load_extra_objects
    from robustret.experiment.trained import TrainedModel, trained_restorer

    captured = []

    def capture(config, out_dir, **kwargs):  # stands in for training: keep what it was given
        captured.append(dict(kwargs, config=config, folder=out_dir))
        raise RuntimeError("captured")

    monkeypatch.setattr(restorer_module, "train_restorer", capture)
    tiny = {"n_instances": 4, "elevations": 2, "azimuths": 2, "lightings": 1, "render_size": 32}
    data = load("synthetic", image_size=32, seed=1, **tiny)

    def train(dataset: str, extra: int) -> dict:
        config = ExperimentConfig.from_dict({
            "dataset": dataset, "dataset_options": tiny, "image_size": 32, "seed": 1,
            "restorers": {"oracle_hybrid-severe": {"extra_objects": extra}}}).resolved()
        with pytest.raises(RuntimeError, match="captured"):
            trained_restorer("oracle_hybrid-severe", "lowres", [1, 5], config, data, "data",
                             torch.device("cpu"), tmp_path,
                             TrainedModel(retriever, "r", None, "rk"), torch.zeros(40, 4))
        return captured[-1]

    plain, extra = train("synthetic", 0), train("synthetic", 2)
    own = len(plain["train_images"])
    assert own == 36 and len(extra["train_images"]) == own + 5 * 2 * 4  # the gallery less a tenth
    assert torch.equal(extra["train_images"][:own], plain["train_images"])
    objects = load_extra_objects("synthetic", 2, image_size=32, seed=1, **tiny)
    assert objects is not None and torch.equal(extra["train_images"][own:], objects.images)
    guide = extra["guide"]
    assert torch.equal(guide.train_labels[own:], objects.labels)
    assert len(guide.train_groups) == len(extra["train_images"])  # new objects, new groups:
    assert not set(guide.train_groups[own:].tolist()) & set(guide.train_groups[:own].tolist())
    assert len(set(guide.train_groups[own:].tolist())) == 5 * 2
    assert len(guide.gallery_labels) == own  # the validation still searches the gallery only
    assert extra["config"].extra_objects == 2 and extra["folder"] != plain["folder"]
    with caplog.at_level("WARNING", logger="robustret.experiment.trained"):
        on_disk = train(f"folder:{tmp_path}", 2)  # a data set on disk has no more objects
    assert "trains on the gallery only" in caplog.text
    assert on_disk["config"].extra_objects == 0 and len(on_disk["train_images"]) == own
