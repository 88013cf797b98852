"""robustret.core.quality PSNR / SSIM against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from robustret.core.quality import psnr, ssim


def _reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Wang et al. 2004 written out: 11x11 Gaussian (sigma 1.5) window, valid positions only."""
    r = np.arange(11) - 5
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)

    def f(a: np.ndarray) -> np.ndarray:  # weighted local mean, cropped to the valid region
        return correlate(a, g, mode="constant")[5:-5, 5:-5]

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(m.mean())


def test_psnr_hand_computed() -> None:
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, 0, 0, 0] = 0.4  # MSE 0.16 / 16 = 0.01 -> 20 dB
    assert torch.allclose(psnr(y, x), torch.tensor([20.0, 20.0]), atol=1e-4)
    assert psnr(y * 255, x * 255, data_range=255.0)[0] == pytest.approx(20.0, abs=1e-3)
    assert math.isinf(float(psnr(x, x)[0]))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_numpy_reference(channels: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, channels, 24, 29, generator=g)
    y = (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    got = ssim(y, x)
    for b in range(3):
        ref = np.mean([_reference_ssim(y[b, c].numpy(), x[b, c].numpy()) for c in range(channels)])
        assert float(got[b]) == pytest.approx(ref, abs=1e-5)


def test_ssim_identity_and_symmetry() -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-6)
    assert bool((ssim(x, y) < 0.5).all())


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match=">= 11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
