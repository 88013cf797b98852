"""The realistic variants of the study's motion blur and resolution loss: the study's draws,
without its fingerprints (the shared contract is run for them by test_degradations_api)."""

from __future__ import annotations

import pytest
import torch

import degradations
from degradations.realistic import UPSAMPLE_MODES, line_kernels
from robustret.core.rng import make_generator


def _scene(size: int = 48, batch: int = 3) -> torch.Tensor:
    """A bright square on a mid-gray ground, away from the borders."""
    x = torch.full((batch, 1, size, size), 0.3)
    x[:, :, size // 3: 2 * size // 3, size // 3: 2 * size // 3] = 0.8
    return x


@pytest.mark.parametrize(("name", "study"), [("realistic_motion_blur", "motion_blur"),
                                             ("realistic_lowres", "lowres")])
def test_the_draws_are_the_studys(name: str, study: str) -> None:
    """Same seed, same severity: the same blur displacement / the same Haar level per image,
    so a realistic row is read beside its study row."""
    x = _scene(batch=64)
    _, ours = degradations.apply(x, name, 4, generator=make_generator(5), return_params=True)
    _, theirs = degradations.apply(x, study, 4, generator=make_generator(5), return_params=True)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)


def test_away_from_the_borders_the_blur_is_the_studys_kernel() -> None:
    x = _scene()
    params = {"a": torch.tensor([0.08, -0.05, 0.0]), "b": torch.tensor([0.02, 0.07, -0.1])}
    ours = degradations.build_module("realistic_motion_blur", noise=0.0).apply_params(x, params)
    theirs = degradations.build_module("motion_blur").apply_params(x, params)
    inner = (slice(None), slice(None), slice(10, 38), slice(10, 38))
    assert (ours[inner] - theirs[inner]).abs().mean() < 0.01
    assert (ours - x).abs().mean() > 0.01  # it does blur


def test_nothing_wraps_around_the_border() -> None:
    """A bright left edge blurred to the right stays on the left (the study's circular blur
    carries it to the right border)."""
    x = torch.full((1, 1, 32, 32), 0.2)
    x[..., :4] = 1.0
    params = {"a": torch.tensor([-0.2]), "b": torch.tensor([0.0])}  # 6.4 px
    ours = degradations.build_module("realistic_motion_blur", noise=0.0).apply_params(x, params)
    theirs = degradations.build_module("motion_blur").apply_params(x, params)
    assert (ours[..., -4:] - 0.2).abs().max() < 1e-5
    assert (theirs[..., -4:] - 0.2).abs().max() > 0.1


def test_the_blur_adds_mild_sensor_noise() -> None:
    x = torch.full((2, 1, 64, 64), 0.5)
    out = degradations.apply(x, "realistic_motion_blur", 3, generator=make_generator(0))
    assert 0.008 < float(out.std()) < 0.012


def test_a_kernel_is_a_normalised_segment_from_zero_to_the_displacement() -> None:
    k = line_kernels(torch.tensor([4.0]), torch.tensor([0.0]), reach=5, samples=33)[0]
    assert float(k.sum()) == pytest.approx(1.0)
    row = k[5]
    assert float(row.sum()) == pytest.approx(1.0)  # all on the centre row
    assert torch.all(row[5:10] > 0.1) and torch.all(row[:5] == 0) and torch.all(row[10:] == 0)


def test_the_resolution_loss_leaves_no_constant_blocks_and_does_not_move_the_content() -> None:
    x = _scene(48, batch=8)
    study = degradations.apply(x, "lowres", 1, generator=make_generator(2))
    ours, params = degradations.apply(x, "realistic_lowres", 1, generator=make_generator(2),
                                      return_params=True)
    assert torch.equal(params["level"], torch.ones(8, dtype=torch.int64))

    def block_spread(images: torch.Tensor) -> float:  # max - min inside aligned 2x2 blocks
        blocks = images.unfold(2, 2, 2).unfold(3, 2, 2)
        return float((blocks.amax((-1, -2)) - blocks.amin((-1, -2))).max())

    assert block_spread(study) == 0.0 and block_spread(ours) > 0.05

    def centroid(images: torch.Tensor) -> torch.Tensor:
        weight = (images - 0.3).clamp(min=0)[:, 0]
        grid = torch.arange(images.shape[-1], dtype=torch.float32)
        return torch.stack([(weight.sum(1) * grid).sum(1), (weight.sum(2) * grid).sum(1)],
                           1) / weight.sum((1, 2))[:, None]

    assert (centroid(ours) - centroid(x)).abs().max() < 0.3
    assert params["dx"].std() > 0.1 and set(params["upsample"].tolist()) <= {0, 1}
    assert len(UPSAMPLE_MODES) == 2
