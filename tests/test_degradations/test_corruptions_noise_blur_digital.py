"""The noise, blur and digital corruption families: family truths.

The house contract (every check of degradation_contract, gray and RGB at 32 and 96 px) runs on
them with every other registered family in test_degradations_api.py.
"""

from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest
import scipy.ndimage
import torch
from degradation_contract import check_registered_with_their_family, mse, texture

import degradations
import degradations.corruptions.digital as digital
import degradations.corruptions.noise_blur as noise_blur
from degradations.corruptions import _anchors, _kernels
from robustret.core.rng import make_generator

FAMILIES = {
    "shot_noise": "noise", "impulse_noise": "noise", "gaussian_blur": "blur",
    "defocus_blur": "blur", "zoom_blur": "blur", "glass_blur": "blur",
    "line_motion_blur": "blur", "pixelate": "resolution", "jpeg": "digital",
    "contrast": "digital", "brightness": "weather", "saturate": "digital",
}
NAMES = sorted(FAMILIES)
#: drawn parameters each family returns with return_params (besides the API's severity)
DRAWN = {"line_motion_blur": {"angle"}, "pixelate": {"phase_y", "phase_x"}}


def pink(batch: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """(batch, channels, size, size) 1/f noise around 0.5 (std 0.15): natural-image spectra."""
    g = make_generator(seed)
    f = torch.fft.fftfreq(size).abs()
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    shape = (batch, channels, size, size)
    spectrum = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    spectrum = spectrum / radius
    spectrum[..., 0, 0] = 0
    x = torch.fft.ifft2(spectrum).real
    x = x / x.flatten(1).std(1).view(-1, 1, 1, 1) * 0.15 + 0.5
    return x.clamp(0, 1)


def natural(channels: int, size: int, batch: int = 8) -> torch.Tensor:
    """Gray: the contract's texture and 1/f noise; RGB: 1/f luminance with weak 1/f chroma
    (mean HSV saturation about 0.15, as in most photographs)."""
    if channels == 1:
        return torch.cat([texture(batch // 2, size), pink(batch - batch // 2, 1, size, 0)])
    lum = pink(batch, 1, size, 1)
    a, b = ((pink(batch, 1, size, seed) - 0.5) * 0.2 for seed in (2, 3))
    return torch.cat([lum + a, lum + b, lum - a - b], 1).clamp(0, 1)


# ------------------------------------------------------------------------------- contract


def test_registered_with_their_family() -> None:
    check_registered_with_their_family(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_drawn_parameters_are_the_meaningful_ones(name: str, images: torch.Tensor) -> None:
    _, params = degradations.apply(images, name, 4, generator=make_generator(0),
                                   return_params=True)
    assert set(params) - {degradations.SEVERITY} == DRAWN.get(name, set())


# ------------------------------------------------------------------- distortion vs severity


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "size"), [(1, 32), (3, 32), (1, 48), (3, 48)])
def test_distortion_grows_with_severity(name: str, channels: int, size: int) -> None:
    x = natural(channels, size)
    errors = [
        np.mean([mse(degradations.apply(x, name, s, generator=make_generator(seed)), x)
                 for seed in (0, 1)])
        for s in degradations.SEVERITY_LEVELS
    ]
    if name == "saturate" and channels == 1:  # the documented no-op
        assert errors == [0.0] * 5
        return
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


# ---------------------------------------------------------------------------- calibration


def test_anchors_read_the_three_tables_and_scale_lengths() -> None:
    triple = (1.0, 2.0, 6.0)
    assert _anchors.at_side(triple, 32) == 1.0 and _anchors.at_side(triple, 64) == 2.0
    assert _anchors.at_side(triple, 224) == pytest.approx(6.0)
    assert _anchors.at_side(triple, 16, length=True) == 0.5
    assert _anchors.at_side(triple, 16) == 1.0
    assert _anchors.at_side(triple, 448, length=True) == pytest.approx(12.0)
    assert _anchors.at_side(triple, 45) == pytest.approx(1 + np.log2(45 / 32))
    assert _anchors.at_side(2.5, 17, length=True) == 2.5  # a plain number: as given
    assert degradations.severity_params("gaussian_blur", 1) == {"sigma": (0.4, 0.5, 1.0)}
    assert degradations.severity_params("jpeg", 5) == {"quality": (40.0, 25.0, 7.0)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sigma": -1.0}, "sigma must be finite"), ({"sigma": (1, 2)}, "sequence of 3 numbers"),
     ({"sigma": "1"}, "a number or"), ({"sigma": (1, 2, float("nan"))}, "finite")],
)
def test_bad_anchored_values_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        degradations.apply(torch.rand(1, 1, 8, 8), "gaussian_blur", **kwargs)


# ------------------------------------------------------------------------------------ noise


def test_shot_noise_variance_is_intensity_over_photons() -> None:
    variances = []
    for value in (0.3, 0.6):
        x = torch.full((8, 1, 32, 32), value)
        out = noise_blur.shot_noise(x, 50.0, generator=make_generator(0))
        assert abs(float(out.mean()) - value) < 0.01
        variances.append(float(out.var()))
        assert abs(variances[-1] - value / 50) < 0.1 * value / 50
    assert variances[1] / variances[0] == pytest.approx(2.0, rel=0.1)


def test_impulse_noise_replaces_the_amount_per_channel() -> None:
    x = torch.full((8, 3, 32, 32), 0.5)
    out = noise_blur.impulse_noise(x, 0.1, generator=make_generator(0))
    salt, pepper = float((out == 1).float().mean()), float((out == 0).float().mean())
    assert abs(salt + pepper - 0.1) < 0.01 and abs(salt - pepper) < 0.01
    hit = out != 0.5
    assert bool((hit.any(1) & ~hit.all(1)).any())  # channels drawn independently


# ------------------------------------------------------------------------------------- blur


def test_gaussian_blur_matches_scipy_and_keeps_constants() -> None:
    x = torch.rand(2, 3, 20, 27, dtype=torch.float64, generator=make_generator(0))
    out = noise_blur.gaussian_blur(x, 1.3)
    for b in range(2):
        for c in range(3):
            expected = scipy.ndimage.gaussian_filter(x[b, c].numpy(), 1.3, mode="nearest",
                                                     truncate=4.0)
            np.testing.assert_allclose(out[b, c].numpy(), expected, atol=1e-10)
    const = torch.full((2, 1, 32, 32), 0.7)
    for severity in (1, 5):
        torch.testing.assert_close(degradations.apply(const, "gaussian_blur", severity), const)


def test_defocus_kernels_sum_to_one_and_blend_between_sizes() -> None:
    for radius, alias in ((0.3, 0.4), (1.5, 0.1), (6.0, 0.5), (10.0, 0.5)):
        assert _kernels.disk_kernel(radius, alias).sum() == pytest.approx(1.0)
    assert np.array_equal(_kernels.disk_kernel(0.5, 0.0), np.pad([[1.0]], 1))
    params = degradations.severity_params("defocus_blur", 4)
    k48 = noise_blur.defocus_kernel(params["radius"], params["alias_blur"], 48)
    k32 = noise_blur.defocus_kernel(params["radius"], params["alias_blur"], 32)
    k64 = noise_blur.defocus_kernel(params["radius"], params["alias_blur"], 64)
    t = np.log2(48 / 32)
    np.testing.assert_allclose(k48, _kernels.blend_kernels([k32, k64], [1 - t, t]))
    const = torch.full((1, 3, 40, 40), 0.3)
    torch.testing.assert_close(degradations.apply(const, "defocus_blur", 5), const)


def test_zoom_blur_of_factor_one_is_identity_and_keeps_constants() -> None:
    x = torch.rand(2, 3, 33, 40, generator=make_generator(0))
    torch.testing.assert_close(noise_blur.zoom_blur(x, 1.0), x)
    const = torch.full((2, 1, 32, 32), 0.4)
    torch.testing.assert_close(degradations.apply(const, "zoom_blur", 5), const)
    i0, i1, w = _kernels.zoom_indices(9, 1.25)  # the centre pixel samples itself
    assert (i0[4], w[4]) == (4, 0.0)
    y = torch.rand(1, 1, 12, 17, dtype=torch.float64, generator=make_generator(1))
    coords = [(np.arange(n) + 0.5 - n / 2) / 1.1 + n / 2 - 0.5 for n in (12, 17)]
    grid = np.meshgrid(*coords, indexing="ij")
    zoomed = scipy.ndimage.map_coordinates(y[0, 0].numpy(), grid, order=1, mode="nearest")
    expected = (2 * y[0, 0].numpy() + zoomed) / 3  # the image, zoom 1, zoom 1.1
    np.testing.assert_allclose(noise_blur.zoom_blur(y, 1.1, 0.1)[0, 0].numpy(), expected,
                               atol=1e-12)


def test_glass_blur_without_blur_only_moves_pixels() -> None:
    x = torch.rand(2, 3, 24, 24, generator=make_generator(0))
    same = noise_blur.glass_blur(x, 0.0, 0.0, 2, generator=make_generator(1))
    torch.testing.assert_close(same, x)
    moved = noise_blur.glass_blur(x, 0.0, 2.0, 1, generator=make_generator(1))
    pixels = set(map(tuple, x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()))
    assert set(map(tuple, moved.permute(0, 2, 3, 1).reshape(-1, 3).tolist())) <= pixels
    share = float((moved != x).any(1).float().mean())
    half = noise_blur.glass_blur(x, 0.0, 2.0, 0.5, generator=make_generator(1))
    assert float((half != x).any(1).float().mean()) == pytest.approx(share / 2, abs=0.06)


def test_line_motion_kernel_sums_to_one_and_the_blur_is_linear() -> None:
    taps = _kernels.motion_taps(6, 2)
    assert len(taps) == 13 and taps.sum() == pytest.approx(1.0) and np.all(np.diff(taps) < 0)
    x = torch.zeros(1, 1, 16, 16)
    x[..., 0] = 1.0  # a bright left column; the blur samples to the right (angle 0)
    out = noise_blur.line_motion_blur(x, 0.0, 6, 2)
    assert float(out[..., 0].min()) == pytest.approx(float(taps[0]))
    # circular: the right edge would see taps >= 1e-4; OpenCV's DFT leaves rounding (1e-16)
    assert float(out[..., 4:].abs().max()) < 1e-9
    y = torch.rand(2, 1, 12, 15, dtype=torch.float64, generator=make_generator(0))
    expected = sum(w * y[..., np.minimum(np.arange(15) + i, 14)] for i, w in enumerate(taps))
    torch.testing.assert_close(noise_blur.line_motion_blur(y, 0.0, 6, 2), expected)


def test_line_motion_taps_are_bilinear_samples_along_the_angle() -> None:
    x = torch.rand(3, 3, 21, 34, dtype=torch.float64, generator=make_generator(0))
    angle = torch.tensor([-44.0, 13.3, 45.0]).double()  # the float32 angles the params hold
    out = noise_blur.line_motion_blur(x, angle, 6, 2)
    rad = torch.deg2rad(angle)
    ys = (torch.arange(21, dtype=torch.float64) * 2 + 1) / 21 - 1
    xs = (torch.arange(34, dtype=torch.float64) * 2 + 1) / 34 - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(3, 21, 34, 2)
    step = torch.stack((rad.cos() * 2 / 34, rad.sin() * 2 / 21), dim=1).view(3, 1, 1, 2)
    expected = sum(
        w * torch.nn.functional.grid_sample(x, base + step * i, padding_mode="border",
                                            align_corners=False)
        for i, w in enumerate(_kernels.motion_taps(6, 2))
    )
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_line_motion_angle_is_drawn_per_image() -> None:
    x = natural(1, 32)
    out, params = degradations.apply(x, "line_motion_blur", generator=make_generator(0),
                                     return_params=True)
    angle = params["angle"]
    assert float(angle.abs().max()) <= 45 and len(set(angle.tolist())) == len(x)
    again = noise_blur.line_motion_blur(
        x, angle, **degradations.severity_params("line_motion_blur", 3))
    torch.testing.assert_close(again, out)


# ---------------------------------------------------------------------------------- digital


def test_pixelate_is_blockwise_constant() -> None:
    x = torch.rand(2, 3, 40, 40, generator=make_generator(0))
    out = digital.pixelate(x, 0.0, 0.0, 0.5)
    blocks = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(out, blocks.repeat_interleave(2, -1).repeat_interleave(2, -2))
    shifted, params = degradations.apply(x, "pixelate", generator=make_generator(1),
                                         return_params=True)
    small = digital.reduced_size(40, _anchors.at_side(digital.Pixelate().factor, 40))
    for image in shifted:  # runs of equal rows and columns: at most one per block
        rows = 1 + int((image[:, 1:] != image[:, :-1]).any(0).any(-1).sum())
        cols = 1 + int((image[..., 1:] != image[..., :-1]).any(0).any(0).sum())
        assert rows <= small + 1 and cols <= small + 1
    assert float(params["phase_y"].min()) >= 0 and float(params["phase_x"].max()) < 1


def test_jpeg_is_opencv_and_near_identity_at_quality_100() -> None:
    gray = natural(1, 32)
    assert float((digital.jpeg(gray, 100) - gray).abs().max()) <= 3 / 255
    rgb = natural(3, 32, batch=2)
    out = digital.jpeg(rgb, 70)
    for i in range(2):  # the same bytes as OpenCV on the BGR image
        bgr = (rgb[i].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
        _, buffer = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, 70])
        expected = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)[:, :, ::-1] / 255
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), expected, atol=1e-7)
    errors = [mse(digital.jpeg(rgb, quality), rgb) for quality in (100, 70, 10)]
    assert errors[0] < errors[1] < errors[2]  # (4:2:0 chroma keeps quality 100 from identity)
    assert torch.equal((out * 255).round() / 255, out)


def test_contrast_scales_the_standard_deviation_by_the_factor() -> None:
    x = natural(3, 32, batch=4).double()
    out = digital.contrast(x, 0.3)
    torch.testing.assert_close(out.std(dim=(-2, -1)), 0.3 * x.std(dim=(-2, -1)))
    torch.testing.assert_close(out.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)))


def _hsv_oracle(x: torch.Tensor, shift: float = 0.0, scale: float = 1.0,
                offset: float = 0.0) -> torch.Tensor:
    """OpenCV's float HSV round trip with V + shift and S scale + offset, clipped."""
    out = []
    for image in x.permute(0, 2, 3, 1).numpy().astype(np.float32):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 1] = np.clip(hsv[..., 1] * scale + offset, 0, 1)
        hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
        out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def test_brightness_raises_hsv_value() -> None:
    rgb = torch.rand(3, 3, 16, 16, generator=make_generator(0))
    rgb[0, :, :4, :4] = 0.0  # black pixels become gray
    out = digital.brightness(rgb, 0.3)
    torch.testing.assert_close(out, _hsv_oracle(rgb, shift=0.3), atol=2e-5, rtol=0)
    gray = natural(1, 32)
    torch.testing.assert_close(digital.brightness(gray, 0.2), (gray + 0.2).clamp(0, 1))
    for x in (gray, natural(3, 32)):
        assert float(degradations.apply(x, "brightness", 1).mean()) > float(x.mean())


def test_saturate_scales_hsv_saturation_and_leaves_gray_alone() -> None:
    rgb = torch.rand(3, 3, 16, 16, generator=make_generator(0))
    rgb[0, :, :4, :4] = 0.6  # gray pixels get hue 0 (red), as in skimage and OpenCV
    for scale, offset in ((0.1, 0.0), (5.0, 0.1)):
        torch.testing.assert_close(digital.saturate(rgb, scale, offset),
                                   _hsv_oracle(rgb, scale=scale, offset=offset),
                                   atol=2e-5, rtol=0)
    gray = natural(1, 32)
    for severity in degradations.SEVERITY_LEVELS:
        assert torch.equal(degradations.apply(gray, "saturate", severity), gray)


# -------------------------------------------------------------------- functions = modules


@pytest.mark.parametrize("name", NAMES)
def test_module_equals_its_public_function(name: str) -> None:
    x = natural(3, 32, batch=3)
    module = degradations.build_module(name, 4)
    function = getattr(noise_blur, name, None) or getattr(digital, name)
    generator = make_generator(2)
    params = module.sample_params(len(x), generator, size=tuple(x.shape[-2:]))
    accepted = set(inspect.signature(function).parameters)
    # the function takes every parameter of the module except how the module draws
    assert set(module.param_names()) - accepted <= {"max_angle"}
    kwargs = {n: getattr(module, n) for n in module.param_names() if n in accepted}
    if module.words_per_image(x[0].numel()):
        kwargs["generator"] = generator
    got = function(x, **params, **kwargs)
    assert torch.equal(got, module(x, make_generator(2)))
