"""ImageNet-C's digital corruptions (and brightness), batched.

``pixelate`` (family ``resolution``), ``jpeg``, ``contrast``, ``saturate`` (family
``digital``) and ``brightness`` (family ``weather``, where ImageNet-C puts it). No pixel
noise; pixelate draws its block grid's phase per image, the others draw nothing. Parameters
are anchored as in :mod:`degradations.corruptions._kernels`: a triple holds the CIFAR-10-C
(32 px), Tiny-ImageNet-C (64 px) and ImageNet-C (224 px) values and is read at the batch's
``min(H, W)``; a plain number is used at every size. Tables: docs/degradations.md.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

from .._base import check_batch, check_range_mode
from ..degradation import DEGRADATIONS, Degradation, Params
from ._anchors import (
    Anchored,
    anchor_levels,
    at_side,
    check_anchored,
    image_side,
    run_corruption,
)
from ._kernels import (
    block_average,
)
from ._opencv import map_ranges

_PIXELATE = anchor_levels(("factor",), (.95, .9, .85, .75, .65), (.9, .8, .7, .6, .5),
                          (.6, .5, .4, .3, .25))
_JPEG = anchor_levels(("quality",), (80, 65, 58, 50, 40), (65, 58, 50, 40, 25),
                      (25, 18, 15, 10, 7))
_CONTRAST = anchor_levels(("factor",), (.75, .5, .4, .3, .15), (.4, .3, .2, .1, .05),
                          (.4, .3, .2, .1, .05))
_BRIGHTNESS = anchor_levels(("shift",), (.05, .1, .15, .2, .3), (.1, .2, .3, .4, .5),
                            (.1, .2, .3, .4, .5))
# ImageNet-C's saturate levels at every size: CIFAR-10-C's (.3, .1, 1.5, 2, 2.5 with offsets
# 0, 0, 0, .1, .2) change S less at level 3 than at level 2 for every pixel, and Tiny's
# differ from ImageNet-C's only at level 5 (30 vs 20; both saturate nearly every pixel)
_SATURATE: tuple[dict[str, Anchored], ...] = tuple(
    {"scale": scale, "offset": offset}
    for scale, offset in ((.3, 0.0), (.1, 0.0), (2.0, 0.0), (5.0, .1), (20.0, .2))
)


# ----------------------------------------------------------------------------------- pixelate


def reduced_size(n: int, factor: float) -> int:
    """``floor(factor n)``, at least 1 and at most ``n`` (ImageNet-C's ``int(n c)``)."""
    return max(1, min(n, int(math.floor(n * factor + 1e-9))))


def pixelate_core(x: Tensor, out: Tensor, factor: float, phase_y: Tensor,
                  phase_x: Tensor) -> Tensor:
    """Box-downsample to :func:`reduced_size` on a block grid shifted by ``phase_y``,
    ``phase_x`` (B,) blocks, then nearest upsampling back (see :func:`block_average`)."""
    b, c, h, w = x.shape
    phase_y = phase_y.to(x.device, x.dtype)
    phase_x = phase_x.to(x.device, x.dtype)
    down_y, rows = block_average(reduced_size(h, factor), h, phase_y)  # (B, h' + 1, H), (B, H)
    down_x, cols = block_average(reduced_size(w, factor), w, phase_x)  # (B, w' + 1, W), (B, W)
    ny, nx = down_y.shape[1], down_x.shape[1]
    # two plain batched products (no broadcast over C), then one gather writes the output
    by_rows = torch.bmm(down_y, x.transpose(1, 2).reshape(b, h, c * w))  # (B, h' + 1, C W)
    small = torch.bmm(by_rows.view(b, ny * c, w), down_x.transpose(1, 2))  # (B, (h'+1) C, w'+1)
    small = small.view(b, ny, c, nx).transpose(1, 2).reshape(b, c, ny * nx)
    index = (rows[:, :, None] * nx + cols[:, None, :]).view(b, 1, h * w)  # block of each pixel
    pixels = torch.gather(small, 2, index.expand(b, c, h * w))  # (B, C, H W)
    return out.copy_(pixels.view(b, c, h, w))


def pixelate(
    images: Tensor, phase_y: float | Tensor = 0.0, phase_x: float | Tensor = 0.0,
    factor: Anchored = _PIXELATE[2]["factor"], *, range_mode: str = "clip",
) -> Tensor:
    """Pixelation as ImageNet-C: shrink by ``factor`` with a box filter, enlarge back.

    ImageNet-C enlarges with PIL's box filter too and always starts the block grid at the
    top-left corner; here the enlargement is nearest-neighbour (the output is constant on each
    block) and the grid may start at a fraction of a block: :class:`Pixelate` draws that phase
    per image, so that the damage does not hinge on how a pattern happens to line up with the
    blocks (on a periodic pattern in phase with the grid a stronger reduction can do less
    harm than a milder one).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        phase_y, phase_x: grid offset in blocks, in [0, 1), a float or (B,) tensor.
        factor: size of the reduced image relative to the input, in (0, 1]; a number or
            ``(at 32, at 64, at 224 px)``.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, a phase outside [0, 1), or a bad ``factor``.
    """
    module = Pixelate(factor, range_mode)
    check_batch(images)
    params = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1).expand(len(images))
              for name, value in (("phase_y", phase_y), ("phase_x", phase_x))}
    for name, value in params.items():
        if value.numel() and (float(value.min()) < 0 or float(value.max()) >= 1):
            raise ValueError(f"{name} must be in [0, 1); got {value.tolist()}")
    return run_corruption(images, module.core, range_mode=range_mode, params=params)


@DEGRADATIONS.register("pixelate")
class Pixelate(Degradation):
    """Box down, nearest up by ``factor``; see :func:`pixelate`.

    Drawn parameters ``phase_y``, ``phase_x`` (B,) float32, U[0, 1): where the block grid
    starts, in blocks.
    """

    severities = _PIXELATE
    family = "resolution"

    def __init__(self, factor: Anchored = _PIXELATE[2]["factor"],
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.factor = check_anchored("factor", factor, high=1.0, positive=True)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        phase = torch.rand(2, batch_size, generator=generator)
        return {"phase_y": phase[0], "phase_x": phase[1]}

    def core(self, x: Tensor, words: object, out: Tensor, phase_y: Tensor,
             phase_x: Tensor) -> Tensor:
        return pixelate_core(x, out, at_side(self.factor, image_side(x)), phase_y, phase_x)


# --------------------------------------------------------------------------------------- JPEG


def jpeg_core(x: Tensor, out: Tensor, quality: int) -> Tensor:
    """Encode and decode each image with OpenCV's JPEG codec at ``quality`` (per image, on the
    CPU, images spread over torch's thread count: 8-bit rounding, RGB as OpenCV's BGR, gray as
    one plane; default 4:2:0 chroma).

    Per image and plane, ``cv2.convertScaleAbs`` rounds 255 x to 8 bits (half to even, as
    ``torch.round``; x >= 0 so its absolute value changes nothing) and ``cv2.merge`` /
    ``cv2.split`` put the planes in and out of the codec's BGR order, so no whole-batch
    float, permute or colour-conversion pass is made (bytes as those passes gave).
    """
    b, c = x.shape[:2]
    planes = x.detach().to("cpu", torch.float32).contiguous().numpy()  # (B, C, H, W)
    direct = out.device.type == "cpu" and out.dtype == torch.float32  # else 8 bits, then out
    decoded = out.numpy() if direct else np.empty(planes.shape, np.uint8)
    flags = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    scale = np.float32(255)

    def work(start: int, stop: int) -> None:  # OpenCV releases the GIL: images in threads
        for i in range(start, stop):
            pixels = [cv2.convertScaleAbs(plane, alpha=255.0) for plane in planes[i]]
            image = pixels[0] if c == 1 else cv2.merge(pixels[::-1])  # RGB -> BGR
            ok, buffer = cv2.imencode(".jpg", image, flags)
            if not ok:
                raise RuntimeError(f"OpenCV could not encode image {i} as JPEG")
            back = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            back_planes = [back] if c == 1 else cv2.split(back)[::-1]  # BGR -> RGB
            for k, plane in enumerate(back_planes):
                if direct:
                    np.divide(plane, scale, out=decoded[i, k], dtype=np.float32)
                else:
                    decoded[i, k] = plane

    map_ranges(work, b)
    if not direct:  # float64 or another device: divided in out's dtype, as before
        out.copy_(torch.from_numpy(decoded)).div_(255.0)
    return out


def jpeg(
    images: Tensor, quality: Anchored = _JPEG[2]["quality"], *, range_mode: str = "clip",
) -> Tensor:
    """JPEG compression as ImageNet-C, through OpenCV (``cv2.imencode`` / ``cv2.imdecode``).

    One image at a time on the CPU (CUDA input is copied there and back): the codec is the
    cost. Values are rounded to 8 bits first, as any JPEG file is.

    Args:
        images: (B, C, H, W) float in [0, 1], gray or RGB, any device.
        quality: JPEG quality in [1, 100] (rounded at the image size); a number or
            ``(at 32, at 64, at 224 px)``.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1] (multiples of 1/255), same device and dtype as ``images``.
    """
    quality = check_anchored("quality", quality, low=1.0, high=100.0)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return jpeg_core(x, out, round(at_side(quality, image_side(x))))

    return run_corruption(images, core, range_mode=range_mode, in_range=True)


@DEGRADATIONS.register("jpeg")
class Jpeg(Degradation):
    """JPEG at ``quality``; see :func:`jpeg`."""

    severities = _JPEG
    family = "digital"

    def __init__(self, quality: Anchored = _JPEG[2]["quality"],
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.quality = check_anchored("quality", quality, low=1.0, high=100.0)
        self.range_mode = check_range_mode(range_mode)

    @property
    def output_in_range(self) -> bool:
        return True

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return jpeg_core(x, out, round(at_side(self.quality, image_side(x))))


# ------------------------------------------------------------------------------ pointwise


def contrast_core(x: Tensor, out: Tensor, factor: float) -> Tensor:
    """out = (x - m) factor + m, m the mean of each image's channel, computed in one pass over
    the pixels as ``m (1 - factor) + factor x`` (within float rounding of the first form)."""
    bias = x.mean(dim=(-2, -1), keepdim=True).mul_(1.0 - factor)
    return torch.add(bias, x, alpha=factor, out=out)


def brightness_core(x: Tensor, out: Tensor, shift: float) -> Tensor:
    """Raise HSV value V = max over channels by ``shift`` (clipped to [0, 1]), hue and
    saturation kept: RGB is scaled by V' / V (a black pixel becomes gray V'); gray: x + shift."""
    if x.shape[1] == 1:
        return torch.add(x, shift, out=out)
    value = x.amax(dim=1, keepdim=True)
    target = (value + shift).clamp_(0.0, 1.0)
    lit = value > 0
    ratio = target / torch.where(lit, value, torch.ones_like(value))
    black = torch.where(lit, torch.zeros_like(target), target)  # 0 * ratio + V' there
    return torch.addcmul(black, x, ratio, out=out)  # one pass over the channels


def saturate_core(x: Tensor, out: Tensor, scale: float, offset: float) -> Tensor:
    """HSV saturation S' = clip(S scale + offset, 0, 1), hue and value kept (skimage's
    conventions: a gray pixel has hue 0, red); gray images are copied unchanged."""
    if x.shape[1] == 1:
        return out.copy_(x)
    value = x.amax(dim=1, keepdim=True)
    delta = value - x.amin(dim=1, keepdim=True)
    colored = delta > 0
    sat = delta / torch.where(value > 0, value, torch.ones_like(value))
    new_sat = (sat * scale + offset).clamp_(0.0, 1.0)
    # each channel is V (1 - S' t) with t = (V - channel) / delta fixed by the hue, that is
    # g channel + (1 - g) V with g = S' V / delta: one pass over the channels
    gain = torch.where(colored, new_sat * value / torch.where(colored, delta, 1.0), 0.0)
    torch.addcmul(value * (1 - gain), x, gain, out=out)
    if offset > 0:  # a gray pixel (delta 0) has hue 0, red: R = V, G = B = V (1 - S')
        out[:, 1:] = torch.where(colored, out[:, 1:], value * (1 - new_sat))
    return out


def contrast(
    images: Tensor, factor: Anchored = _CONTRAST[2]["factor"], *, range_mode: str = "clip",
) -> Tensor:
    """Contrast reduction as ImageNet-C: ``(x - mean) factor + mean`` per image and channel.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        factor: in [0, 1] (0: a flat image); a number or ``(at 32, at 64, at 224 px)``.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype; the standard deviation of each
        channel is multiplied by ``factor``.
    """
    factor = check_anchored("factor", factor, high=1.0)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return contrast_core(x, out, at_side(factor, image_side(x)))

    return run_corruption(images, core, range_mode=range_mode)


def brightness(
    images: Tensor, shift: Anchored = _BRIGHTNESS[2]["shift"], *, range_mode: str = "clip",
) -> Tensor:
    """Brightness as ImageNet-C: HSV value V + ``shift``, clipped (skimage's HSV round trip,
    in closed form). On gray images V is the intensity: ``x + shift``, clipped.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        shift: added to V, in [-1, 1]; a number or ``(at 32, at 64, at 224 px)``.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    shift = check_anchored("shift", shift, low=-1.0, high=1.0)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        return brightness_core(x, out, at_side(shift, image_side(x)))

    return run_corruption(images, core, range_mode=range_mode)


def saturate(
    images: Tensor, scale: Anchored = _SATURATE[2]["scale"],
    offset: Anchored = _SATURATE[2]["offset"], *, range_mode: str = "clip",
) -> Tensor:
    """Saturation change as ImageNet-C: HSV S' = clip(S scale + offset, 0, 1).

    RGB only in effect: a gray image has no saturation, and is returned unchanged (a
    documented no-op, not an error, so gray data sets run the whole suite).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        scale: factor on S, >= 0 (< 1 desaturates).
        offset: added to S, in [0, 1] (gray pixels become reddish, as skimage gives them hue
            0).
        range_mode: ``"clip"`` (default) or ``"minmax"``.

        Both are numbers or ``(at 32, at 64, at 224 px)`` triples.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    scale = check_anchored("scale", scale)
    offset = check_anchored("offset", offset, high=1.0)

    def core(x: Tensor, words: object, out: Tensor) -> Tensor:
        side = image_side(x)
        return saturate_core(x, out, at_side(scale, side), at_side(offset, side))

    return run_corruption(images, core, range_mode=range_mode)


@DEGRADATIONS.register("contrast")
class Contrast(Degradation):
    """``(x - mean) factor + mean``; see :func:`contrast`."""

    severities = _CONTRAST
    family = "digital"

    def __init__(self, factor: Anchored = _CONTRAST[2]["factor"],
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.factor = check_anchored("factor", factor, high=1.0)
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return contrast_core(x, out, at_side(self.factor, image_side(x)))


@DEGRADATIONS.register("brightness")
class Brightness(Degradation):
    """HSV value + ``shift``; see :func:`brightness`."""

    severities = _BRIGHTNESS
    family = "weather"

    def __init__(self, shift: Anchored = _BRIGHTNESS[2]["shift"],
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.shift = check_anchored("shift", shift, low=-1.0, high=1.0)
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return brightness_core(x, out, at_side(self.shift, image_side(x)))


@DEGRADATIONS.register("saturate")
class Saturate(Degradation):
    """HSV saturation ``S scale + offset``; see :func:`saturate`. Gray images: unchanged."""

    severities = _SATURATE
    family = "digital"
    gray_is_identity = True

    def __init__(
        self, scale: Anchored = _SATURATE[2]["scale"],
        offset: Anchored = _SATURATE[2]["offset"], range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.scale = check_anchored("scale", scale)
        self.offset = check_anchored("offset", offset, high=1.0)
        self.range_mode = check_range_mode(range_mode)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        side = image_side(x)
        return saturate_core(x, out, at_side(self.scale, side), at_side(self.offset, side))
