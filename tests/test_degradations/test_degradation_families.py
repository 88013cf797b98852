"""Per-family oracles: noise statistics, Haar vs PyWavelets, motion blur physics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pywt
import torch

import degradations
from degradations.motion_blur import motion_blur_transfer
from robustret.core.rng import make_generator


def const(value: float = 0.5, batch: int = 8, size: int = 32) -> torch.Tensor:
    return torch.full((batch, 1, size, size), value)


def test_gaussian_residual_std_matches_sigma() -> None:
    x = const()
    for sigma in (0.05, 0.1):
        r = degradations.gaussian_noise(x, sigma, generator=make_generator(0)) - x
        assert abs(float(r.std()) - sigma) < 0.05 * sigma
        assert abs(float(r.mean())) < 0.1 * sigma


@pytest.mark.parametrize("shape", [(3, 1, 8, 6), (2, 3, 5, 5)])  # in-place path; odd pixel count
def test_gaussian_core_equals_normals_from_words(shape: tuple[int, ...]) -> None:
    from degradations.noise import gaussian_core, normal_words, normals_from_words

    x = torch.rand(*shape, generator=make_generator(3))
    pixels = x[0].numel()
    words = np.random.SFC64(7).random_raw(shape[0] * normal_words(pixels)).reshape(shape[0], -1)
    expected = x + 0.2 * normals_from_words(words.copy(), pixels).reshape(x.shape)
    out = gaussian_core(x, words, torch.empty_like(x), 0.2)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    per_image = gaussian_core(x, np.random.SFC64(7).random_raw(words.size).reshape(words.shape),
                              torch.empty_like(x), torch.full((shape[0],), 0.2))
    torch.testing.assert_close(per_image, expected, rtol=0, atol=1e-6)


def test_salt_pepper_fraction_split_evenly() -> None:
    x = const(batch=16)
    out = degradations.salt_pepper_noise(x, 0.1, generator=make_generator(0))
    salt, pepper = float((out == 1).float().mean()), float((out == 0).float().mean())
    assert abs(salt + pepper - 0.1) < 0.01
    assert abs(salt - pepper) < 0.01
    assert torch.all((out == 0) | (out == 1) | (out == 0.5))


def test_salt_pepper_replaced_set_grows_with_p() -> None:
    x = const()
    low = degradations.salt_pepper_noise(x, 0.05, generator=make_generator(0)) != 0.5
    high = degradations.salt_pepper_noise(x, 0.2, generator=make_generator(0)) != 0.5
    assert bool((high | ~low).all())


def test_speckle_residual_proportional_to_intensity() -> None:
    stds = []
    for value in (0.2, 0.8):
        x = const(value)
        r = degradations.speckle_noise(x, 0.1, generator=make_generator(0)) - x
        stds.append(float(r.std()))
        assert float(r.abs().max()) <= 0.1 * value + 1e-6
    uniform_std = 0.1 / math.sqrt(3)
    assert abs(stds[0] - 0.2 * uniform_std) < 0.05 * 0.2 * uniform_std
    assert abs(stds[1] / stds[0] - 4.0) < 0.2


def test_noise_mixture_uses_each_kind() -> None:
    x = const(batch=30)
    out, params = degradations.apply(x, "noise", generator=make_generator(0), return_params=True)
    kinds = params["kind"]
    assert set(kinds.tolist()) == {0, 1, 2}
    for i, kind in enumerate(kinds.tolist()):
        values = out[i].unique()
        if kind == 1:
            assert set(values.tolist()) <= {0.0, 0.5, 1.0}
        elif kind == 2:
            assert float((out[i] - 0.5).abs().max()) <= 0.05 + 1e-6
        else:
            assert float((out[i] - 0.5).abs().max()) > 0.1


def test_one_haar_level_is_block_mean_and_matches_pywt() -> None:
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64, generator=make_generator(0))
    small = degradations.block_mean(x, 1)
    torch.testing.assert_close(small, torch.nn.functional.avg_pool2d(x, 2))
    for i in range(3):
        ll = pywt.dwt2(x[i, 0].numpy(), "haar")[0]
        np.testing.assert_allclose(small[i, 0].numpy(), ll / 2, atol=1e-12)
    two = pywt.dwt2(pywt.dwt2(x[0, 0].numpy(), "haar")[0], "haar")[0]
    np.testing.assert_allclose(degradations.block_mean(x, 2)[0, 0].numpy(), two / 4, atol=1e-12)


def test_lowres_nearest_upsampling_repeats_blocks() -> None:
    x = torch.rand(2, 1, 16, 16, generator=make_generator(0))
    out = degradations.apply(x, "lowres", levels=2)
    small = torch.nn.functional.avg_pool2d(x, 4)
    expected = small.repeat_interleave(4, -1).repeat_interleave(4, -2)
    torch.testing.assert_close(out, expected)


def test_lowres_fast_path_equals_the_per_level_path_exactly() -> None:
    # mixed per-image levels 1..3 and RGB: one-copy fast path vs reduce-and-upsample per level
    from degradations.resolution import haar_lowres_fixed, lowres_core

    x = torch.rand(6, 3, 16, 24, generator=make_generator(0))
    level = torch.tensor([1, 3, 2, 1, 3, 2])
    out = lowres_core(x, None, torch.empty_like(x), level)
    for i, value in enumerate(level.tolist()):
        assert torch.equal(out[i : i + 1], haar_lowres_fixed(x[i : i + 1], value))


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_lowres_needs_no_clipping_even_at_the_range_ends(severity: int) -> None:
    # "clip" skips its clamp for nearest/area lowres (block means stay in range): check the claim
    # on values at and next to 0 and 1, where rounding of the sums would show first
    g = make_generator(0)
    ends = torch.tensor([0.0, 1.0, 1.0 - 2.0**-24, 2.0**-24, 1.0 - 2.0**-23])
    x = ends[torch.randint(0, len(ends), (8, 3, 32, 32), generator=g)]
    for upsample in ("nearest", "area"):
        out = degradations.apply(x, "lowres", severity, generator=make_generator(1),
                                 upsample=upsample)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    ones = degradations.apply(torch.ones(2, 1, 16, 16), "lowres", severity,
                              generator=make_generator(1))
    assert torch.equal(ones, torch.ones_like(ones))


def test_lowres_levels_distribution_and_padding() -> None:
    x = torch.rand(400, 1, 8, 8, generator=make_generator(0))
    _, params = degradations.apply(x, "lowres", generator=make_generator(1), return_params=True)
    share = float((params["level"] == 2).float().mean())
    assert set(params["level"].tolist()) == {1, 2} and abs(share - 0.5) < 0.08
    odd = torch.rand(1, 1, 9, 7, generator=make_generator(0))
    out = degradations.apply(odd, "lowres", levels=1)
    assert out.shape == odd.shape
    torch.testing.assert_close(out[0, 0, 8, 6], odd[0, 0, 8, 6])  # corner block = its own pixel


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "bicubic", "area"])
def test_lowres_upsample_modes(upsample: str, images: torch.Tensor) -> None:
    out = degradations.apply(images, "lowres", levels=1, upsample=upsample)
    assert out.shape == images.shape
    assert abs(float(out.mean() - images.mean())) < 0.02


def test_motion_blur_zero_length_is_identity(images: torch.Tensor, device: torch.device) -> None:
    x = images.to(device)
    torch.testing.assert_close(degradations.motion_blur(x, 0.0, 0.0), x, atol=1e-5, rtol=0)
    out = degradations.apply(x, "motion_blur", length=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_motion_blur_keeps_constant_image_and_mean(images: torch.Tensor) -> None:
    x = const(0.4, batch=2)
    out = degradations.apply(x, "motion_blur", 5, generator=make_generator(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    out = degradations.motion_blur(images, 0.1, -0.05, range_mode="clip")
    torch.testing.assert_close(out.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=2e-3, rtol=0)
    assert motion_blur_transfer(8, 8, torch.tensor([0.3]), torch.tensor([0.2]))[0, 0, 0, 0] == 1


def test_motion_blur_removes_high_frequencies() -> None:
    x = torch.rand(2, 1, 32, 32, generator=make_generator(0)) * 0.5 + 0.25
    out = degradations.apply(x, "motion_blur", length=6, angle=20)

    def high(z: torch.Tensor) -> float:
        spec = torch.fft.fftshift(torch.fft.fft2(z - z.mean()), dim=(-2, -1)).abs() ** 2
        spec[..., 8:24, 8:24] = 0
        return float(spec.sum())

    assert high(out) < 0.3 * high(x)


def test_horizontal_blur_of_impulse_smears_length_pixels() -> None:
    length, size = 8, 32
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[0, 0, 16, 8] = 1.0
    out = degradations.apply(x.float(), "motion_blur", length=length, angle=0, range_mode="clip")
    raw = torch.fft.irfft2(torch.fft.rfft2(x.float()) * motion_blur_transfer(
        size, size, torch.tensor([length / size]), torch.tensor([0.0])), s=(size, size))[0, 0]
    row = raw[16]
    assert float(raw.sum() - row.sum()) == pytest.approx(0, abs=1e-5)  # nothing leaves the row
    cols = torch.arange(size, dtype=torch.float32)
    centroid = float((row * cols).sum() / row.sum())
    assert centroid == pytest.approx(8 + length / 2, abs=0.3)
    spread = float(((cols - centroid) ** 2 * row).sum() / row.sum()) ** 0.5
    assert spread == pytest.approx(length / math.sqrt(12), rel=0.25)
    assert float(row[8 : 8 + length + 1].sum()) > 0.9
    assert out.shape == x.shape


def test_vertical_blur_angle_90_moves_down() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 8, 16] = 1.0
    _, params = degradations.apply(x, "motion_blur", length=6, angle=90, return_params=True)
    assert float(params["a"][0]) == pytest.approx(0, abs=1e-7)
    assert float(params["b"][0]) == pytest.approx(6 / 32)


def test_rfft_equals_fft_method() -> None:
    x = torch.rand(3, 3, 18, 21, generator=make_generator(0))
    a, b = torch.tensor([0.1, -0.2, 0.05]), torch.tensor([0.03, 0.1, -0.15])
    torch.testing.assert_close(degradations.motion_blur(x, a, b, method="rfft"),
                               degradations.motion_blur(x, a, b, method="fft"), atol=1e-5, rtol=0)


def test_fft_method_matches_reference_formula_without_dc_zeroing() -> None:
    x = np.random.default_rng(0).random((16, 16))
    a, b = 0.07, -0.04
    f = np.fft.fftshift(np.fft.fft2(x))
    u, v = np.meshgrid(np.arange(-8, 8), np.arange(-8, 8))
    p = u * a + v * b
    h = np.sinc(p) * np.exp(-1j * np.pi * p)
    ref = np.real(np.fft.ifft2(np.fft.ifftshift(f * h)))
    ours = degradations.motion_blur(torch.from_numpy(x)[None, None].float(), a, b, method="fft",
                                    range_mode="clip")[0, 0].double().numpy()
    np.testing.assert_allclose(ours, np.clip(ref, 0, 1), atol=1e-5)


def test_demo_writes_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from degradations import demo

    out = tmp_path / "grid.png"
    assert demo.main(["--out", str(out), "--size", "32"]) == 0
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(("h", "w"), [(8, 8), (7, 10), (6, 9), (5, 5)])
def test_half_transfer_is_the_hermitian_part_of_the_full_one(h: int, w: int) -> None:
    a, b, t = torch.tensor([0.13, -0.4]), torch.tensor([0.07, 0.21]), torch.tensor([1.0, 0.8])
    full = motion_blur_transfer(h, w, a, b, t, half=False)  # (2, 1, h, w)
    mirrored = torch.roll(full.flip(-2, -1), shifts=(1, 1), dims=(-2, -1))  # H(-k)
    hermitian = (full + mirrored.conj()) / 2
    half = motion_blur_transfer(h, w, a, b, t)
    torch.testing.assert_close(half, hermitian[..., : w // 2 + 1], atol=1e-6, rtol=0)
    floats = motion_blur_transfer(h, w, 0.13, 0.07, 1.0, half=False)  # floats: one image
    assert floats.shape == (1, 1, h, w)
    torch.testing.assert_close(floats[0], full[0])
