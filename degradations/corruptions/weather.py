"""ImageNet-C's weather corruptions fog and snow, batched and seeded (spatter, the third of
the family, is :mod:`degradations.corruptions.spatter`).

Each family is a public function (``fog``, ``snow``), a chunk core, and a
registered :class:`~degradations.Degradation` with its five levels. The levels are
Tiny-ImageNet-C's (64 px); spatial parameters are in pixels of a 64 px image and scale with
``min(H, W) / 64`` at run time, random fields are never finer than the pixels (see
:mod:`degradations.corruptions._fields` and docs/degradations.md). Every
random field comes from each image's own word (``words_per_image`` = 1), so image i depends
only on its generator. Frost is left out: it needs ImageNet-C's frost photographs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .._base import check_batch, check_range_mode
from ..degradation import DEGRADATIONS, Degradation, Params
from ._fields import (
    FIELD_WORDS,
    check_number,
    field_pitch,
    luma,
    normal_field,
    per_image,
    plasma_fractal,
    resize,
    run_field_corruption,
    size_factor,
    streak_taps,
    uniform_field,
)
from ._opencv import opencv_ready, valid_rows_filter

# ----------------------------------------------------------------------------------------- fog

#: (strength, decay) per severity: Tiny-ImageNet-C's fog
FOG_LEVELS = ((0.4, 3.0), (0.7, 3.0), (1.0, 2.5), (1.5, 2.0), (2.0, 1.75))


def fog_core(x: Tensor, words: np.ndarray, out: Tensor, *, strength: float,
             decay: float) -> Tensor:
    """out = (x + strength * plasma) * peak / (peak + strength), peak = max of each image.

    The plasma is drawn on a ``2^k >= max(H, W)`` square (ImageNet-C: 256 for 224 px) and
    resized so that the longer side spans the whole map: its octaves keep their size relative
    to the image at any size.
    """
    b, _, h, w = x.shape
    size = 1 << max(1, math.ceil(math.log2(max(h, w))))
    uniforms = uniform_field(words, (size * size - 1,), x.device)
    plasma = plasma_fractal(uniforms, size, decay)[:, None]  # (B, 1, size, size)
    longer = max(h, w)
    plasma = resize(plasma[..., : math.ceil(h * size / longer), : math.ceil(w * size / longer)],
                    (h, w)).to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    total = peak + strength
    scale = torch.where(total > 0, peak / torch.where(total > 0, total, 1.0), 0.0)
    return torch.add(x, plasma, alpha=strength, out=out).mul_(scale)


def fog(
    images: Tensor, strength: float = 1.0, decay: float = 2.5, *,
    generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """ImageNet-C's fog: a diamond-square plasma added, then the image renormalised.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        strength: plasma amplitude ``c[0]`` (>= 0).
        decay: ImageNet-C's ``wibbledecay`` (> 0): octave k is weighted ``decay**-2k``;
            larger is smoother.
        generator: CPU ``torch.Generator`` for the plasma; None uses torch's global one.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, parameters or ``range_mode``.
    """
    strength, decay = _check_fog(strength, decay)

    def core(x: Tensor, words: np.ndarray, out: Tensor) -> Tensor:
        return fog_core(x, words, out, strength=strength, decay=decay)

    return run_field_corruption(images, core, {}, generator, range_mode)


def _check_fog(strength: float, decay: float) -> tuple[float, float]:
    return (check_number("strength", strength, 0.0),
            check_number("decay", decay, 0.0, positive=True))


@DEGRADATIONS.register("fog")
class Fog(Degradation):
    """ImageNet-C's fog; see :func:`fog`. No drawn parameters (the plasma is the noise)."""

    severities = tuple({"strength": s, "decay": d} for s, d in FOG_LEVELS)
    family = "weather"

    def __init__(self, strength: float = 1.0, decay: float = 2.5,
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.strength, self.decay = _check_fog(strength, decay)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return FIELD_WORDS

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        return fog_core(x, words, out, strength=self.strength, decay=self.decay)


# ---------------------------------------------------------------------------------------- snow

SNOW_KEYS = ("mean", "std", "zoom", "threshold", "radius", "sigma", "blend")
#: Tiny-ImageNet-C's snow, in the order of :data:`SNOW_KEYS`
SNOW_LEVELS = (
    (0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.8),
    (0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.8),
    (0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.7),
    (0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.65),
    (0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.6),
)
#: ImageNet-C's range of the streak angle, degrees (x right, y down)
SNOW_ANGLES = (-135.0, -45.0)


def snow_layer(
    words: np.ndarray, size: tuple[int, int], angle: Tensor, device: torch.device, *,
    mean: float, std: float, zoom: float, threshold: float, radius: float, sigma: float,
) -> Tensor:
    """The streaked flakes, (B, 1, H, W) float32 in [0, 1].

    Flakes: N(mean, std) on a grid of pitch ``zoom`` px, bilinearly resized, zeroed below
    ``threshold``, clipped to [0, 1]. Streaks: ImageMagick's motion blur
    ``out(p) = sum_i k_i layer(p + i u)``, u = (cos angle, sin angle), k a half Gaussian
    (:func:`streak_taps`). The layer is drawn on a square canvas whose rows run along u (the
    blur is then one fixed 1-D filter for every image: on the CPU ``cv2.filter2D`` per image,
    elsewhere one pass per tap, equal within float rounding) and rotated onto the image with
    one bilinear ``grid_sample`` per image; the canvas covers the image's diagonal.

    Args:
        words: (B, k) uint64 field seeds.
        size: (H, W) of the images.
        angle: (B,) degrees, one per image.
        device: where to compute.
        mean, std, zoom, threshold: the flakes (``zoom`` in pixels of this image, >= 1).
        radius, sigma: the streak kernel in pixels of this image.
    """
    h, w = size
    taps = streak_taps(radius, sigma)
    side = 2 * math.ceil(math.hypot(h - 1, w - 1) / 2) + 3
    rows = side + len(taps) - 1
    grid = (max(1, math.ceil(rows / zoom)), max(1, math.ceil(side / zoom)))
    flakes = resize(normal_field(words, grid, mean, std, device)[:, None], (rows, side))
    flakes = flakes.masked_fill_(flakes < threshold, 0.0).clamp_(0.0, 1.0)
    if len(taps) > 1 and opencv_ready(flakes, 0):  # CPU: one cv2.filter2D per image
        streaks = valid_rows_filter(flakes, np.asarray(taps), side)
    else:
        streaks = flakes.narrow(2, 0, side) * taps[0]
        for i in range(1, len(taps)):
            streaks.add_(flakes.narrow(2, i, side), alpha=taps[i])
    theta = torch.deg2rad(angle.to(torch.float64))
    cos, sin = theta.cos(), theta.sin()
    # pixel (x, y) from the centre is (x_n W / 2, y_n H / 2) in affine_grid's pixel-area
    # units (align_corners=False); canvas column offset across = y cos - x sin, row offset
    # along u = x cos + y sin, in grid_sample's units (align_corners=True) of the canvas
    half_w, half_h, unit = w / 2, h / 2, 2 / (side - 1)
    affine = torch.zeros(len(angle), 2, 3, dtype=torch.float64)
    affine[:, 0, 0], affine[:, 0, 1] = -sin * half_w * unit, cos * half_h * unit
    affine[:, 1, 0], affine[:, 1, 1] = cos * half_w * unit, sin * half_h * unit
    sample = F.affine_grid(affine, [len(angle), 1, h, w], align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(streaks, sample.to(device, torch.float32), mode="bilinear",
                         padding_mode="zeros", align_corners=True)


def snow_core(
    x: Tensor, words: np.ndarray, out: Tensor, angle: Tensor, *, mean: float, std: float,
    zoom: float, threshold: float, radius: float, sigma: float, blend: float,
) -> Tensor:
    """x' = blend x + (1 - blend) max(x, 1.5 gray(x) + 0.5); out = x' + S + rot180(S).

    ``radius`` and ``sigma`` are in pixels of a 64 px image (times ``min(H, W) / 64`` here);
    ``zoom`` is the flake pitch in field cells (times ``max(1, min(H, W) / 64)``, at least one
    pixel). gray(x) is x itself for one channel and its BT.601 luma for RGB (ImageNet-C's cv2
    RGB2GRAY).
    """
    h, w = x.shape[-2:]
    f = size_factor(h, w)
    layer = snow_layer(words, (h, w), angle, x.device, mean=mean, std=std,
                       zoom=max(1.0, zoom * field_pitch(h, w)), threshold=threshold,
                       radius=radius * f, sigma=sigma * f).to(x.dtype)
    bright = torch.maximum(x, luma(x) * 1.5 + 0.5)
    torch.mul(x, blend, out=out).add_(bright, alpha=1 - blend)
    return out.add_(layer).add_(layer.flip(-2, -1))


def snow(
    images: Tensor, angle: float | Tensor, mean: float = 0.15, std: float = 0.3,
    zoom: float = 1.75, threshold: float = 0.55, radius: float = 10.0, sigma: float = 4.0,
    blend: float = 0.7, *, generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """ImageNet-C's snow: thresholded noise flakes, streaked at ``angle``, over a brightened
    image. ``degradations.apply(images, "snow")`` draws the angle per image.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        angle: streak angle in degrees (x right, y down), a number or a (B,) tensor;
            ImageNet-C draws it from U(-135, -45).
        mean, std: the flake noise N(mean, std^2) (``std`` >= 0).
        zoom: flake pitch (> 0) in field cells of ``max(1, min(H, W) / 64)`` px (a cell is
            one pixel at 64 px and below, as in CIFAR-10-C); never under one pixel.
        threshold: noise below it is no flake.
        radius, sigma: ImageMagick motion blur (>= 0), pixels of a 64 px image.
        blend: weight of the image in the brightening blend, in [0, 1].
        generator: CPU ``torch.Generator`` for the flakes; None uses torch's global one.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, parameters, angles or ``range_mode``.
    """
    values = _check_snow(mean, std, zoom, threshold, radius, sigma, blend)
    params = {"angle": per_image(angle, check_batch(images).shape[0], "angle").float()}

    def core(x: Tensor, words: np.ndarray, out: Tensor, angle: Tensor) -> Tensor:
        return snow_core(x, words, out, angle, **values)

    return run_field_corruption(images, core, params, generator, range_mode)


def _check_snow(mean: float, std: float, zoom: float, threshold: float, radius: float,
                sigma: float, blend: float) -> dict[str, float]:
    return {
        "mean": check_number("mean", mean), "std": check_number("std", std, 0.0),
        "zoom": check_number("zoom", zoom, 0.0, positive=True),
        "threshold": check_number("threshold", threshold),
        "radius": check_number("radius", radius, 0.0),
        "sigma": check_number("sigma", sigma, 0.0), "blend": check_number("blend", blend, 0, 1),
    }


@DEGRADATIONS.register("snow")
class Snow(Degradation):
    """ImageNet-C's snow; see :func:`snow`. Drawn: ``angle`` (B,) degrees, U(-135, -45)."""

    severities = tuple(dict(zip(SNOW_KEYS, level)) for level in SNOW_LEVELS)
    family = "weather"

    def __init__(
        self, mean: float = 0.15, std: float = 0.3, zoom: float = 1.75,
        threshold: float = 0.55, radius: float = 10.0, sigma: float = 4.0, blend: float = 0.7,
        range_mode: str = "clip",
    ) -> None:
        super().__init__()
        values = _check_snow(mean, std, zoom, threshold, radius, sigma, blend)
        self.mean, self.std, self.zoom = values["mean"], values["std"], values["zoom"]
        self.threshold, self.radius = values["threshold"], values["radius"]
        self.sigma, self.blend = values["sigma"], values["blend"]
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        low, high = SNOW_ANGLES
        return {"angle": torch.rand(batch_size, generator=generator) * (high - low) + low}

    def words_per_image(self, pixels: int) -> int:
        return FIELD_WORDS

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, angle: Tensor) -> Tensor:
        return snow_core(x, words, out, angle, **{k: getattr(self, k) for k in SNOW_KEYS})
