"""Classical degradation estimation recovers what ``degradations.apply`` drew."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import degradations
from restoration.classical import WienerDeblur
from restoration.estimate import (
    BLUR,
    CLEAN,
    FAMILIES,
    NOISE,
    NOISE_KINDS,
    RESOLUTION,
    DegradationEstimate,
    Family,
    estimate_degradation,
)
from restoration.estimate_blur import angle_difference, blur_endpoint_error, estimate_motion_blur
from restoration.estimate_noise import is_noisy, mad_sigma, noise_features
from restoration.estimate_resolution import estimate_haar_level
from restoration.hybrid import HybridRestorer

SIZE = 48
FAMILY_OF = {"gaussian_noise": NOISE, "salt_pepper": NOISE, "speckle": NOISE, "noise": NOISE,
             "motion_blur": BLUR, "lowres": RESOLUTION}


def _scenes(count: int = 16, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """(count, 1, size, size) in [0, 1]: a smooth background with a few flat shapes on it,
    quantised to 8 bits like the built-in data."""
    g = torch.Generator().manual_seed(seed)
    coarse = 0.2 + 0.5 * torch.rand(count, 1, 4, 4, generator=g)
    images = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(3):
        centre = torch.rand(count, 2, generator=g) * size * 0.6 + size * 0.2
        radius = torch.rand(count, 2, generator=g) * size * 0.15 + size * 0.08
        shade = torch.rand(count, generator=g) * 0.8 + 0.1
        inside = (((yy - centre[:, 0, None, None]) / radius[:, 0, None, None]) ** 2
                  + ((xx - centre[:, 1, None, None]) / radius[:, 1, None, None]) ** 2) <= 1
        images = torch.where(inside[:, None], shade[:, None, None, None], images)
    return (images.clamp(0, 1) * 255).round() / 255


def _degrade(name: str, severity: int, seed: int = 1, **overrides: object):
    g = torch.Generator().manual_seed(seed)
    return degradations.apply(_scenes(), name, severity, generator=g, return_params=True,
                              **overrides)


# ---------------------------------------------------------------- noise
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_sigma_within_ten_percent(severity: int) -> None:
    sigma = degradations.severity_params("gaussian_noise", severity)["sigma"]
    noisy, _ = _degrade("gaussian_noise", severity)
    estimate = mad_sigma(noisy)
    assert ((estimate / sigma - 1).abs() < 0.10).float().mean() >= 0.9
    assert abs(float(estimate.median()) / sigma - 1) < 0.05


@pytest.mark.parametrize("name, key", [("salt_pepper", "p"), ("speckle", "amplitude")])
def test_noise_level_in_the_kinds_own_unit(name: str, key: str) -> None:
    true = degradations.severity_params(name, 3)[key]
    noisy, params = _degrade(name, 3)
    estimate = estimate_degradation(noisy)
    assert (estimate.family == NOISE).all()
    assert torch.equal(estimate.noise_kind, params["kind"])
    error = (estimate.noise_level / true - 1).abs()
    assert float(error.median()) < 0.08 and (error < 0.25).all()
    assert (estimate.severity == 3).float().mean() >= 0.75


def test_noise_kind_of_the_mixture() -> None:
    noisy, params = _degrade("noise", 3, seed=7)
    estimate = estimate_degradation(noisy)
    assert (estimate.family == NOISE).all()
    assert (estimate.noise_kind == params["kind"]).float().mean() >= 0.9


def test_clean_and_blurred_images_have_no_noise() -> None:
    for images in (_scenes(), _degrade("motion_blur", 3)[0]):
        features = noise_features(images)
        assert not is_noisy(features).any()
        assert (features.relative_sigma < 0.02).all() and (features.impulse_fraction < 0.005).all()


# ---------------------------------------------------------------- blur
def test_fixed_blur_length_and_angle_recovered() -> None:
    blurred, params = _degrade("motion_blur", 3, length=6.0, angle=30.0)
    found = estimate_motion_blur(blurred)
    error = blur_endpoint_error(found.a, found.b, params["a"], params["b"], (SIZE, SIZE))
    assert (error < 0.5).all(), error
    assert ((found.length - 6.0).abs() < 0.5).all()
    assert (angle_difference(found.angle, torch.full_like(found.angle, 30.0)) < 3.0).all()
    assert (found.b >= 0).all() and ((found.angle >= 0) & (found.angle < 180)).all()


def test_drawn_blurs_recovered_up_to_sign() -> None:
    blurred, params = _degrade("motion_blur", 4, seed=3)
    found = estimate_motion_blur(blurred)
    length = torch.hypot(params["a"], params["b"]) * SIZE
    visible = length >= 2.5  # shorter blurs leave no zero line in the spectrum
    assert visible.sum() >= 8
    error = blur_endpoint_error(found.a, found.b, params["a"], params["b"], (SIZE, SIZE))
    assert (error[visible] < 1.0).float().mean() >= 0.9
    assert (found.score[visible] > 0.55).float().mean() >= 0.9


def test_wiener_with_the_estimate_matches_the_drawn_blur_up_to_a_shift() -> None:
    blurred, params = _degrade("motion_blur", 3, length=5.0, angle=-60.0)  # b < 0: flipped
    estimate = estimate_degradation(blurred)
    assert (estimate.family == BLUR).all()
    wiener = WienerDeblur()
    known, guessed = wiener(blurred, params), wiener(blurred, estimate.params())
    # the opposite sign translates the result: equal spectra magnitudes, not equal images
    spectrum = torch.fft.fft2(known).abs(), torch.fft.fft2(guessed).abs()
    assert torch.allclose(spectrum[0], spectrum[1], atol=0.05 * float(spectrum[0].max()))
    assert not torch.allclose(known, guessed, atol=0.05)


# ---------------------------------------------------------------- resolution
@pytest.mark.parametrize("severity", [3, 5])
def test_haar_level_exact(severity: int) -> None:
    low, params = _degrade("lowres", severity)
    assert torch.equal(estimate_haar_level(low), params["level"])


def test_sharp_and_flat_images_have_level_zero() -> None:
    assert (estimate_haar_level(_scenes(8)) == 0).all()
    flat = torch.full((2, 1, 32, 32), 0.5)  # constant at every offset: no block grid
    assert (estimate_haar_level(flat) == 0).all()


# ---------------------------------------------------------------- families
def test_clean_images_are_clean() -> None:
    estimate = estimate_degradation(_scenes(24, seed=5))
    assert (estimate.family == CLEAN).all()
    assert estimate.family_names() == ["clean"] * 24
    assert (estimate.params()["level"] == 0).all() and (estimate.params()["a"] == 0).all()


@pytest.mark.parametrize("name", sorted(FAMILY_OF))
def test_family_of_each_study_degradation(name: str) -> None:
    degraded, _ = _degrade(name, 3, seed=11)
    estimate = estimate_degradation(degraded)
    # severity 3 blurs shorter than about 2 px read as clean (about 1 in 10 at 48 px)
    assert (estimate.family == FAMILY_OF[name]).float().mean() >= 0.75


def test_vocabularies_defined_once() -> None:
    assert FAMILIES == ("clean", "noise", "blur", "resolution")
    assert Family.BLUR.value == FAMILIES[BLUR] == degradations.family("motion_blur")
    assert FAMILIES[RESOLUTION] == degradations.family("lowres")
    assert NOISE_KINDS == degradations.NoiseMixture.KINDS


# ---------------------------------------------------------------- contract
def test_fields_shapes_dtypes_and_device(device: torch.device) -> None:
    images = _degrade("noise", 2)[0][:6].to(device)
    estimate = estimate_degradation(images)
    assert isinstance(estimate, DegradationEstimate) and len(estimate) == 6
    for name in ("family", "noise_kind", "level"):
        value = getattr(estimate, name)
        assert value.shape == (6,) and value.dtype == torch.int64 and value.device == device
    for name in ("noise_level", "noise_sigma", "blur_a", "blur_b", "blur_length", "blur_angle",
                 "blur_score", "severity"):
        value = getattr(estimate, name)
        assert value.shape == (6,) and value.dtype == torch.float32 and value.device == device
    assert set(estimate.params()) == {"a", "b", "level", "kind", "severity"}
    assert set(estimate.params(severity=False)) == {"a", "b", "level", "kind"}


def test_rgb_float64_and_chunks_give_the_same_answer() -> None:
    gray, _ = _degrade("noise", 3)
    rgb = gray.expand(-1, 3, -1, -1).double()
    one, chunked = estimate_degradation(gray), estimate_degradation(rgb, chunk_size=5)
    assert torch.equal(one.family, chunked.family)
    assert torch.equal(one.noise_kind, chunked.noise_kind)
    assert torch.allclose(one.noise_level, chunked.noise_level, rtol=0.05)


def test_empty_batch() -> None:
    estimate = estimate_degradation(torch.zeros(0, 1, 16, 16))
    assert len(estimate) == 0 and estimate.params()["a"].shape == (0,)


@pytest.mark.parametrize("images, error, match", [
    ("not a tensor", TypeError, "torch.Tensor"),
    (torch.rand(32, 32), ValueError, "x\\[None, None\\]"),
    (torch.rand(1, 1, 6, 6), ValueError, "at least 8 x 8"),
    (torch.rand(1, 1, 16, 16) * 2, ValueError, "\\[0, 1\\]"),
    (torch.full((1, 1, 16, 16), math.nan), ValueError, "NaN"),
])
def test_bad_input_raises(images: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        estimate_degradation(images)  # type: ignore[arg-type]


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        estimate_degradation(_scenes(2), chunk_size=0)
    with pytest.raises(ValueError, match="max_length"):
        estimate_motion_blur(_scenes(2), max_length=0.0)


# ---------------------------------------------------------------- consumers
def test_restorers_take_the_estimated_params() -> None:
    low, params = _degrade("lowres", 4)
    estimate = estimate_degradation(low)
    assert (estimate.severity == 4).all()  # level 2 is most likely at severity 4 (levels 2.0)
    hybrid = HybridRestorer(front="bicubic", widths=(4,), condition=("level", "severity"))
    out = hybrid(low, estimate.params())
    assert out.shape == low.shape and torch.equal(out, hybrid(low, params))
