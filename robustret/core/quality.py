"""Image quality metrics: PSNR and SSIM, batched, pure torch.

Both take two ``(B, C, H, W)`` batches and return one value per image ``(B,)``.
SSIM follows Wang et al. (2004): an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
statistics over the "valid" window positions only (no padding, as in the authors' reference
code and ``skimage`` with ``gaussian_weights=True``), computed per channel, then averaged over
channels and positions. Sample (not population) covariances are not used: the window weights
sum to one, as in the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_WINDOW = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _check_pair(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"x and y must be tensors; got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(
            f"x and y must be (B, C, H, W) of the same shape; got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )


def _working_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)`` in dB.

    Args:
        x: (B, C, H, W) float, e.g. restored images in [0, data_range].
        y: (B, C, H, W) float reference images, same shape.
        data_range: the span of the pixel values (1.0 for [0, 1] images).
    Returns:
        (B,) float32 (float64 for float64 input); ``inf`` where the images are identical.
    Raises:
        ValueError: shapes differ or are not 4-D, or ``data_range <= 0``.
    """
    _check_pair(x, y)
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    dtype = _working_dtype(x)
    mse = (x.to(dtype) - y.to(dtype)).square().flatten(1).mean(dim=1)  # (B,)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(
    size: int = _WINDOW,
    sigma: float = _SIGMA,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The normalised 1-D Gaussian ``(size,)`` whose outer product is the SSIM window."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity per image (Wang et al. 2004).

    Args:
        x: (B, C, H, W) float in [0, data_range].
        y: (B, C, H, W) float reference, same shape; H and W at least 11.
        data_range: the span of the pixel values (1.0 for [0, 1] images).
    Returns:
        (B,) mean SSIM over channels and valid window positions, in [-1, 1].
    Raises:
        ValueError: shapes differ, are not 4-D or smaller than the 11x11 window.
    """
    _check_pair(x, y)
    if min(x.shape[-2:]) < _WINDOW:
        raise ValueError(
            f"ssim needs H and W >= {_WINDOW} (the Gaussian window); got {tuple(x.shape[-2:])}"
        )
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    dtype = _working_dtype(x)
    b, c, h, w = x.shape
    x = x.to(dtype).reshape(b * c, 1, h, w)  # each channel on its own
    y = y.to(dtype).reshape(b * c, 1, h, w)
    g = gaussian_window(dtype=dtype, device=x.device)

    def blur(t: Tensor) -> Tensor:  # separable valid filtering: (N, 1, H, W) -> (N, 1, H-10, W-10)
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    )
    return ssim_map.reshape(b, -1).mean(dim=1)
