"""ImageNet-C's elastic transform, fog, snow and spatter: their truths.

The house contract (every check of degradation_contract, gray and RGB at 32 and 96 px) runs on
them with every other registered family in test_degradations_api.py.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch
from degradation_contract import check_registered_with_their_family, mse
from scipy import ndimage

import degradations
import degradations.corruptions.geometric as geometric
import degradations.corruptions.spatter as spatter
import degradations.corruptions.weather as weather
from degradations.corruptions import _fields
from robustret.core.rng import make_generator

FAMILIES = {"elastic_transform": "digital", "fog": "weather", "snow": "weather",
            "spatter": "weather"}
NAMES = sorted(FAMILIES)
FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "elastic_transform": geometric.elastic_transform, "fog": weather.fog,
    "snow": weather.snow, "spatter": spatter.spatter,
}


def scene(batch: int = 4, size: int = 48, channels: int = 1, width: int | None = None,
          ) -> torch.Tensor:
    """(batch, channels, size, width) in [0.05, 0.95]: a sinusoid of period 9 px at a
    per-image angle, channels tilted by a horizontal ramp."""
    width = width or size
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    images = []
    for i in range(batch):
        theta = 0.7 * i + 0.3
        wave = torch.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / 9 + i)
        images.append(torch.stack([0.45 + 0.3 * wave * (0.8 + 0.2 * c)
                                   + 0.2 * (xx / width - 0.5) * (c - 1)
                                   for c in range(channels)]))
    return torch.stack(images).clamp(0.05, 0.95)


# ------------------------------------------------------------------------------- the contract


def test_registered_with_their_family() -> None:
    check_registered_with_their_family(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_equals_single_images_bit_for_bit(name: str) -> None:
    """Stronger than the contract's tolerance: no threshold flips between batch sizes."""
    x = scene(3, 37, 3, 41)
    indices = [4, 1, 9]
    batch = degradations.apply_indexed(x, name, 5, seed=3, indices=indices)
    singles = torch.cat([degradations.apply_indexed(x[i : i + 1], name, 5, seed=3,
                                                    indices=[index])
                         for i, index in enumerate(indices)])
    assert torch.equal(batch, singles)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_distortion_grows_with_severity(name: str, channels: int) -> None:
    """MSE to the clean scene rises strictly from 1 to 5, averaged over 3 seeds."""
    x = scene(4, 40, channels)
    errors = [np.mean([mse(degradations.apply(x, name, s, generator=make_generator(seed)), x)
                       for seed in range(3)]) for s in degradations.SEVERITY_LEVELS]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-4


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("size", "channels"), [((32, 32), 1), ((33, 47), 3), ((96, 64), 1)])
def test_sizes_from_32_px_gray_and_rgb(name: str, size: tuple[int, int], channels: int) -> None:
    x = scene(2, size[0], channels, size[1])
    out = degradations.apply(x, name, 5, generator=make_generator(0))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert mse(out, x) > 1e-4


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 4])
def test_module_equals_its_public_function(name: str, severity: int) -> None:
    """function(images, module's parameters, drawn parameters, generator) gives its bytes."""
    x = scene(3, 36, 3)
    function = FUNCTIONS[name]
    module = degradations.build_module(name, severity)
    accepted = set(inspect.signature(function).parameters) - {"images", "generator"}
    generator = make_generator(2)
    params = module.sample_params(len(x), generator, size=tuple(x.shape[-2:]))
    assert accepted <= set(module.param_names()) | set(params) and set(params) <= accepted
    kwargs = {n: getattr(module, n) for n in module.param_names() if n in accepted}
    got = function(x, **kwargs, **params, generator=generator)
    assert torch.equal(got, module(x, make_generator(2)))


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("fog", {"decay": 0.0}, "decay"),
        ("fog", {"strength": -1.0}, "strength"),
        ("snow", {"zoom": 0.0}, "zoom"),
        ("snow", {"blend": 1.5}, "blend"),
        ("spatter", {"liquid": "oil"}, "water, mud"),
        ("spatter", {"sigma": float("nan")}, "sigma"),
        ("elastic_transform", {"affine": 20.0}, "affine"),
        ("elastic_transform", {"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_family_parameters_raise(name: str, overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        degradations.apply(scene(1, 32), name, **overrides)


def test_bad_per_image_parameters_raise() -> None:
    x = scene(2, 32)
    with pytest.raises(ValueError, match=r"angle must be a number or a \(2,\) tensor"):
        weather.snow(x, torch.zeros(3))
    with pytest.raises(ValueError, match="quarter of the shorter side"):
        geometric.elastic_transform(x, affine_x0=0.3)


# -------------------------------------------------------------------------- elastic transform


def test_elastic_without_affine_or_field_is_the_identity() -> None:
    x = scene(3, 37, 3, 41)
    out = geometric.elastic_transform(x, alpha=0.0, generator=make_generator(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_elastic_affine_matches_opencv() -> None:
    """With no field, the drawn anchor shifts are cv2.getAffineTransform + warpAffine."""
    h, w = 40, 52
    image = cv2.GaussianBlur(np.random.default_rng(0).random((h, w)).astype(np.float32),
                             (0, 0), 2)
    shifts = [0.05, -0.03, 0.02, 0.04, -0.05, 0.01]
    side = min(h, w)
    q, cx, cy = side / 3, (w - 1) / 2, (h - 1) / 2
    anchors = np.float32([[cx + q, cy + q], [cx + q, cy - q], [cx - q, cy - q]])
    moved = anchors + side * np.float32(shifts).reshape(3, 2)
    matrix = cv2.getAffineTransform(anchors, moved)
    expected = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    out = geometric.elastic_transform(torch.from_numpy(image)[None, None], *shifts, alpha=0.0)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)


def test_elastic_field_has_imagenet_c_amplitude() -> None:
    """On a horizontal ramp the output minus the input is dx / (W - 1); dx has the std of
    alpha * U(-1, 1) smoothed by the Gaussian: alpha / sqrt(3) * sum(taps^2)."""
    h = w = 48
    ramp = (torch.arange(w, dtype=torch.float64) / (w - 1)).expand(8, 1, h, w).clone()
    alpha, sigma = 10.24, 1.92
    out = geometric.elastic_transform(ramp, alpha=alpha, sigma=sigma,
                                      generator=make_generator(4))
    dx = ((out - ramp) * (w - 1))[..., 8:-8, 8:-8]  # away from the mirrored borders
    f = _fields.size_factor(h, w)
    taps = np.array(_fields.gaussian_taps(sigma * f, geometric.TRUNCATE))
    expected = alpha * f / math.sqrt(3) * float((taps**2).sum())
    assert float(dx.std()) == pytest.approx(expected, rel=0.2)
    assert abs(float(dx.mean())) < 0.2 * expected


def test_elastic_keeps_the_mean_and_returns_bounded_shifts() -> None:
    x = scene(4, 48)
    out, params = degradations.apply(x, "elastic_transform", 5, generator=make_generator(1),
                                     return_params=True)
    assert abs(float(out.mean() - x.mean())) < 0.02
    bound = degradations.severity_params("elastic_transform", 5)["affine"] / 64
    for key in geometric.AFFINE_KEYS:
        assert params[key].shape == (4,) and float(params[key].abs().max()) <= bound
    assert len({round(float(params[key][0]), 6) for key in geometric.AFFINE_KEYS}) == 6


# ------------------------------------------------------------------------------------------ fog


def test_fog_lightens_a_dark_scene_and_lowers_contrast() -> None:
    dark = torch.full((4, 1, 40, 40), 0.05)
    dark[:, :, 18:22, 18:22] = 1.0  # one lamp: the image's maximum is 1
    out = degradations.apply(dark, "fog", 3, generator=make_generator(0))
    assert float(out.mean()) > float(dark.mean()) + 0.1
    checker = ((torch.arange(40)[:, None] // 4 + torch.arange(40) // 4) % 2).float()
    checker = (0.1 + 0.8 * checker).expand(4, 1, 40, 40)
    for severity in (1, 5):
        foggy = degradations.apply(checker, "fog", severity, generator=make_generator(0))
        assert float(foggy.std()) < 0.9 * float(checker.std())


def test_fog_gray_is_each_channel_of_rgb() -> None:
    x = scene(3, 36)
    gray = weather.fog(x, generator=make_generator(5))
    rgb = weather.fog(x.expand(3, 3, 36, 36), generator=make_generator(5))
    for c in range(3):
        torch.testing.assert_close(rgb[:, c : c + 1], gray, atol=1e-6, rtol=0)


def test_plasma_fractal_is_normalised_and_smoother_with_larger_decay() -> None:
    uniforms = torch.rand(4, 64 * 64 - 1, generator=make_generator(0)) * 2 - 1
    roughness = []
    for decay in (1.5, 3.0):
        maps = _fields.plasma_fractal(uniforms, 64, decay)
        assert maps.shape == (4, 64, 64)
        torch.testing.assert_close(maps.amin(dim=(1, 2)), torch.zeros(4))
        torch.testing.assert_close(maps.amax(dim=(1, 2)), torch.ones(4))
        roughness.append(float((maps[:, 1:] - maps[:, :-1]).abs().mean()))
    assert roughness[1] < 0.5 * roughness[0]


# ----------------------------------------------------------------------------------------- snow


def test_snow_adds_bright_pixels() -> None:
    """Over the brightened background (blend x + (1 - blend)(1.5 x + 0.5)), a share of the
    pixels carries flakes or streaks; nothing gets darker."""
    x = torch.full((4, 1, 40, 40), 0.2)
    for severity in (1, 5):
        out = degradations.apply(x, "snow", severity, generator=make_generator(0))
        blend = degradations.severity_params("snow", severity)["blend"]
        background = blend * 0.2 + (1 - blend) * 0.8
        assert 0.01 < float((out > background + 0.05).float().mean()) < 0.9
        assert float(out.max()) > background + 0.2
        assert float((out - background).min()) >= -1e-6


def test_snow_streaks_follow_the_angle() -> None:
    black = torch.zeros(4, 1, 48, 48)
    steps = {}
    for angle in (0.0, -90.0):
        layer = weather.snow(black, angle, blend=1.0, generator=make_generator(3))
        along_x = float((layer[..., :, 1:] - layer[..., :, :-1]).abs().mean())
        along_y = float((layer[..., 1:, :] - layer[..., :-1, :]).abs().mean())
        steps[angle] = along_x / along_y
    assert steps[0.0] < 0.7 and steps[-90.0] > 1 / 0.7


def test_snow_gray_is_each_channel_of_rgb_and_returns_the_angle() -> None:
    x = scene(3, 36)
    gray, params = degradations.apply(x, "snow", 4, generator=make_generator(5),
                                      return_params=True)
    rgb = degradations.apply(x.expand(3, 3, 36, 36), "snow", 4, generator=make_generator(5))
    for c in range(3):
        torch.testing.assert_close(rgb[:, c : c + 1], gray, atol=1e-5, rtol=0)
    low, high = weather.SNOW_ANGLES
    assert params["angle"].shape == (3,)
    assert float(params["angle"].min()) >= low and float(params["angle"].max()) < high


# -------------------------------------------------------------------------------------- spatter


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_spatter_changes_a_bounded_fraction_of_pixels(severity: int) -> None:
    x = torch.full((4, 3, 48, 48), 0.5)
    out = degradations.apply(x, "spatter", severity, generator=make_generator(0))
    changed = float(((out - x).abs().amax(dim=1) > 1 / 255).float().mean())
    assert 0.003 < changed < 0.5
    if severity <= 3:  # water only adds light
        assert float((out - x).min()) >= -1e-6
    else:  # mud covers towards brown
        brown = torch.tensor(spatter.MUD_RGB).view(1, 3, 1, 1)
        assert float(((out - brown).abs() - (x - brown).abs()).max()) <= 1e-6


@pytest.mark.parametrize("severity", [2, 4])
def test_spatter_gray_is_the_luma_of_rgb(severity: int) -> None:
    x = 0.3 * scene(3, 40)  # dark enough that water (at most +0.6 * 238 / 255) never clips
    gray = degradations.apply(x, "spatter", severity, generator=make_generator(7))
    rgb = degradations.apply(x.expand(3, 3, 40, 40), "spatter", severity,
                             generator=make_generator(7))
    torch.testing.assert_close(_fields.luma(rgb), gray, atol=1e-5, rtol=0)
    assert mse(gray, x) > 1e-5


def test_water_helpers_match_opencv() -> None:
    rng = np.random.default_rng(0)
    levels = rng.integers(3, 9, size=(2, 1, 20, 30))
    ours = spatter.equalize_levels(torch.from_numpy(levels), 21).numpy()
    for i in range(2):
        expected = cv2.equalizeHist(levels[i, 0].astype(np.uint8)) / 255
        np.testing.assert_allclose(ours[i, 0], expected, atol=0.5 / 255 + 1e-6)
    mask = np.zeros((40, 40), dtype=bool)
    mask[8:30, 10:33] = True
    edges = mask & ~ndimage.binary_erosion(mask, border_value=1)
    expected = np.minimum(cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 5), 20)
    ours = spatter.edge_distance(torch.from_numpy(mask)[None, None], 20)[0, 0].numpy()
    assert np.abs(ours - expected).max() <= 0.1 * expected.max() + 1


# -------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
@pytest.mark.parametrize("sigma", [0.7, 2.5])
def test_gaussian_smooth_matches_scipy(mode: str, sigma: float) -> None:
    x = torch.rand(2, 1, 13, 17, dtype=torch.float64, generator=make_generator(0))
    ours = _fields.gaussian_smooth(x, sigma, truncate=3.0, mode=mode)
    expected = ndimage.gaussian_filter(x.numpy(), (0, 0, sigma, sigma), truncate=3.0,
                                       mode=mode)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)


def test_box_and_emboss_match_opencv() -> None:
    x = torch.rand(1, 1, 11, 14, dtype=torch.float64, generator=make_generator(1))
    image = x[0, 0].numpy()
    np.testing.assert_allclose(_fields.box3(x)[0, 0].numpy(), cv2.blur(image, (3, 3)),
                               atol=1e-12)
    kernel = np.array(spatter.EMBOSS)
    np.testing.assert_allclose(_fields.correlate3x3(x, spatter.EMBOSS)[0, 0].numpy(),
                               cv2.filter2D(image, -1, kernel), atol=1e-12)
