"""ImageNet-C's noise and blur corruptions, batched and seeded.

``shot_noise``, ``impulse_noise`` (family ``noise``); ``gaussian_blur``, ``defocus_blur``,
``zoom_blur``, ``glass_blur``, ``line_motion_blur`` (family ``blur``). Each is a pure function
of a (B, C, H, W) batch and a registered :class:`degradations.Degradation`. Parameters are
"anchored" (see :mod:`degradations.corruptions._kernels`): a triple holds a parameter's
CIFAR-10-C (32 px), Tiny-ImageNet-C (64 px) and ImageNet-C (224 px) values and is read at the
batch's ``min(H, W)``; a plain number is used as it is at every size. The five levels and how
they scale are in docs/degradations.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from .._base import check_batch, check_range_mode
from ..degradation import DEGRADATIONS, Degradation, Params
from ..noise import int16_words, salt_pepper_core
from ._anchors import (
    Anchored,
    anchor_blend,
    anchor_levels,
    anchor_max,
    anchor_value,
    at_side,
    check_anchored,
    image_side,
    run_corruption,
)
from ._kernels import (
    blend_kernels,
    disk_kernel,
    filter2d,
    gaussian_filter,
    glass_core,
    glass_words,
    line_motion_core,
    zoom_core,
)
from ._opencv import map_ranges
from ._poisson import poisson_shot

_SHOT = anchor_levels(("photons",), (500, 250, 100, 75, 50), (250, 100, 50, 30, 15),
                      (60, 25, 12, 5, 3))
_IMPULSE = anchor_levels(("amount",), (.01, .02, .03, .05, .07), (.01, .02, .05, .08, .14),
                         (.03, .06, .09, .17, .27))
_GAUSSIAN = anchor_levels(("sigma",), (.4, .6, .7, .8, 1), (.5, .75, 1, 1.25, 1.5),
                          (1, 2, 3, 4, 6))
_DEFOCUS = anchor_levels(
    ("radius", "alias_blur"),
    ((.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1)),
    ((.5, .6), (1, .1), (1.5, .1), (2.5, .01), (3, .1)),
    ((3, .1), (4, .5), (6, .5), (8, .5), (10, .5)),
)
_ZOOM = anchor_levels(("max_zoom",), (1.05, 1.10, 1.15, 1.20, 1.25),
                      (1.05, 1.10, 1.15, 1.20, 1.25), (1.10, 1.15, 1.20, 1.24, 1.30))
# sigma, delta, iterations. Measured against the clean image, the second blur hides the
# scrambling, so ImageNet-C's tables do not grow in distortion level by level; displacements
# re-tuned (see docs/degradations.md): Tiny-ImageNet-C's sigma and iterations with delta
# (.6, 1.5, 1.5, 2.5, 3.5) up to 64 px (CIFAR-10-C's table is not used), ImageNet-C's at 224 px
# with one pass at level 1
_GLASS = anchor_levels(
    ("sigma", "delta", "iterations"),
    ((.1, .6, 1), (.5, 1.5, 1), (.6, 1.5, 2), (.7, 2.5, 1), (.9, 3.5, 2)),
    ((.1, .6, 1), (.5, 1.5, 1), (.6, 1.5, 2), (.7, 2.5, 1), (.9, 3.5, 2)),
    ((.7, 1, 1), (.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
)
# CIFAR-10-C's levels 3 and 4 are (6, 2) and (8, 2): a radius beyond 3 sigma changes nothing,
# so level 4 gets sigma 2.25 here (between its neighbours) to be a stronger blur
_MOTION = anchor_levels(
    ("radius", "sigma"),
    ((6, 1), (6, 1.5), (6, 2), (8, 2.25), (9, 2.5)),
    ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
)


def _level3(table: tuple[dict[str, Anchored], ...], name: str) -> Anchored:
    return table[2][name]


# -------------------------------------------------------------------------------------- noise


def shot_core(x: Tensor, words: np.ndarray, out: Tensor, photons: float) -> Tensor:
    """out = Poisson(photons x) / photons; value i of image b drawn from its word
    ``words[b, i]`` (:func:`._poisson.poisson_shot`, on the CPU, images spread over torch's
    thread count; each image's counts depend on its words only)."""
    b = x.shape[0]
    values = x.detach().cpu().reshape(b, -1).numpy()  # float32 or float64, no copy on the CPU
    direct = out.device.type == "cpu" and out.is_contiguous()
    result = out.view(b, -1).numpy() if direct else np.empty(values.shape, np.float64)

    def work(start: int, stop: int) -> None:  # numpy releases the GIL in its loops: threads
        poisson_shot(values[start:stop], photons, words[start:stop], result[start:stop])

    map_ranges(work, b)
    if not direct:
        out.copy_(torch.from_numpy(result).view(x.shape))
    return out


def shot_noise(
    images: Tensor, photons: Anchored = _level3(_SHOT, "photons"), *,
    generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """Shot (Poisson) noise as ImageNet-C: g = Poisson(c f) / c, c photons at full intensity.

    The noise variance is f / c: it grows with the intensity and falls with ``photons``.
    Counts are drawn on the CPU by table inversion from one 64-bit word per value (exact
    Poisson counts, outcomes below 2^-32 per value aside: :mod:`._poisson`), the words from
    one SFC64 stream seeded from ``generator``, so CPU and CUDA inputs get the same noise.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        photons: c > 0, a number or ``(at 32, at 64, at 224 px)`` (default: level 3).
        generator: source of randomness; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    photons = check_anchored("photons", photons, positive=True)

    def core(x: Tensor, words: np.ndarray, out: Tensor) -> Tensor:
        return shot_core(x, words, out, at_side(photons, image_side(x)))

    return run_corruption(images, core, range_mode=range_mode, words_per_image=lambda n: n,
                          generator=generator)


def impulse_noise(
    images: Tensor, amount: Anchored = _level3(_IMPULSE, "amount"), *,
    generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """Impulse (salt-and-pepper) noise as ImageNet-C (skimage ``s&p``): each value (channel
    by channel) is replaced with probability ``amount``, by 0 or 1 with probability 1/2 each.

    The draw is :func:`degradations.noise.salt_pepper_core`'s (one 16-bit word per value).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        amount: fraction replaced, in [0, 1], a number or ``(at 32, at 64, at 224 px)``.
        generator: source of randomness; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    amount = check_anchored("amount", amount, high=1.0)

    def core(x: Tensor, words: np.ndarray, out: Tensor) -> Tensor:
        return salt_pepper_core(x, words, out, at_side(amount, image_side(x)))

    return run_corruption(images, core, range_mode=range_mode, words_per_image=int16_words,
                          generator=generator, in_range=True)


@DEGRADATIONS.register("shot_noise")
class ShotNoise(Degradation):
    """Poisson noise g = Poisson(c f) / c; see :func:`shot_noise`. No drawn parameters."""

    severities = tuple({"photons": lv["photons"]} for lv in _SHOT)
    family = "noise"

    def __init__(self, photons: Anchored = _level3(_SHOT, "photons"),
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.photons = check_anchored("photons", photons, positive=True)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return pixels  # one per value (:func:`shot_core`)

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        return shot_core(x, words, out, at_side(self.photons, image_side(x)))


@DEGRADATIONS.register("impulse_noise")
class ImpulseNoise(Degradation):
    """Salt-and-pepper noise at ImageNet-C's amounts; see :func:`impulse_noise`."""

    severities = tuple({"amount": lv["amount"]} for lv in _IMPULSE)
    family = "noise"

    def __init__(self, amount: Anchored = _level3(_IMPULSE, "amount"),
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.amount = check_anchored("amount", amount, high=1.0)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return int16_words(pixels)

    @property
    def output_in_range(self) -> bool:
        return True

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        return salt_pepper_core(x, words, out, at_side(self.amount, image_side(x)))


# --------------------------------------------------------------------------- Gaussian, disk


def gaussian_blur(
    images: Tensor, sigma: Anchored = _level3(_GAUSSIAN, "sigma"), *, range_mode: str = "clip",
) -> Tensor:
    """Gaussian blur as ImageNet-C (skimage ``gaussian``: truncated at 4 sigma, edge pixels
    repeated beyond the border), per channel.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        sigma: std in pixels, >= 0; a number, or ``(at 32, at 64, at 224 px)`` read at
            ``min(H, W)`` (scaled with the side outside [32, 224]).
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    sigma = check_anchored("sigma", sigma)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return out.copy_(gaussian_filter(x, at_side(sigma, image_side(x), length=True)))

    return run_corruption(images, core, range_mode=range_mode)


@lru_cache(maxsize=64)
def defocus_kernel(radius: Anchored, alias_blur: Anchored, side: int) -> np.ndarray:
    """The defocus kernel for images of shorter side ``side``: between two anchor sizes the
    blend of the two anchors' :func:`disk_kernel` (weights of :func:`anchor_blend`), below 32
    or above 224 px the end anchor's with both lengths scaled by ``side`` / anchor.

    Cached (every chunk of a batch asks for it), so the array is read-only."""
    blend = anchor_blend(side)
    kernels = [disk_kernel(anchor_value(radius, i) * scale, anchor_value(alias_blur, i) * scale)
               for i, _, scale in blend]
    kernel = blend_kernels(kernels, [w for _, w, _ in blend])
    kernel.setflags(write=False)
    return kernel


def defocus_core(x: Tensor, out: Tensor, kernel: np.ndarray) -> Tensor:
    """``out`` = every channel filtered with ``kernel`` (OpenCV's reflect-101 border)."""
    return out.copy_(filter2d(x, kernel, "reflect"))


def defocus_blur(
    images: Tensor, radius: Anchored = _level3(_DEFOCUS, "radius"),
    alias_blur: Anchored = _level3(_DEFOCUS, "alias_blur"), *, range_mode: str = "clip",
) -> Tensor:
    """Defocus blur as ImageNet-C: a disk of ``radius`` px smoothed by a small Gaussian.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        radius: disk radius in pixels, >= 0 (pixels with x^2 + y^2 <= radius^2).
        alias_blur: std in pixels of the 3 x 3 (5 x 5 beyond radius 8) Gaussian that smooths
            the disk's edge, >= 0.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

        Both are numbers or ``(at 32, at 64, at 224 px)`` triples read at ``min(H, W)``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    radius = check_anchored("radius", radius)
    alias_blur = check_anchored("alias_blur", alias_blur)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return defocus_core(x, out, defocus_kernel(radius, alias_blur, image_side(x)))

    return run_corruption(images, core, range_mode=range_mode)


@DEGRADATIONS.register("gaussian_blur")
class GaussianBlur(Degradation):
    """Gaussian blur of std ``sigma`` px; see :func:`gaussian_blur`. Deterministic."""

    severities = tuple({"sigma": lv["sigma"]} for lv in _GAUSSIAN)
    family = "blur"

    def __init__(self, sigma: Anchored = _level3(_GAUSSIAN, "sigma"),
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.sigma = check_anchored("sigma", sigma)
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return out.copy_(gaussian_filter(x, at_side(self.sigma, image_side(x), length=True)))


@DEGRADATIONS.register("defocus_blur")
class DefocusBlur(Degradation):
    """Disk blur of ``radius`` px, edge smoothed by ``alias_blur``; see :func:`defocus_blur`."""

    severities = _DEFOCUS
    family = "blur"

    def __init__(
        self, radius: Anchored = _level3(_DEFOCUS, "radius"),
        alias_blur: Anchored = _level3(_DEFOCUS, "alias_blur"), range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.radius = check_anchored("radius", radius)
        self.alias_blur = check_anchored("alias_blur", alias_blur)
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return defocus_core(x, out, defocus_kernel(self.radius, self.alias_blur, image_side(x)))


# ------------------------------------------------------------------------------------- zoom


def zoom_blur(
    images: Tensor, max_zoom: Anchored = _level3(_ZOOM, "max_zoom"), step: float = 0.01, *,
    range_mode: str = "clip",
) -> Tensor:
    """Zoom blur as ImageNet-C: the mean of the image and its centre zooms by 1, 1 + step, ...
    up to ``max_zoom`` (bilinear, about the image centre, cropped to the input size).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        max_zoom: largest zoom factor, >= 1; a number or ``(at 32, at 64, at 224 px)``.
        step: spacing of the zoom factors, > 0.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    max_zoom = check_anchored("max_zoom", max_zoom, low=1.0)
    step = float(check_anchored("step", step, positive=True))

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return zoom_core(x, out, at_side(max_zoom, image_side(x)), step)

    return run_corruption(images, core, range_mode=range_mode)


@DEGRADATIONS.register("zoom_blur")
class ZoomBlur(Degradation):
    """Mean of centre zooms up to ``max_zoom``; see :func:`zoom_blur`. Deterministic."""

    severities = tuple({"max_zoom": lv["max_zoom"]} for lv in _ZOOM)
    family = "blur"

    def __init__(self, max_zoom: Anchored = _level3(_ZOOM, "max_zoom"), step: float = 0.01,
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.max_zoom = check_anchored("max_zoom", max_zoom, low=1.0)
        self.step = float(check_anchored("step", step, positive=True))
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return zoom_core(x, out, at_side(self.max_zoom, image_side(x)), self.step)


# ------------------------------------------------------------------------------------ glass


def _glass_setting(sigma: Anchored, delta: Anchored, iterations: Anchored,
                   side: int) -> tuple[float, float, float]:
    return (at_side(sigma, side, length=True), at_side(delta, side, length=True),
            at_side(iterations, side))


def glass_blur(
    images: Tensor, sigma: Anchored = _level3(_GLASS, "sigma"),
    delta: Anchored = _level3(_GLASS, "delta"),
    iterations: Anchored = _level3(_GLASS, "iterations"), *,
    generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """Glass blur, batched: Gaussian blur, local pixel scrambling, Gaussian blur.

    ImageNet-C swaps each pixel with a neighbour at an offset in ``[-delta, delta - 1]``,
    sequentially over the image in Python loops (seconds per image). Here each pass moves every
    pixel at once: it takes the value at a random offset ``round((2u - 1) delta)`` per axis
    (symmetric, continuous in ``delta``, border clamped), a gather rather than a chain of
    swaps; the result is the same kind of frosted-glass scrambling, not the same pixels. The
    reference also rounds the first blur to 8 bits; this does not.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        sigma: std in pixels of both blurs, >= 0.
        delta: largest displacement in pixels per pass, >= 0.
        iterations: passes, >= 0; a fractional last pass moves that share of the pixels.
        generator: source of the displacements; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

        Each is a number or ``(at 32, at 64, at 224 px)`` read at ``min(H, W)``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    module = GlassBlur(sigma, delta, iterations, range_mode)
    return run_corruption(images, module.core, range_mode=range_mode,
                          words_per_image=module.words_per_image, generator=generator)


@DEGRADATIONS.register("glass_blur")
class GlassBlur(Degradation):
    """Blur, local scrambling, blur; see :func:`glass_blur`. The displacements are pixel noise
    (raw words), not returned parameters."""

    severities = _GLASS
    family = "blur"

    def __init__(
        self, sigma: Anchored = _level3(_GLASS, "sigma"),
        delta: Anchored = _level3(_GLASS, "delta"),
        iterations: Anchored = _level3(_GLASS, "iterations"), range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.sigma = check_anchored("sigma", sigma)
        self.delta = check_anchored("delta", delta)
        self.iterations = check_anchored("iterations", iterations, high=64)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return glass_words(pixels, anchor_max(self.iterations))

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        sigma, delta, iterations = _glass_setting(self.sigma, self.delta, self.iterations,
                                                  image_side(x))
        return glass_core(x, words, out, sigma, delta, iterations)


# ------------------------------------------------------------------------------ line motion


def line_motion_blur(
    images: Tensor, angle: float | Tensor = 0.0, radius: Anchored = _level3(_MOTION, "radius"),
    sigma: Anchored = _level3(_MOTION, "sigma"), *, range_mode: str = "clip",
) -> Tensor:
    """ImageNet-C's motion blur (ImageMagick ``-motion-blur radius x sigma + angle``), batched.

    A one-sided Gaussian line kernel: weights ``exp(-i^2 / (2 sigma^2))``, i = 0 ..
    2 ceil(radius), normalised, sampled along the direction ``angle``. Linear convolution (edge
    pixels repeated), not the circular one of the frequency domain. ImageMagick rounds each
    tap to a whole pixel; here taps are bilinear samples, so the blur is continuous in the angle.
    :class:`LineMotionBlur` draws ``angle`` ~ U(-45, 45) degrees per image, as ImageNet-C.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        angle: direction in degrees (0 = right, 90 = down), a float or (B,) tensor.
        radius: kernel support in pixels (2 ceil(radius) + 1 taps), >= 0.
        sigma: std of the weights in pixels, >= 0.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

        ``radius`` and ``sigma`` are numbers or ``(at 32, at 64, at 224 px)`` triples.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    module = LineMotionBlur(radius, sigma, range_mode=range_mode)
    check_batch(images)
    params = {"angle": torch.as_tensor(angle, dtype=torch.float32).reshape(-1).expand(len(images))}
    return run_corruption(images, module.core, range_mode=range_mode, params=params)


@DEGRADATIONS.register("line_motion_blur")
class LineMotionBlur(Degradation):
    """ImageNet-C's line motion blur; see :func:`line_motion_blur`.

    Drawn parameter ``angle`` (B,) float32 degrees, U(-max_angle, max_angle) per image.
    """

    severities = _MOTION
    family = "blur"

    def __init__(
        self, radius: Anchored = _level3(_MOTION, "radius"),
        sigma: Anchored = _level3(_MOTION, "sigma"), max_angle: float = 45.0,
        range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.radius = check_anchored("radius", radius)
        self.sigma = check_anchored("sigma", sigma)
        self.max_angle = float(check_anchored("max_angle", max_angle, high=180.0))
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        u = torch.rand(batch_size, generator=generator)
        return {"angle": (u * 2 - 1) * self.max_angle}

    def core(self, x: Tensor, words: object, out: Tensor, angle: Tensor) -> Tensor:
        side = image_side(x)
        return line_motion_core(x, out, angle, at_side(self.radius, side, length=True),
                                at_side(self.sigma, side, length=True))
