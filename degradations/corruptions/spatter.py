"""ImageNet-C's spatter (family ``weather``): water drops or mud on the lens, batched and seeded.

A public function (``spatter``), a chunk core and a registered
:class:`~degradations.Degradation` with its five levels, in the shape of
:mod:`degradations.corruptions.weather` (fog, snow): Tiny-ImageNet-C's levels (64 px), spatial
parameters in pixels of a 64 px image scaled with ``min(H, W) / 64`` at run time, every random
field from each image's own word (``words_per_image`` = 1), so image i depends only on its
generator (docs/degradations.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from robustret.core.checks import check_choice

from .._base import check_range_mode
from ..degradation import DEGRADATIONS, Degradation
from ._fields import (
    FIELD_WORDS,
    box3,
    channel_color,
    check_number,
    correlate3x3,
    field_pitch,
    gaussian_smooth,
    normal_field,
    pad_index,
    resize,
    run_field_corruption,
)
from ._opencv import dilation_distance

SPATTER_KEYS = ("mean", "std", "sigma", "threshold", "liquid", "intensity", "mud_sigma")
#: Tiny-ImageNet-C's spatter (its ``c[4]`` is ``intensity`` for water, ``mud_sigma`` for mud),
#: with the mud thresholds 0.01 lower (0.67, 0.66; ImageNet-C uses 0.65) so that mud at 4
#: damages more than water at 3 (Tiny-ImageNet-C's table does not: docs)
SPATTER_LEVELS = (
    (0.62, 0.1, 0.7, 0.7, "water", 0.6, 0.6),
    (0.65, 0.1, 0.8, 0.7, "water", 0.6, 0.6),
    (0.65, 0.3, 1.0, 0.69, "water", 0.6, 0.6),
    (0.65, 0.1, 0.7, 0.67, "mud", 0.6, 0.6),
    (0.65, 0.1, 0.5, 0.66, "mud", 0.6, 0.6),
)
LIQUIDS = ("water", "mud")
#: ImageNet-C's colours: pale turquoise water, brown mud (RGB / 255); gray images get the luma
WATER_RGB = (175 / 255, 238 / 255, 238 / 255)
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)
#: ImageNet-C's emboss kernel (``cv2.filter2D``): light from the upper left
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))
#: ImageNet-C truncates the distance to the drops' edges at 20 px (cells here)
DEPTH_CAP = 20


def water_layer(liquid: Tensor, intensity: float) -> Tensor:
    """Shaded water drops, (B, 1, h, w) in [0, intensity], zero outside the drops.

    ImageNet-C's steps, batched: the distance to the drops' edges (Canny there; here the drop
    pixels with a 4-neighbour outside) truncated at 20 cells (:func:`edge_distance`), a 3x3
    blur, histogram equalisation of the integer distances (:func:`equalize_levels`), the
    emboss kernel with uint8 saturation (clipped to [0, 1]), a 3x3 blur, times the liquid,
    normalised by its maximum and times ``intensity``.
    """
    mask = liquid > 0
    distance = box3(edge_distance(mask, DEPTH_CAP))
    levels = equalize_levels(distance.add_(1e-4).floor_().long(), DEPTH_CAP + 1)
    shade = box3(correlate3x3(levels.to(liquid.dtype), EMBOSS).clamp_(0.0, 1.0))
    layer = liquid * shade
    peak = layer.amax(dim=(-2, -1), keepdim=True)
    return layer.div_(torch.where(peak > 0, peak, 1.0)).mul_(intensity)


def edge_distance(mask: Tensor, cap: int) -> Tensor:
    """Distance (cells) of each pixel to the nearest edge of ``mask``, at most ``cap``.

    Edges are the mask pixels with a 4-neighbour outside it (the image border is no edge).
    The distance grows by alternate 3x3 and cross-shaped dilations (an octagonal distance,
    within 8% of the Euclidean one OpenCV's ``distanceTransform`` gives): on the CPU by
    OpenCV (:func:`._opencv.dilation_distance`), elsewhere by :func:`pooled_distance`, the
    same values.

    Args:
        mask: (B, 1, h, w) bool.
        cap: the truncation (ImageNet-C: 20).

    Returns:
        (B, 1, h, w) float32 in [0, cap].
    """
    h, w = mask.shape[-2:]
    padded = mask.index_select(-2, pad_index(h, 1, 1, "nearest", mask.device)).index_select(
        -1, pad_index(w, 1, 1, "nearest", mask.device))
    inner = (padded[..., :-2, 1:-1] & padded[..., 2:, 1:-1] & padded[..., 1:-1, :-2]
             & padded[..., 1:-1, 2:])
    if mask.device.type == "cpu":
        return dilation_distance(mask & ~inner, cap)
    return pooled_distance(mask & ~inner, cap)


def pooled_distance(reached: Tensor, cap: int) -> Tensor:
    """:func:`._opencv.dilation_distance` by torch ops on any device: steps (at most ``cap``)
    until each pixel of (B, 1, h, w) bool ``reached`` is reached by alternate 3 x 3 (max
    pooling) and cross-shaped dilations; (B, 1, h, w) float32."""
    h, w = reached.shape[-2:]
    rows = pad_index(h, 1, 1, "nearest", reached.device)
    cols = pad_index(w, 1, 1, "nearest", reached.device)
    reached = reached.float()
    distance = torch.zeros_like(reached)
    for step in range(cap):
        distance.add_(1.0 - reached)
        if bool(reached.all()):
            break
        if step % 2 == 0:
            reached = F.max_pool2d(reached, 3, stride=1, padding=1)
        else:
            cross = reached.index_select(-2, rows).index_select(-1, cols)
            reached = torch.maximum(torch.maximum(cross[..., :-2, 1:-1], cross[..., 2:, 1:-1]),
                                    torch.maximum(cross[..., 1:-1, :-2], cross[..., 1:-1, 2:]))
            reached = torch.maximum(reached, cross[..., 1:-1, 1:-1])
    return distance


def equalize_levels(levels: Tensor, count: int) -> Tensor:
    """``cv2.equalizeHist`` of integer levels, per image, scaled to [0, 1].

    Level v becomes (number of pixels with a level in (v0, v]) / (pixels - n(v0)), v0 the
    image's lowest level (OpenCV's rule, before its rounding to 1/255); an image of one level
    keeps it, scaled by 1/255.

    Args:
        levels: (B, 1, h, w) int64 in [0, count).
        count: number of levels.
    """
    b = levels.shape[0]
    flat = levels.reshape(b, -1)
    hist = torch.zeros(b, count, device=levels.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float32))
    lowest = (hist > 0).float().argmax(dim=1, keepdim=True)  # (B, 1)
    below = hist.gather(1, lowest)
    total = float(flat.shape[1])
    cdf = hist.cumsum(dim=1) - below  # pixels in (v0, v]
    span = total - below
    lut = torch.where(span > 0, cdf / torch.where(span > 0, span, 1.0),
                      lowest.float() / 255).clamp_(0.0, 1.0)
    return lut.gather(1, flat).view(levels.shape)


def mud_layer(liquid: Tensor, mud_sigma: float) -> Tensor:
    """Mud opacity (B, 1, h, w) in [0, 1]: the drop mask blurred by ``mud_sigma`` (cells),
    zero where below 0.8 (ImageNet-C's mud)."""
    opacity = gaussian_smooth((liquid > 0).to(liquid.dtype), mud_sigma, mode="nearest")
    return opacity.masked_fill_(opacity < 0.8, 0.0)


def spatter_core(
    x: Tensor, words: np.ndarray, out: Tensor, *, mean: float, std: float, sigma: float,
    threshold: float, liquid: str, intensity: float, mud_sigma: float,
) -> Tensor:
    """Water: out = x + m * colour; mud: out = (1 - m) x + m * colour.

    The liquid N(mean, std^2) is drawn on a grid of pitch ``max(1, min(H, W) / 64)`` px,
    smoothed by ``sigma`` cells (edges replicated, as skimage's ``gaussian``), zeroed below
    ``threshold``; the water or mud layer is computed on that grid and resized to the image.
    """
    b, c, h, w = x.shape
    pitch = field_pitch(h, w)
    grid = (max(1, math.ceil(h / pitch)), max(1, math.ceil(w / pitch)))
    field = normal_field(words, grid, mean, std, x.device)[:, None]  # (B, 1, gh, gw)
    field = gaussian_smooth(field, sigma, mode="nearest")
    field = field.masked_fill_(field < threshold, 0.0)
    if liquid == "water":
        layer = resize(water_layer(field, intensity), (h, w)).to(x.dtype)
        return torch.mul(layer, channel_color(WATER_RGB, c, x), out=out).add_(x)
    layer = resize(mud_layer(field, mud_sigma), (h, w)).to(x.dtype)
    torch.mul(x, 1 - layer, out=out)
    return out.add_(layer * channel_color(MUD_RGB, c, x))


def spatter(
    images: Tensor, mean: float = 0.65, std: float = 0.3, sigma: float = 1.0,
    threshold: float = 0.69, liquid: str = "water", intensity: float = 0.6,
    mud_sigma: float = 0.6, *, generator: torch.Generator | None = None,
    range_mode: str = "clip",
) -> Tensor:
    """ImageNet-C's spatter: drops of water (shaded, pale turquoise, added) or of mud
    (brown, covering), from thresholded smoothed noise. Gray images get the colour's luma.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        mean, std: the liquid noise N(mean, std^2) (``std`` >= 0).
        sigma: its Gaussian smoothing, in field cells (pixels of a 64 px image), >= 0.
        threshold: liquid below it is dry.
        liquid: ``"water"`` or ``"mud"``.
        intensity: water's highlight strength (ImageNet-C's ``c[4]`` for water), >= 0.
        mud_sigma: mud's edge blur in cells (``c[4]`` for mud), >= 0.
        generator: CPU ``torch.Generator`` for the liquid; None uses torch's global one.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, parameters or ``range_mode``.
    """
    values = _check_spatter(mean, std, sigma, threshold, liquid, intensity, mud_sigma)

    def core(x: Tensor, words: np.ndarray, out: Tensor) -> Tensor:
        return spatter_core(x, words, out, **values)

    return run_field_corruption(images, core, {}, generator, range_mode)


def _check_spatter(mean: float, std: float, sigma: float, threshold: float, liquid: str,
                   intensity: float, mud_sigma: float) -> dict[str, float | str]:
    return {
        "mean": check_number("mean", mean), "std": check_number("std", std, 0.0),
        "sigma": check_number("sigma", sigma, 0.0),
        "threshold": check_number("threshold", threshold),
        "liquid": check_choice(liquid, LIQUIDS, "liquid"),
        "intensity": check_number("intensity", intensity, 0.0),
        "mud_sigma": check_number("mud_sigma", mud_sigma, 0.0),
    }


@DEGRADATIONS.register("spatter")
class Spatter(Degradation):
    """ImageNet-C's spatter; see :func:`spatter`. No drawn parameters (the liquid is the
    noise)."""

    severities = tuple(dict(zip(SPATTER_KEYS, level)) for level in SPATTER_LEVELS)
    family = "weather"

    def __init__(
        self, mean: float = 0.65, std: float = 0.3, sigma: float = 1.0,
        threshold: float = 0.69, liquid: str = "water", intensity: float = 0.6,
        mud_sigma: float = 0.6, range_mode: str = "clip",
    ) -> None:
        super().__init__()
        values = _check_spatter(mean, std, sigma, threshold, liquid, intensity, mud_sigma)
        for key in SPATTER_KEYS:
            setattr(self, key, values[key])
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return FIELD_WORDS

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        return spatter_core(x, words, out, **{k: getattr(self, k) for k in SPATTER_KEYS})
