"""The learned family estimator (restoration/estimate_learned.py) and its training
(robustret/train/estimator.py): tiny images, a few steps."""

from __future__ import annotations

import pytest
import torch

from degradations.wild import WILD_MEMBERS
from restoration.estimate import FAMILIES, NOISE_KINDS
from restoration.estimate_learned import (
    FamilyNet,
    build_family_net,
    classify_family,
    estimate_family,
    family_from_probabilities,
    load_estimator,
    save_estimator,
)
from restoration.routed import WILD_FAMILY_CODES
from robustret.core.io import atomic_save, file_digest
from robustret.core.rng import make_generator
from robustret.train.estimator import (
    EstimatorBatch,
    EstimatorTrainConfig,
    draw_batch,
    estimator_loss,
    estimator_training_images,
    train_estimator,
)

TINY = {"width": 4, "depth": 2}


@pytest.fixture(autouse=True)
def one_thread():
    """These tiny networks run several times faster on one thread when the cores are busy;
    the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(count: int, channels: int = 1, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random images: a coarse random field upsampled, in [0.2, 0.8]."""
    coarse = torch.rand(count, channels, 4, 4, generator=make_generator(seed))
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                             align_corners=False)
    return 0.2 + 0.6 * smooth


def _tiny_config(**changes: object) -> EstimatorTrainConfig:
    return EstimatorTrainConfig(**{"steps": 2, "batch_size": 4, **TINY, **changes})


def test_classify_shapes_dtypes_device_and_sizes():
    model = build_family_net(**TINY, generator=make_generator(0))
    for images in (_images(5), _images(3, channels=3, size=40), _images(2)[..., :33, :47]):
        estimate = estimate_family(model, images)
        count = images.shape[0]
        assert estimate.family.shape == (count,) and estimate.family.dtype == torch.int64
        assert estimate.noise_kind.shape == (count,) and estimate.noise_kind.dtype == torch.int64
        assert estimate.probabilities.shape == (count, len(FAMILIES))
        assert torch.allclose(estimate.probabilities.sum(1), torch.ones(count))
        assert estimate.family.device == images.device
        assert bool((estimate.family >= 0).all() and (estimate.family < len(FAMILIES)).all())
        not_noisy = estimate.family != FAMILIES.index("noise")
        assert bool((estimate.noise_kind[not_noisy] == 0).all())
        assert bool((estimate.noise_kind < len(NOISE_KINDS)).all())
        assert torch.equal(classify_family(model, images), estimate.family)
        assert len(estimate.family_names()) == count
    assert classify_family(model, _images(0)).shape == (0,)
    assert model.training, "estimate_family must leave the model's mode as it was"


def test_chunks_do_not_change_the_answer(monkeypatch):
    model = build_family_net(**TINY, generator=make_generator(1)).eval()
    images = _images(7, seed=3)
    whole = estimate_family(model, images).probabilities
    monkeypatch.setattr("restoration.estimate_learned.CHUNK", 3)
    assert torch.allclose(estimate_family(model, images).probabilities, whole, atol=1e-6)


def test_clean_below_calls_an_image_degraded_only_when_clean_is_unlikely():
    probabilities = torch.tensor([[0.40, 0.30, 0.20, 0.10],    # argmax clean
                                  [0.10, 0.20, 0.60, 0.10],    # argmax blur
                                  [0.25, 0.05, 0.05, 0.65],    # argmax resolution
                                  [0.45, 0.05, 0.10, 0.40],    # argmax clean
                                  [0.50, 0.30, 0.10, 0.10]])   # clean, not below 0.5
    assert family_from_probabilities(probabilities).tolist() == [0, 2, 3, 0, 0]
    assert family_from_probabilities(probabilities, 0.5).tolist() == [1, 2, 3, 3, 0]
    assert family_from_probabilities(probabilities, 0.2).tolist() == [0, 2, 0, 0, 0]
    assert family_from_probabilities(probabilities, 0.05).tolist() == [0, 0, 0, 0, 0]
    model = build_family_net(**TINY, generator=make_generator(4))
    images = _images(6, seed=8)
    estimate = estimate_family(model, images, clean_below=0.3)
    assert torch.equal(estimate.family, family_from_probabilities(estimate.probabilities, 0.3))
    with pytest.raises(ValueError, match="clean_below"):
        classify_family(model, images, clean_below=0.0)


def test_bad_input_is_refused():
    model = build_family_net(**TINY)
    with pytest.raises(ValueError, match="at least 32 x 32"):
        classify_family(model, _images(2, size=16))
    with pytest.raises(ValueError):
        classify_family(model, torch.rand(32, 32))
    with pytest.raises(ValueError, match="width"):
        FamilyNet(width=0)
    with pytest.raises(ValueError, match="steps"):
        EstimatorTrainConfig(steps=0)
    with pytest.raises(ValueError, match="clean_fraction"):
        EstimatorTrainConfig(clean_fraction=1.5)


def test_the_label_table_is_each_wild_member_s_registered_family():
    """Training labels come from the routed restorer's table (one table for both): its entry
    ``member + 1`` is the registered family of each wild member, entry 0 clean."""
    import degradations

    assert WILD_FAMILY_CODES.tolist() == [FAMILIES.index("clean")] + [
        FAMILIES.index(degradations.family(name)) for name in WILD_MEMBERS]


def test_batches_carry_the_drawn_family_and_kind():
    images = _images(6)
    config = _tiny_config(batch_size=32)
    batch = draw_batch(images, config, step=0)
    assert batch.images.shape == (32, 1, 32, 32)
    assert batch.family.dtype == torch.int64 and batch.kind.dtype == torch.int64
    noisy = batch.family == FAMILIES.index("noise")
    assert bool((batch.kind[~noisy] == -1).all()) and bool((batch.kind[noisy] >= 0).all())
    assert len(set(batch.family.tolist())) >= 3, "a batch of 32 should mix the families"
    again = draw_batch(images, config, step=0)
    assert torch.equal(again.images, batch.images) and torch.equal(again.family, batch.family)
    assert not torch.equal(draw_batch(images, config, step=1).images, batch.images)
    clean = draw_batch(images, _tiny_config(batch_size=8, clean_fraction=1.0, sensor_noise=0.0),
                       step=0)
    assert bool((clean.family == 0).all())
    assert bool((clean.images.unsqueeze(1) == images.unsqueeze(0)).flatten(2).all(2).any(1).all())


def test_sensor_noise_is_faint_and_keeps_the_label():
    images = _images(6)
    config = _tiny_config(batch_size=16, clean_fraction=1.0, sensor_noise=0.015,
                          sensor_fraction=1.0)
    noisy = draw_batch(images, config, step=0)
    bare = draw_batch(images, _tiny_config(batch_size=16, clean_fraction=1.0, sensor_noise=0.0),
                      step=0)
    assert bool((noisy.family == 0).all())
    difference = (noisy.images - bare.images).flatten(1).std(dim=1)       # (16,) per image
    assert bool((difference <= config.sensor_noise * 1.2).all())
    assert int((difference > 1e-4).sum()) >= 14, "nearly every image should get some noise"
    assert 0.0 <= float(noisy.images.min()) and float(noisy.images.max()) <= 1.0
    with pytest.raises(ValueError, match="sensor_noise"):
        EstimatorTrainConfig(sensor_noise=0.05)


def test_training_is_deterministic():
    images = _images(6)
    first = train_estimator(images, _tiny_config())
    second = train_estimator(images, _tiny_config())
    other = train_estimator(images, _tiny_config(seed=1))
    assert first.losses.shape == (2,) and bool(torch.isfinite(first.losses).all())
    assert not first.model.training
    state, again = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert any(not torch.equal(state[k], other.model.state_dict()[k]) for k in state
               if state[k].is_floating_point())


def test_training_lowers_the_loss_on_clean_versus_heavy_noise():
    clean = _images(8, seed=5)
    noisy = (clean + 0.3 * torch.randn(clean.shape, generator=make_generator(6))).clamp(0, 1)
    batch = EstimatorBatch(torch.cat([clean, noisy]),
                           torch.tensor([0] * 8 + [1] * 8),
                           torch.tensor([-1] * 8 + [0] * 8))
    model = build_family_net(**TINY, generator=make_generator(0)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = estimator_loss(model, batch, kind_weight=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(classify_family(model.eval(), batch.images), batch.family)


def test_training_images_leave_out_the_holdout():
    gallery = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1).expand(20, 1, 32, 32)
    kept = estimator_training_images(gallery / 20, seed=0)
    assert kept.shape[0] == 18
    assert len({float(v) for v in kept[:, 0, 0, 0]}) == 18


def test_checkpoint_round_trip(tmp_path):
    model = build_family_net(**TINY, generator=make_generator(2)).eval()
    path = save_estimator(model, tmp_path / "estimator.pt", config={"steps": 2})
    loaded = load_estimator(path)
    assert isinstance(loaded, FamilyNet) and not loaded.training
    assert loaded.options == model.options
    images = _images(4, seed=7)
    assert torch.equal(estimate_family(loaded, images).probabilities,
                       estimate_family(model, images).probabilities)
    assert loaded.checkpoint_info["sha256"] == file_digest(path)
    assert loaded.checkpoint_info["config"] == {"steps": 2}


def test_damaged_checkpoint_is_refused_with_one_line(tmp_path):
    path = save_estimator(build_family_net(**TINY), tmp_path / "estimator.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as damaged:
        load_estimator(path)
    message = str(damaged.value)
    assert str(path) in message and "\n" not in message and "SHA-256" in message
    other = atomic_save({"model": {}}, tmp_path / "other.pt", checksum=True)
    with pytest.raises(ValueError, match="not a family estimator checkpoint"):
        load_estimator(other)
    with pytest.raises(FileNotFoundError):
        load_estimator(tmp_path / "missing.pt")
