"""Classical restoration baselines behind the restorer interface, one per degradation.

========================  ===================  ==============================================
degradation               baseline             what it does
========================  ===================  ==============================================
``salt_pepper``           ``median``           3x3 median filter (batched torch, reflect border)
``gaussian_noise``        ``nlm``              OpenCV non-local means on uint8, per image/channel
``speckle``               ``bilateral``        OpenCV bilateral filter on float32, per image/channel
``noise`` (mixture)       ``median``           the mixture's impulse part dominates its error
``motion_blur``           ``wiener``           Wiener deconvolution with the known blur transfer
``lowres``                ``bicubic``          block-average back to low resolution, bicubic up
========================  ===================  ==============================================

:func:`classical_for` returns that mapping. Every baseline is an :class:`~restoration.base.Restorer`
(no parameters) mapping ``(B, C, H, W)`` in ``[0, 1]`` to the same shape and range.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from restoration.base import Restorer

log = logging.getLogger(__name__)

CLASSICAL_FOR: dict[str, str] = {
    "salt_pepper": "median",
    "gaussian_noise": "nlm",
    "speckle": "bilateral",
    "noise": "median",
    "motion_blur": "wiener",
    "lowres": "bicubic",
}


def classical_for(degradation: str) -> str:
    """The classical baseline that answers ``degradation`` (see the module table).

    Raises:
        KeyError: unknown degradation name; the message lists the known ones.
    """
    try:
        return CLASSICAL_FOR[degradation]
    except KeyError:
        raise KeyError(f"no classical baseline for degradation {degradation!r}; "
                       f"known: {', '.join(sorted(CLASSICAL_FOR))}") from None


# ---------------------------------------------------------------- median (salt and pepper)
def median_filter(images: Tensor, size: int = 3) -> Tensor:
    """``size x size`` median filter with reflect borders, batched in torch.

    Args:
        images: (B, C, H, W) float.
        size: odd window side.
    Returns:
        (B, C, H, W), same dtype and device.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size must be odd and >= 1, got {size}")
    if size == 1:
        return images.clone()
    b, c, h, w = images.shape
    r = size // 2
    mode = "reflect" if min(h, w) > r else "replicate"
    padded = F.pad(images, (r, r, r, r), mode=mode)
    patches = F.unfold(padded, size)  # (B, C * size^2, H * W)
    patches = patches.view(b, c, size * size, h, w)
    return patches.median(dim=2).values


class MedianFilter(Restorer):
    """3x3 median filter: removes isolated salt-and-pepper pixels.

    Args:
        size: odd window side (3 = the classical choice for 10% impulse noise).
    """

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        self.size = size

    def restore_raw(self, images: Tensor) -> Tensor:
        return median_filter(images, self.size)


# ---------------------------------------------------------------- OpenCV per-image filters
def _per_plane(images: Tensor, fn, *, as_uint8: bool) -> Tensor:
    """Apply a numpy (H, W) -> (H, W) filter to every image plane; returns the input's dtype/device."""
    planes = images.detach().to("cpu", torch.float32).numpy()
    b, c, h, w = planes.shape
    out = np.empty_like(planes)
    for i in range(b):
        for j in range(c):
            plane = planes[i, j]
            if as_uint8:
                u8 = np.clip(np.rint(plane * 255.0), 0, 255).astype(np.uint8)
                out[i, j] = fn(u8).astype(np.float32) / 255.0
            else:
                out[i, j] = fn(np.ascontiguousarray(plane))
    return torch.from_numpy(out).to(device=images.device, dtype=images.dtype)


class NonLocalMeans(Restorer):
    """OpenCV ``fastNlMeansDenoising`` on 8-bit planes (Gaussian noise).

    Args:
        h: filter strength on the 0..255 scale (about the noise std 0.1 * 255 = 25.5 for the
            study's Gaussian noise; 20 measured best on the synthetic set, see docs/restoration.md).
        template: template window side (odd).
        search: search window side (odd).
    """

    def __init__(self, h: float = 20.0, template: int = 7, search: int = 21) -> None:
        super().__init__()
        self.h, self.template, self.search = float(h), int(template), int(search)

    def restore_raw(self, images: Tensor) -> Tensor:
        return _per_plane(images, lambda u8: cv2.fastNlMeansDenoising(u8, None, self.h, self.template, self.search),
                          as_uint8=True)


class BilateralFilter(Restorer):
    """OpenCV bilateral filter on float32 planes (speckle and mild Gaussian noise).

    Args:
        diameter: neighbourhood diameter in pixels.
        sigma_color: range sigma on the [0, 1] intensity scale.
        sigma_space: spatial sigma in pixels.
    """

    def __init__(self, diameter: int = 5, sigma_color: float = 0.1, sigma_space: float = 1.5) -> None:
        super().__init__()
        self.diameter, self.sigma_color, self.sigma_space = int(diameter), float(sigma_color), float(sigma_space)

    def restore_raw(self, images: Tensor) -> Tensor:
        return _per_plane(images, lambda p: cv2.bilateralFilter(p, self.diameter, self.sigma_color, self.sigma_space),
                          as_uint8=False)


# ---------------------------------------------------------------- Wiener (motion blur)
DEFAULT_BLUR = {"a": 0.1, "b": 0.0, "t": 1.0}
"""Blur assumed when the caller gives none (documented default): a horizontal smear of 10% of the
image width (``a`` / ``b`` are displacements in image widths / heights, as in ``degradations``)."""


def blur_from_length(length: Tensor | float, angle: Tensor | float, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``(a, b)`` of a blur of ``length`` pixels at ``angle`` degrees (0 = right, 90 = down) on ``size=(H, W)``."""
    height, width = size
    rad = torch.deg2rad(torch.as_tensor(angle, dtype=torch.float32))
    length = torch.as_tensor(length, dtype=torch.float32)
    return length * torch.cos(rad) / width, length * torch.sin(rad) / height


def motion_blur_transfer(h: int, w: int, a: Tensor | float, b: Tensor | float, t: Tensor | float = 1.0,
                         *, device: torch.device | str = "cpu") -> Tensor:
    """The study's motion-blur transfer ``H = T sinc(u a + v b) exp(-j pi (u a + v b))``, full spectrum.

    Delegates to ``degradations.motion_blur_transfer``, so the Wiener filter inverts exactly the
    blur that was applied (``a`` / ``b`` are displacements in image widths / heights).

    Args:
        h, w: image size.
        a, b, t: floats or (B,) tensors (per image).
    Returns:
        (B or 1, 1, H, W) complex64 in ``torch.fft.fft2`` layout.
    """
    from degradations.motion_blur import motion_blur_transfer as degradation_transfer

    a_, b_, t_ = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (a, b, t))
    return degradation_transfer(h, w, a_, b_, t_ if t_.numel() > 1 else float(t_), half=False,
                                device=torch.device(device))


def wiener_deconvolve(images: Tensor, transfer: Tensor, k: float = 0.01) -> Tensor:
    """Wiener deconvolution ``F = conj(H) G / (|H|^2 + k)`` (circular, in the DFT domain).

    Args:
        images: (B, C, H, W) float, blurred.
        transfer: (B or 1, 1, H, W) complex blur transfer in ``torch.fft.fft2`` layout.
        k: noise-to-signal power ratio (regularisation), > 0.
    Returns:
        (B, C, H, W) float, unclamped.
    """
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    spectrum = torch.fft.fft2(images.to(torch.float32))
    hh = transfer.to(images.device)
    restored = torch.fft.ifft2(spectrum * hh.conj() / (hh.abs() ** 2 + k)).real
    return restored.to(images.dtype)


class WienerDeblur(Restorer):
    """Wiener deconvolution with a known motion blur.

    The blur is given at construction (``a``/``b`` or ``length``/``angle``; default
    :data:`DEFAULT_BLUR`) or per call, as floats or (B,) tensors, e.g. the parameters the
    degradation drew for each query.

    Args:
        a, b: displacement in image widths / heights.
        t: exposure T of the study's transfer function.
        length, angle: alternative to ``a``/``b``: blur length in pixels and angle in degrees.
        k: noise-to-signal ratio.
    """

    def __init__(self, a: float = DEFAULT_BLUR["a"], b: float = DEFAULT_BLUR["b"], t: float = DEFAULT_BLUR["t"],
                 length: float | None = None, angle: float | None = None, k: float = 0.01) -> None:
        super().__init__()
        self.a, self.b, self.t, self.k = float(a), float(b), float(t), float(k)
        self.length, self.angle = length, angle

    def _params(self, h: int, w: int, a, b, t, length, angle) -> tuple:
        if length is not None or angle is not None:
            return (*blur_from_length(0.0 if length is None else length, 0.0 if angle is None else angle, (h, w)),
                    self.t if t is None else t)
        if a is None and b is None and self.length is not None:
            return (*blur_from_length(self.length, self.angle or 0.0, (h, w)), self.t if t is None else t)
        return (self.a if a is None else a, self.b if b is None else b, self.t if t is None else t)

    def restore_raw(self, images: Tensor, a: Tensor | float | None = None, b: Tensor | float | None = None,
                    t: Tensor | float | None = None, length: Tensor | float | None = None,
                    angle: Tensor | float | None = None) -> Tensor:
        h, w = images.shape[-2:]
        pa, pb, pt = self._params(h, w, a, b, t, length, angle)
        return wiener_deconvolve(images, motion_blur_transfer(h, w, pa, pb, pt, device=images.device), self.k)

    def forward(self, images: Tensor, a: Tensor | float | None = None, b: Tensor | float | None = None,
                t: Tensor | float | None = None, length: Tensor | float | None = None,
                angle: Tensor | float | None = None) -> Tensor:
        """(B, C, H, W) in [0, 1] -> deblurred (B, C, H, W) in [0, 1]; blur parameters override per call."""
        return self.restore_raw(images, a, b, t, length, angle).clamp(0.0, 1.0)


# ---------------------------------------------------------------- bicubic (low resolution)
def bicubic_reupsample(images: Tensor, factor: int = 2) -> Tensor:
    """Average ``factor x factor`` blocks (undoing a nearest upscaling), then bicubic back up.

    Args:
        images: (B, C, H, W) float, a low-resolution image shown at full size.
        factor: the resolution reduction (2 or 4 for Haar levels 1 or 2).
    Returns:
        (B, C, H, W), unclamped.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return images.clone()
    h, w = images.shape[-2:]
    low = F.avg_pool2d(images, factor, ceil_mode=True)  # (B, C, ceil(H/f), ceil(W/f))
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)


class BicubicUpsample(Restorer):
    """Bicubic re-upsampling of the block-averaged image.

    Args:
        factor: the resolution reduction of the degradation (2 = one Haar level), used when
            the call gives none. ``degradations``' severity 3 mixes 1 and 2 levels; pass the
            per-image ``factor`` (or ``level``) it drew where known.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = int(factor)

    def restore_raw(self, images: Tensor, factor: Tensor | int | None = None,
                    level: Tensor | int | None = None) -> Tensor:
        if level is not None:
            factor = 2 ** torch.as_tensor(level).long()
        if factor is None or isinstance(factor, int):
            return bicubic_reupsample(images, self.factor if factor is None else factor)
        factor = torch.as_tensor(factor).reshape(-1).long()
        out = torch.empty_like(images)
        for f in factor.unique().tolist():  # one call per distinct factor
            sel = (factor == f).nonzero().flatten().to(images.device)
            out[sel] = bicubic_reupsample(images[sel], int(f))
        return out

    def forward(self, images: Tensor, factor: Tensor | int | None = None, level: Tensor | int | None = None) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H, W) in [0, 1]; ``factor`` / ``level`` may be (B,) per image."""
        return self.restore_raw(images, factor, level).clamp(0.0, 1.0)
