"""Classical baselines do what they claim."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import restoration
from restoration.classical import (
    DEFAULT_BLUR,
    median_filter,
    motion_blur_transfer,
    wiener_deconvolve,
)
from robustret.core.quality import psnr


def _smooth(seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(2, 1, 6, 6, generator=g), size=size, mode="bicubic",
                         align_corners=False).clamp(0.05, 0.95)


def test_median_removes_isolated_salt_and_pepper_exactly() -> None:
    x = torch.full((2, 1, 32, 32), 0.4)
    noisy = x.clone()
    noisy[0, 0, 5, 7] = 1.0
    noisy[0, 0, 20, 20] = 0.0
    noisy[1, 0, 0, 0] = 1.0  # corner: reflect border
    noisy[1, 0, 31, 15] = 0.0
    assert torch.equal(restoration.build("median")(noisy), x)


def test_median_matches_numpy_reference() -> None:
    x = torch.rand(1, 1, 9, 11, generator=torch.Generator().manual_seed(3))
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")[0, 0].numpy()
    ref = np.array([[np.median(padded[i:i + 3, j:j + 3]) for j in range(11)] for i in range(9)])
    assert torch.allclose(median_filter(x)[0, 0], torch.from_numpy(ref).float())


def test_wiener_with_true_blur_improves_psnr_and_inverts_noiseless_blur() -> None:
    clean = _smooth()
    h, w = clean.shape[-2:]
    a, b = torch.tensor([0.15, -0.1]), torch.tensor([0.05, 0.12])
    transfer = motion_blur_transfer(h, w, a, b)
    blurred = torch.fft.ifft2(torch.fft.fft2(clean) * transfer).real
    restored = restoration.build("wiener")(blurred.clamp(0, 1), {"a": a, "b": b})
    before, after = psnr(blurred, clean), psnr(restored, clean)
    assert bool((after > before + 3).all()), (before, after)
    # tiny k: almost an exact inverse where H has no zeros
    near_exact = wiener_deconvolve(blurred, transfer, k=1e-6)
    assert bool((psnr(near_exact, clean) > 35).all())


def test_wiener_length_angle_equals_a_b() -> None:
    x = _smooth(1)
    by_len = restoration.build("wiener", length=4.0, angle=90.0)(x)
    by_ab = restoration.build("wiener", a=0.0, b=4.0 / 32)(x)
    assert torch.allclose(by_len, by_ab, atol=1e-5)


def test_motion_blur_transfer_keeps_mean_and_shifts() -> None:
    tr = motion_blur_transfer(16, 16, 0.0, 0.0)
    assert torch.allclose(tr, torch.ones_like(tr))
    tr = motion_blur_transfer(16, 16, 0.25, 0.0)
    assert abs(complex(tr[0, 0, 0, 0]) - 1) < 1e-6


def test_bicubic_undoes_nearest_upscaling_of_smooth_image() -> None:
    clean = _smooth(size=64)
    low = F.avg_pool2d(clean, 2)
    nearest = F.interpolate(low, scale_factor=2, mode="nearest")
    restored = restoration.build("bicubic", factor=2)(nearest)
    assert bool((psnr(restored, clean) > psnr(nearest, clean)).all())
    per_image = restoration.build("bicubic", factor=4)(nearest, {"level": torch.tensor([1, 1])})
    assert torch.equal(per_image, restored)


def test_nlm_and_bilateral_reduce_gaussian_noise() -> None:
    clean = _smooth(2, 48)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    noisy = (clean + 0.1 * noise).clamp(0, 1)
    for name in ("nlm", "bilateral"):
        out = restoration.build(name)(noisy)
        assert bool((psnr(out, clean) > psnr(noisy, clean)).all()), name


def _blurred(clean: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h, w = clean.shape[-2:]
    blurred = torch.fft.ifft2(torch.fft.fft2(clean) * motion_blur_transfer(h, w, a, b)).real
    return blurred.clamp(0, 1)


def test_wiener_with_the_drawn_params_beats_the_assumed_blur() -> None:
    """The params contract: the true per-image a, b restore better than the default blur."""
    clean = _smooth(4)
    a, b = torch.tensor([-0.12, 0.02]), torch.tensor([0.1, -0.15])
    blurred = _blurred(clean, a, b)
    wiener = restoration.build("wiener")
    known = wiener(blurred, {"a": a, "b": b, "kind": torch.tensor([0, 1])})  # kind: ignored
    assumed = wiener(blurred)
    assert bool((psnr(known, clean) > psnr(assumed, clean) + 3).all())
    # without params the constructor's blur is deconvolved, for every image
    same = wiener(blurred, {"a": torch.full((2,), DEFAULT_BLUR["a"]),
                            "b": torch.full((2,), DEFAULT_BLUR["b"])})
    assert torch.allclose(assumed, same, atol=1e-6)


def test_wiener_needs_both_blur_params_and_checks_their_shape() -> None:
    x = _smooth(5)
    with pytest.raises(ValueError, match="both blur parameters a and b"):
        restoration.build("wiener")(x, {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"params\['a'\] must be \(2,\)"):
        restoration.build("wiener")(x, {"a": torch.zeros(3), "b": torch.zeros(3)})


def test_unused_params_are_ignored_by_every_restorer() -> None:
    x = _smooth(6)
    for name in ("median", "bilateral", "identity"):
        model = restoration.build(name)
        assert torch.equal(model(x, {"a": torch.ones(2), "level": torch.ones(2)}), model(x))
    assert restoration.build("bicubic").uses_params == ("level",)
    assert restoration.build("wiener").uses_params == ("a", "b")


def test_a_required_param_that_is_missing_says_what_to_pass() -> None:
    class NeedsLevel(restoration.Restorer):
        uses_params = ("level",)
        requires_params = ("level",)

        def restore_raw(self, images: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
            return images

    with restoration.RESTORERS.temporarily("needs_level", NeedsLevel):
        model = restoration.build("needs_level")
        x = _smooth(7)
        assert torch.equal(model(x, {"level": torch.ones(2)}), x)
        with pytest.raises(ValueError, match="needs_level needs the degradation parameter.*level"
                                             ".*return_params=True"):
            model(x, {"a": torch.ones(2)})
    assert "needs_level" not in restoration.available()


def test_restore_batches_slices_params_like_the_images() -> None:
    clean = F.interpolate(torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(8)),
                          size=32, mode="bicubic", align_corners=False).clamp(0, 1)
    a, b = torch.linspace(-0.1, 0.1, 5), torch.linspace(0.1, -0.05, 5)
    blurred = _blurred(clean, a, b)
    wiener = restoration.build("wiener")
    params = {"a": a, "b": b, "kind": torch.zeros(7)}  # kind: not used, so its length is free
    whole = wiener(blurred, {"a": a, "b": b})
    chunked = restoration.restore_batches(wiener, blurred, params, batch_size=2)
    assert torch.allclose(chunked, whole, atol=1e-6)
