"""Shared pieces of the corruption families: filters, resampling, and the chunk functions of
the zoom, glass and line-motion blurs (their size calibration is :mod:`._anchors`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ._opencv import (
    filter_planes,
    opencv_ready,
    sep_filter,
    shifted_sum,
    warp_ready,
    zoom_sum,
)

# ---------------------------------------------------------------------------------- filters


def pad2d(x: Tensor, pad_h: int, pad_w: int, mode: str) -> Tensor:
    """Pad the last two dims; ``"reflect"`` falls back to ``"replicate"`` where a side is
    too short to reflect (pad >= size)."""
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "reflect" and (pad_h >= x.shape[-2] or pad_w >= x.shape[-1]):
        mode = "replicate"
    return F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode=mode)


def gaussian_taps(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian of std ``sigma`` on ``-r..r``, ``r = int(truncate sigma + 0.5)``
    (scipy.ndimage's support; ``sigma = 0`` gives the identity ``[1.0]``)."""
    radius = int(truncate * sigma + 0.5)
    if radius == 0:
        return np.ones(1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def separable_filter(x: Tensor, taps: np.ndarray, mode: str = "replicate") -> Tensor:
    """Filter every channel with ``taps`` along H and along W.

    Args:
        x: (B, C, H, W) float.
        taps: odd-length 1-D kernel (applied as correlation; ours are symmetric).
        mode: border, ``"replicate"`` (scipy's ``nearest``) or ``"reflect"``.

    Returns:
        (B, C, H, W), a new tensor.
    """
    if len(taps) == 1:
        return x * float(taps[0])
    b, c, h, w = x.shape
    r = len(taps) // 2
    if opencv_ready(x, r):  # CPU: OpenCV per plane (module _opencv)
        return sep_filter(x, taps, mode)
    k = torch.as_tensor(taps, dtype=x.dtype, device=x.device)
    flat = x.reshape(b * c, 1, h, w)
    flat = F.conv2d(pad2d(flat, 0, r, mode), k.view(1, 1, 1, -1))
    flat = F.conv2d(pad2d(flat, r, 0, mode), k.view(1, 1, -1, 1))
    return flat.reshape(b, c, h, w)


def gaussian_filter(x: Tensor, sigma: float) -> Tensor:
    """skimage's ``gaussian(x, sigma)`` per channel: truncate 4, border ``nearest``."""
    return separable_filter(x, gaussian_taps(sigma), "replicate")


def disk_kernel(radius: float, alias_blur: float, supersample: int = 8) -> np.ndarray:
    """Defocus kernel: a disk of ``radius`` px, then a Gaussian of std ``alias_blur``.

    ImageNet-C takes the pixels with ``x^2 + y^2 <= radius^2`` (a jagged disk) and smooths it
    with a 3 x 3 Gaussian (5 x 5 beyond radius 8) to antialias. Here each pixel's weight is the
    share of its area inside the circle (``supersample^2`` points per pixel), so the kernel
    changes continuously with the radius (radius <= 1/2: the centre pixel alone), then the
    same small Gaussian (``alias_blur = 0``: none).

    Returns:
        (k, k) float64 array summing to 1, k = 2 (ceil(radius - 1/2) + 1 or 2) + 1.
    """
    g = 1 if radius <= 8 else 2
    reach = max(0, int(math.ceil(radius - 0.5)))
    half = reach + g
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5  # sub-pixel offsets
    pos = (np.arange(-half, half + 1)[:, None] + sub[None, :]).reshape(-1)  # (k * s,)
    inside = (pos[:, None] ** 2 + pos[None, :] ** 2 <= radius**2).astype(np.float64)
    k = 2 * half + 1
    disk = inside.reshape(k, supersample, k, supersample).mean(axis=(1, 3))
    disk[half, half] = max(disk[half, half], 1e-12)  # radius 0: the centre pixel
    disk /= disk.sum()
    if alias_blur <= 0:
        return disk
    taps = np.exp(-0.5 * (np.arange(-g, g + 1) / alias_blur) ** 2)
    taps /= taps.sum()
    rows = np.apply_along_axis(lambda v: np.convolve(v, taps, mode="same"), 0, disk)
    out = np.apply_along_axis(lambda v: np.convolve(v, taps, mode="same"), 1, rows)
    return out / out.sum()


def blend_kernels(kernels: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of odd square kernels of any sizes, centred (zero-padded to the largest)."""
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((size, size))
    for kernel, weight in zip(kernels, weights):
        m = (size - kernel.shape[0]) // 2
        out[m : size - m, m : size - m] += weight * kernel
    return out


def fft_convolve(x: Tensor, kernels: Tensor, mode: str) -> Tensor:
    """``x`` convolved linearly with its image's kernel: ``out(p) = sum_q K[q] x(p - q)``.

    One real FFT product per plane of the image padded by the kernel's half-width (border
    ``mode`` as :func:`pad2d`), so the kept part never wraps around.

    Args:
        x: (B, C, H, W) float.
        kernels: (B or 1, K, K) float on ``x``'s device, K odd, centre at ``[K // 2, K // 2]``.
        mode: the border, ``"replicate"`` or ``"reflect"``.

    Returns:
        (B, C, H, W), a new tensor.
    """
    h, w = x.shape[-2:]
    r = kernels.shape[-1] // 2
    padded = pad2d(x, r, r, mode)
    size = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernels, s=size).unsqueeze(1)
    return torch.fft.irfft2(spectrum, s=size)[..., 2 * r: 2 * r + h, 2 * r: 2 * r + w]


def filter2d(x: Tensor, kernel: np.ndarray, mode: str = "reflect") -> Tensor:
    """Correlate every channel with a square 2-D ``kernel`` (odd side); border ``mode`` as
    :func:`pad2d` (``"reflect"`` is OpenCV's default ``BORDER_REFLECT_101``).

    Computed by :func:`fft_convolve` with the kernel flipped; equal to ``conv2d`` within float
    rounding, faster on the CPU than ``conv2d`` and than ``cv2.filter2D`` per plane for the
    defocus kernels (docs/benchmarks.md, "Every degradation family").
    """
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])  # correlation as a convolution
    return fft_convolve(x, torch.as_tensor(flipped, dtype=x.dtype, device=x.device)[None], mode)


# ------------------------------------------------------------------------------- resampling


def zoom_indices(n: int, zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of a centre zoom by ``zoom`` >= 1 along an axis of ``n`` pixels.

    Output pixel i (centre ``i + 1/2``) samples the input at ``n/2 + (i + 1/2 - n/2) / zoom``.

    Returns:
        ``(i0, i1, w)``: output i is ``(1 - w[i]) in[i0[i]] + w[i] in[i1[i]]``.
    """
    u = (np.arange(n) + 0.5 - n / 2) / zoom + n / 2 - 0.5
    u = np.clip(u, 0, n - 1)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, u - i0


def block_average(n_out: int, n_in: int, phase: Tensor) -> tuple[Tensor, Tensor]:
    """Box downsampling of an axis of ``n_in`` pixels to blocks of ``n_in / n_out`` pixels
    whose grid starts ``phase`` blocks before the image, and the way back.

    Block j covers ``[(j - phase) s, (j + 1 - phase) s)``, s = n_in / n_out, j = 0 .. n_out
    (one more block, for the shifted grid); its value is the mean over its part inside the
    image, fractional pixels weighted by their share (PIL's ``BOX`` filter, at ``phase`` 0).
    Output pixel i copies block ``floor((i + 1/2) / s + phase)``, the block holding its centre.

    Args:
        n_out: blocks across the image (without the extra one), 1 .. n_in.
        n_in: pixels.
        phase: (B,) float in [0, 1), per image, on the data's device and dtype.

    Returns:
        ``(weights, index)``: (B, n_out + 1, n_in) averaging weights and (B, n_in) int64 block
        of each output pixel.
    """
    scale = n_in / n_out
    cells = torch.arange(n_out + 2, device=phase.device, dtype=phase.dtype)
    edges = (cells[None, :] - phase[:, None]) * scale  # (B, n_out + 2)
    start, stop = edges[:, :-1, None], edges[:, 1:, None]  # (B, n_out + 1, 1)
    pix = torch.arange(n_in, device=phase.device, dtype=phase.dtype).view(1, 1, -1)
    overlap = (torch.minimum(stop, pix + 1) - torch.maximum(start, pix)).clamp_(min=0)
    total = overlap.sum(dim=2, keepdim=True)
    weights = overlap / torch.where(total > 0, total, torch.ones_like(total))
    centres = (torch.arange(n_in, device=phase.device, dtype=phase.dtype) + 0.5) / scale
    index = torch.floor(centres[None, :] + phase[:, None]).long().clamp_(0, n_out)
    return weights, index


def motion_taps(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's motion-blur weights: ``exp(-i^2 / (2 sigma^2))`` for
    ``i = 0 .. 2 ceil(radius)``, normalised to sum 1 (``sigma = 0`` gives ``[1.0]``)."""
    width = 2 * int(math.ceil(radius)) + 1
    if sigma <= 0:
        return np.ones(1)
    taps = np.exp(-0.5 * (np.arange(width) / sigma) ** 2)
    return taps / taps.sum()


# ------------------------------------------------------------------------------------ cores


def zoom_factors(max_zoom: float, step: float) -> np.ndarray:
    """ImageNet-C's ``np.arange(1, max_zoom + step / 2, step)``: 1, 1 + step, ... <= max_zoom."""
    count = int(math.floor((max_zoom - 1) / step + 1e-6)) + 1 if step > 0 else 1
    return 1 + step * np.arange(count)


def zoom_matrices(n: int, factors: np.ndarray) -> np.ndarray:
    """(Z, n, n) linear-interpolation matrices of the centre zooms (:func:`zoom_indices`)."""
    mats = np.zeros((len(factors), n, n))
    rows = np.arange(n)
    for k, zoom in enumerate(factors):
        i0, i1, w = zoom_indices(n, float(zoom))
        np.add.at(mats[k], (rows, i0), 1 - w)
        np.add.at(mats[k], (rows, i1), w)
    return mats


def zoom_core(x: Tensor, out: Tensor, max_zoom: float, step: float) -> Tensor:
    """out = (x + sum of centre zooms of x by each of :func:`zoom_factors`) / (count + 1).

    CPU float32: each zoom by ``cv2.warpAffine`` per image (:func:`._opencv.zoom_sum`, the same
    samples within float rounding). Elsewhere each zoom is ``A_y x A_x^T`` with the
    interpolation matrices of :func:`zoom_matrices`, all zooms in two batched matrix products.
    """
    b, c, h, w = x.shape
    factors = zoom_factors(max_zoom, step)
    if warp_ready(x):
        return zoom_sum(x, out, factors)
    along_y = torch.as_tensor(zoom_matrices(h, factors), dtype=x.dtype, device=x.device)
    along_x = torch.as_tensor(zoom_matrices(w, factors), dtype=x.dtype, device=x.device)
    rows = (along_y.reshape(-1, h) @ x).view(b, c, len(factors), h, w)  # (B, C, Z, H, W)
    zooms = rows @ along_x.transpose(1, 2)  # (B, C, Z, H, W)
    torch.sum(zooms, dim=2, out=out)
    return out.add_(x).div_(len(factors) + 1)


def glass_words(pixels: int, iterations: float) -> int:
    """64-bit words per image of ``pixels`` values: three 16-bit words per value and pass."""
    return int(math.ceil(iterations)) * ((3 * pixels + 3) // 4)


@lru_cache(maxsize=32)
def _glass_tables(delta: float, fraction: float) -> tuple[np.ndarray, int]:
    """(2^16,) int64 offset ``round((2u - 1) delta)`` of each 16-bit word k, u = (2k + 1) /
    2^17, by float32 steps on the CPU, and how many words (the lowest) have u below
    ``fraction``: the moving share of a fractional last pass."""
    u = (torch.arange(65536, dtype=torch.int32) * 2 + 1) / 131072.0  # (0, 1), float32
    return torch.round((u * 2 - 1) * delta).long().numpy(), int((u < fraction).sum())


def glass_core(
    x: Tensor, words: np.ndarray, out: Tensor, sigma: float, delta: float, iterations: float,
) -> Tensor:
    """Blur, ``ceil(iterations)`` passes of random local displacement, blur.

    In each pass every pixel (all channels together) takes the value of the pixel at offset
    ``(dy, dx)``, each ``round((2u - 1) delta)`` for u uniform in (0, 1) from a 16-bit word,
    indices clamped at the border. A fractional last pass (``iterations`` not whole) moves a
    pixel only where a third word's uniform is below the fraction, so the scrambling grows
    continuously with ``iterations``. ``words`` holds at least 3 H W 16-bit words per pass.
    """
    b, c, h, w = x.shape
    n = h * w
    passes = int(math.ceil(iterations))
    blurred = gaussian_filter(x, sigma).reshape(b, c, n)
    if passes:  # each word's offset from a table over the 2^16 words (the same float steps)
        bits = words.view(np.uint16)[:, : 3 * n * passes].reshape(b, passes, 3, n)
        table, moving = _glass_tables(float(delta), iterations - (passes - 1))
        shifts = np.take(table, bits[:, :, :2])  # (B, passes, 2, H W) int64
        shifts[:, -1] *= (bits[:, -1, 2] < moving)[:, None]  # the last pass's moving share
        offsets = torch.from_numpy(shifts).view(b, passes, 2, h, w).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    for it in range(passes):
        dy, dx = offsets[:, it, 0], offsets[:, it, 1]
        src = (rows + dy).clamp_(0, h - 1) * w + (cols + dx).clamp_(0, w - 1)  # (B, H, W)
        blurred = blurred.gather(2, src.view(b, 1, n).expand(b, c, n))
    return out.copy_(gaussian_filter(blurred.view(b, c, h, w), sigma))


def line_motion_kernels(angle: Tensor, taps: np.ndarray, reach: int) -> Tensor:
    """Per-image convolution kernels of the line blur: tap i (weight ``taps[i]``) samples the
    image at ``i (cos a, sin a)``, bilinearly, so it is spread over the four pixels around.

    Args:
        angle: (B,) degrees on the data's device and dtype.
        taps: the weights, summing to 1.
        reach: kernel half-width, >= len(taps).

    Returns:
        (B, 2 reach + 1, 2 reach + 1) convolution kernels (centre at ``[reach, reach]``):
        ``sum_q K[q] x(p - q)`` is the blurred image.
    """
    rad = angle * (math.pi / 180)
    i = torch.arange(len(taps), device=angle.device, dtype=angle.dtype)
    weight = torch.as_tensor(taps, device=angle.device, dtype=angle.dtype)
    # sampling x(p + c) is convolving with a unit kernel at q = -c
    return splat_kernels(-rad.cos()[:, None] * i, -rad.sin()[:, None] * i, weight, reach)


def splat_kernels(qx: Tensor, qy: Tensor, weight: Tensor, reach: int) -> Tensor:
    """Per-image kernels holding ``weight`` at sub-pixel positions, each spread bilinearly
    over the four pixels around it; positions beyond the grid land on its edge.

    Args:
        qx, qy: (B, T) positions relative to the kernel's centre, pixels (x right, y down).
        weight: (T,) or (B, T) mass of each position.
        reach: kernel half-width.

    Returns:
        (B, 2 reach + 1, 2 reach + 1) kernels, centre at ``[reach, reach]``.
    """
    b, side = qx.shape[0], 2 * reach + 1
    px, py = qx + reach, qy + reach
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0
    kernels = torch.zeros(b, side * side, device=qx.device, dtype=qx.dtype)
    for ay, wy in ((0, 1 - fy), (1, fy)):
        for ax, wx in ((0, 1 - fx), (1, fx)):
            index = (y0 + ay).clamp(0, side - 1) * side + (x0 + ax).clamp(0, side - 1)
            kernels.scatter_add_(1, index.long(), weight * wy * wx)
    return kernels.view(b, side, side)


def line_motion_core(x: Tensor, out: Tensor, angle: Tensor, radius: float,
                     sigma: float) -> Tensor:
    """out(p) = sum_i k_i x(p + i (cos a, sin a)), k = :func:`motion_taps` (radius, sigma).

    Each tap is a bilinear sample; beyond the border the edge pixels repeat (linear, not
    circular, convolution). CPU float32: each tap a ``cv2.warpAffine`` translation of the image
    (:func:`._opencv.shifted_sum`); other CPU dtypes: the splatted kernels (half-width
    ``reach`` = taps + 1) by ``cv2.filter2D``; other devices by :func:`fft_convolve`. The three
    agree within float rounding.
    ``angle`` (B,) in degrees, 0 = right, 90 = down.
    """
    taps = motion_taps(radius, sigma)
    if len(taps) == 1:
        return out.copy_(x)
    if warp_ready(x):  # CPU float32: one translation per tap and image (module _opencv)
        rad = angle.detach().to("cpu", torch.float64).numpy() * (math.pi / 180)
        steps = np.arange(len(taps), dtype=np.float64)
        shifts = np.stack((np.cos(rad)[:, None] * steps, np.sin(rad)[:, None] * steps), axis=-1)
        return shifted_sum(x, out, shifts, taps)
    reach = len(taps) + 1
    kernels = line_motion_kernels(angle.to(x.device, x.dtype), taps, reach)  # (B, k, k)
    if opencv_ready(x, reach):  # CPU: OpenCV correlates with the flipped kernel per plane
        return out.copy_(filter_planes(x, kernels.flip(-2, -1).numpy(), "replicate"))
    return out.copy_(fft_convolve(x, kernels, "replicate"))
