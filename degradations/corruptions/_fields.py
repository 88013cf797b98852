"""Random fields and filters shared by the weather and geometric corruptions.

Size rule. Every spatial parameter of these families is given in pixels of a 64 px image
(Tiny-ImageNet-C's size, :data:`REFERENCE_SIDE`) and multiplied at run time by
``f = min(H, W) / 64`` (:func:`size_factor`). A random field is never drawn on a grid finer
than the pixels: its pitch is ``max(1, f)`` pixels (:func:`field_pitch`), which at 32 px is
what CIFAR-10-C does (it reuses Tiny-ImageNet-C's per-pixel values).

Randomness. Each image reads one 64-bit word (:data:`FIELD_WORDS`) from the house's per-image
word stream (``words_per_image``, see :mod:`degradations._base`) and seeds its own SFC64
stream with it (:func:`image_words`), from which its fields of any shape are drawn. So image
i depends on its own word only: chunking, batch size and ``forward_indexed`` change nothing.
Words become values on the CPU in float32, then move to the data's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from robustret.core.rng import check_generator

from .._base import WordSource, check_batch, check_range_mode, run_chunked
from ..noise import normals_from_words
from ._opencv import SCIPY_BORDERS, filter_planes, opencv_ready, sep_filter

#: pixels per side of the image the spatial parameters are given for (Tiny-ImageNet-C)
REFERENCE_SIDE = 64
#: 64-bit words each image reads from the house's stream: the seed of its own field stream
FIELD_WORDS = 1
#: ITU-R BT.601 luma weights (OpenCV's RGB2GRAY), for the gray path of colour steps
LUMA = (0.299, 0.587, 0.114)
PAD_MODES = ("reflect", "mirror", "nearest")


def check_number(
    name: str, value: object, low: float = -math.inf, high: float = math.inf, *,
    positive: bool = False,
) -> float:
    """``value`` as a float, finite and in ``[low, high]`` (``(low, high]`` if ``positive``).

    Raises:
        ValueError: not a real number, not finite or out of range; the message says which.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    number = float(value)
    bound = ("(" if positive else "[") + f"{low}, {high}]"
    if not math.isfinite(number) or number < low or number > high or (positive and number == low):
        raise ValueError(f"{name} must be finite and in {bound}; got {value!r}")
    return number


def per_image(value: float | Tensor, batch: int, name: str) -> Tensor:
    """A scalar or (B,) parameter as a (B,) float64 CPU tensor.

    Raises:
        ValueError: a tensor of another length than ``batch``, or a non-finite value.
    """
    values = torch.as_tensor(value, dtype=torch.float64).detach().cpu().reshape(-1)
    if values.numel() == 1:
        values = values.expand(batch)
    if values.numel() != batch:
        raise ValueError(f"{name} must be a number or a ({batch},) tensor; got "
                         f"{values.numel()} values for {batch} images")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} must be finite; got {values.tolist()}")
    return values.clone()


def size_factor(height: int, width: int) -> float:
    """``min(H, W) / 64``: how much larger than Tiny-ImageNet-C's images these are."""
    return min(height, width) / REFERENCE_SIDE


def field_pitch(height: int, width: int) -> float:
    """Pixels per cell of a random field: ``max(1, min(H, W) / 64)``."""
    return max(1.0, size_factor(height, width))


def run_field_corruption(
    images: Tensor, core: Callable[..., Tensor], params: dict[str, Tensor],
    generator: torch.Generator | None, range_mode: str,
) -> Tensor:
    """The body of each public function: check, then run ``core`` chunk by chunk.

    Draws like :meth:`degradations.Degradation.apply_params` with :data:`FIELD_WORDS` words
    per image, so a function given a module's drawn parameters and generator gives its bytes.
    """
    check_batch(images)
    check_generator(generator)
    check_range_mode(range_mode)
    k = FIELD_WORDS if images.shape[0] else 0
    source = WordSource.from_generator(generator) if k else None
    return run_chunked(images, core, params, k, source, range_mode)


# ----------------------------------------------------------------------------- random fields


def image_words(words: np.ndarray, count: int) -> np.ndarray:
    """(N, count) uint64: ``count`` words of each image's own SFC64 stream.

    Args:
        words: (N, k) uint64, k >= 1; row i's first word seeds image i's stream.
        count: words wanted per image.
    """
    out = np.empty((words.shape[0], count), dtype=np.uint64)
    for row, seed in enumerate(words[:, 0].tolist()):
        out[row] = np.random.SFC64(seed).random_raw(count)
    return out


def uniform_field(words: np.ndarray, shape: Sequence[int], device: torch.device) -> Tensor:
    """(N, *shape) float32 uniform on [-1, 1) in steps of 2^-23, one stream per image."""
    count = math.prod(shape)
    raw = image_words(words, (count + 1) // 2).view(np.uint32)[:, :count]  # (N, count)
    values = (raw >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-23) - np.float32(1)
    return torch.from_numpy(values).reshape(words.shape[0], *shape).to(device)


def normal_field(
    words: np.ndarray, shape: Sequence[int], mean: float, std: float, device: torch.device,
) -> Tensor:
    """(N, *shape) float32 normal N(mean, std^2) (Box-Muller), one stream per image."""
    count = math.prod(shape)
    raw = image_words(words, (count + 1) // 2)
    values = normals_from_words(raw, count).reshape(words.shape[0], *shape)
    return values.to(device).mul_(std).add_(mean)


def plasma_fractal(uniforms: Tensor, size: int, decay: float) -> Tensor:
    """Diamond-square height maps on a torus, normalised to [0, 1] per image.

    The corners start at 0; each halving of the step fills the square centres, then the
    diamond centres, with the mean of their four neighbours plus ``amplitude * u``; the
    amplitude starts at 1 and is divided by ``decay**2`` per step (ImageNet-C's
    ``wibble * U(-wibble, wibble)`` with ``wibble /= wibbledecay``; the final normalisation
    makes the starting amplitude irrelevant).

    Args:
        uniforms: (B, size**2 - 1) float in [-1, 1), consumed in order.
        size: map side, a power of two.
        decay: ``wibbledecay`` > 0; larger is smoother.

    Returns:
        (B, size, size) float in [0, 1].
    """
    batch = uniforms.shape[0]
    maps = uniforms.new_zeros(batch, size, size)
    step, amplitude, used = size, 1.0, 0

    def take(n: int) -> Tensor:
        nonlocal used
        values = uniforms[:, used : used + n * n].reshape(batch, n, n)
        used += n * n
        return values * amplitude

    while step >= 2:
        half, n = step // 2, size // step
        corners = maps[:, ::step, ::step]  # (B, n, n)
        square = corners + corners.roll(-1, 1)
        square = square + square.roll(-1, 2)
        maps[:, half::step, half::step] = square / 4 + take(n)
        centres = maps[:, half::step, half::step]
        rows = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        maps[:, ::step, half::step] = rows / 4 + take(n)
        cols = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        maps[:, half::step, ::step] = cols / 4 + take(n)
        step, amplitude = half, amplitude / decay**2
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return (maps - low) / torch.where(span > 0, span, torch.ones_like(span))


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *size), bilinear (half-pixel centres); no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------------- filters


def pad_index(n: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """Indices into a length-``n`` axis that pad it by ``before`` and ``after`` entries.

    ``mode``: ``"reflect"`` (scipy's: d c b a | a b c d), ``"mirror"`` (OpenCV's default
    REFLECT_101: d c b | a b c d) or ``"nearest"`` (a a a | a b c d); any pad width.
    """
    index = torch.arange(-before, n + after, device=device)
    if mode == "nearest" or n == 1:
        return index.clamp(0, n - 1)
    period = 2 * n if mode == "reflect" else 2 * n - 2
    index = index.remainder(period)
    return torch.where(index >= n, period - 1 - index if mode == "reflect" else period - index,
                       index)


def correlate_axis(x: Tensor, taps: Sequence[float], dim: int, mode: str, origin: int) -> Tensor:
    """Correlate one axis with ``taps``: out[i] = sum_j taps[j] * x[i + j - origin].

    A weighted sum of shifted slices, so each output value is computed the same way whatever
    the batch (batched results equal single-image ones bit for bit).
    """
    n = x.shape[dim]
    index = pad_index(n, origin, len(taps) - 1 - origin, mode, x.device)
    padded = x.index_select(dim, index)
    out = padded.narrow(dim, 0, n) * taps[0]
    for j in range(1, len(taps)):
        if taps[j] != 0:
            out.add_(padded.narrow(dim, j, n), alpha=taps[j])
    return out


def gaussian_taps(sigma: float, truncate: float) -> list[float]:
    """Normalised Gaussian taps of radius ``int(truncate * sigma + 0.5)`` (scipy's rule)."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).tolist()


def gaussian_smooth(x: Tensor, sigma: float, *, truncate: float = 4.0,
                    mode: str = "reflect") -> Tensor:
    """Separable Gaussian blur of the last two axes (``sigma`` in pixels; 0: a copy), border
    ``mode`` as :func:`pad_index`. A (B, C, H, W) CPU float batch goes through
    ``cv2.sepFilter2D`` per plane (:func:`._opencv.sep_filter`) where the image is wider than
    the kernel's reach, equal to :func:`correlate_axis` within float rounding."""
    if sigma <= 0:
        return x.clone()
    taps = gaussian_taps(sigma, truncate)
    radius = len(taps) // 2
    if x.ndim == 4 and opencv_ready(x, radius):
        return sep_filter(x, np.asarray(taps), mode, SCIPY_BORDERS)
    return correlate_axis(correlate_axis(x, taps, -2, mode, radius), taps, -1, mode, radius)


def box3(x: Tensor) -> Tensor:
    """3x3 mean of the last two axes with mirrored borders (``cv2.blur(x, (3, 3))``); a
    (B, C, H, W) CPU float batch by ``cv2.sepFilter2D`` per plane, within float rounding."""
    third = [1 / 3] * 3
    if x.ndim == 4 and opencv_ready(x, 1):
        return sep_filter(x, np.asarray(third), "mirror", SCIPY_BORDERS)
    return correlate_axis(correlate_axis(x, third, -2, "mirror", 1), third, -1, "mirror", 1)


def correlate3x3(x: Tensor, kernel: Sequence[Sequence[float]]) -> Tensor:
    """``cv2.filter2D`` with a 3x3 kernel (a correlation), mirrored borders, last two axes;
    a (B, C, H, W) CPU float batch by ``cv2.filter2D`` itself per plane, within float
    rounding of the shifted slices."""
    if x.ndim == 4 and opencv_ready(x, 1):
        return filter_planes(x, np.asarray(kernel, dtype=np.float64)[None], "reflect")
    h, w = x.shape[-2:]
    rows = pad_index(h, 1, 1, "mirror", x.device)
    cols = pad_index(w, 1, 1, "mirror", x.device)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    out = torch.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if kernel[i][j] != 0:
                out.add_(padded[..., i : i + h, j : j + w], alpha=kernel[i][j])
    return out


def streak_taps(radius: float, sigma: float) -> list[float]:
    """ImageMagick's motion-blur weights: exp(-i^2 / (2 sigma^2)), i = 0 .. 2 radius, summed
    to 1 (a one-sided half Gaussian; ``sigma`` 0 or ``radius`` < 0.5: no blur)."""
    width = 2 * int(round(radius)) + 1
    if sigma <= 0 or width == 1:
        return [1.0]
    offsets = np.arange(width, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).tolist()


def luma(x: Tensor) -> Tensor:
    """(B, 1, H, W) gray version of a (B, C, H, W) batch: the image itself when C = 1."""
    if x.shape[1] == 1:
        return x
    r, g, b = LUMA
    return (x[:, 0:1] * r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)


def channel_color(rgb: Sequence[float], channels: int, like: Tensor) -> Tensor:
    """(1, C, 1, 1) colour: ``rgb`` for C = 3, its luma for C = 1."""
    values = list(rgb) if channels == 3 else [sum(w * v for w, v in zip(LUMA, rgb))]
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, channels, 1, 1)
