"""Classical restoration baselines behind the restorer interface.

=============  ====================================================  ====================
baseline       what it does                                          degradation params
=============  ====================================================  ====================
``median``     3x3 median filter (batched torch, reflect border)     none
``nlm``        OpenCV non-local means on uint8, per image/channel    none
``bilateral``  OpenCV bilateral filter on float32, per image/channel none
``wiener``     Wiener deconvolution with the known blur transfer     ``a``, ``b``
``bicubic``    block-average back to low resolution, bicubic up      ``level``
=============  ====================================================  ====================

Which baseline serves which degradation is policy, not restoration: see
``robustret.experiment.policy``. Every baseline is an :class:`~restoration.base.Restorer` (no
parameters) mapping ``(B, C, H, W)`` in ``[0, 1]`` to the same shape and range.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from degradations.motion_blur import blur_from_length
from degradations.motion_blur import motion_blur_transfer as degradation_transfer
from restoration.base import Restorer
from robustret.core.checks import check_choice, check_images

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- median (salt and pepper)
def median_filter(images: Tensor, size: int = 3) -> Tensor:
    """``size x size`` median filter with reflect borders, batched in torch.

    Args:
        images: (B, C, H, W) float in [0, 1].
        size: odd window side.
    Returns:
        (B, C, H, W), same dtype and device.
    Raises:
        ValueError: ``images`` break the image contract, or ``size`` is not odd and >= 1.
    """
    check_images(images, "images")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size must be odd and >= 1, got {size}")
    if size == 1:
        return images.clone()
    return window_values(images, size).median(dim=2).values


def window_values(images: Tensor, size: int) -> Tensor:
    """Every pixel's ``size x size`` window (odd ``size``), reflect border (replicate where the
    image is too small to reflect).

    Args:
        images: (B, C, H, W) float.
        size: odd window side.

    Returns:
        (B, C, size * size, H, W), the window's values in raster order.
    """
    b, c, h, w = images.shape
    r = size // 2
    mode = "reflect" if min(h, w) > r else "replicate"
    padded = F.pad(images, (r, r, r, r), mode=mode)
    return F.unfold(padded, size).view(b, c, size * size, h, w)  # unfold: (B, C * size^2, H * W)


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
def _per_plane(images: Tensor, fn: Callable[[np.ndarray], np.ndarray], *,
               as_uint8: bool) -> Tensor:
    """Apply a numpy (H, W) -> (H, W) filter to every image plane.

    Args:
        images: (B, C, H, W) float in [0, 1].
        fn: the per-plane filter (uint8 planes when ``as_uint8``, else float32).
        as_uint8: quantise each plane to 0..255 before ``fn`` and back after.
    Returns:
        (B, C, H, W) with the input's dtype and device.
    """
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
            study's Gaussian noise; 20 measured best on the synthetic set, see
            docs/restoration.md).
        template: template window side (odd).
        search: search window side (odd).
    """

    def __init__(self, h: float = 20.0, template: int = 7, search: int = 21) -> None:
        super().__init__()
        self.h, self.template, self.search = float(h), int(template), int(search)

    def _denoise(self, u8: np.ndarray) -> np.ndarray:
        return cv2.fastNlMeansDenoising(u8, None, self.h, self.template, self.search)

    def restore_raw(self, images: Tensor) -> Tensor:
        return _per_plane(images, self._denoise, as_uint8=True)


class BilateralFilter(Restorer):
    """OpenCV bilateral filter on float32 planes (speckle and mild Gaussian noise).

    Args:
        diameter: neighbourhood diameter in pixels.
        sigma_color: range sigma on the [0, 1] intensity scale.
        sigma_space: spatial sigma in pixels.
    """

    def __init__(self, diameter: int = 5, sigma_color: float = 0.1,
                 sigma_space: float = 1.5) -> None:
        super().__init__()
        self.diameter = int(diameter)
        self.sigma_color, self.sigma_space = float(sigma_color), float(sigma_space)

    def _filter(self, plane: np.ndarray) -> np.ndarray:
        return cv2.bilateralFilter(plane, self.diameter, self.sigma_color, self.sigma_space)

    def restore_raw(self, images: Tensor) -> Tensor:
        return _per_plane(images, self._filter, as_uint8=False)


# ---------------------------------------------------------------- Wiener (motion blur)
DEFAULT_BLUR = {"a": 0.1, "b": 0.0, "t": 1.0}
"""Blur assumed when the caller gives none (documented default): a horizontal smear of 10% of
the image width (``a`` / ``b`` are displacements in image widths / heights, as in
``degradations``)."""


def motion_blur_transfer(h: int, w: int, a: Tensor | float, b: Tensor | float,
                         t: Tensor | float = 1.0, *,
                         device: torch.device | str = "cpu") -> Tensor:
    """The study's motion-blur transfer ``H = T sinc(u a + v b) exp(-j pi (u a + v b))``.

    Delegates to ``degradations.motion_blur_transfer`` (imported on first call), so the Wiener
    filter inverts exactly the blur that was applied (``a`` / ``b`` are displacements in image
    widths / heights).

    Args:
        h: image height.
        w: image width.
        a: horizontal displacement, a float or (B,) tensor.
        b: vertical displacement, a float or (B,) tensor.
        t: exposure, a float or (B,) tensor.
        device: where to build the transfer.
    Returns:
        (B or 1, 1, H, W) complex64, the full spectrum in ``torch.fft.fft2`` layout.
    """
    a_, b_, t_ = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (a, b, t))
    return degradation_transfer(h, w, a_, b_, t_ if t_.numel() > 1 else float(t_), half=False,
                                device=torch.device(device))


#: ``WienerDeblur(phase=...)``: invert the study's transfer with its phase, or its magnitude only
WIENER_PHASES = ("study", "zero")


def zero_phase_transfer(h: int, w: int, a: float | Tensor, b: float | Tensor,
                        t: float | Tensor = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """The study's blur transfer without its linear phase: ``T sinc(u a + v b)``, the transfer
    of a line blur centred on the pixel; even in ``(a, b)``, so the blur's sign does not
    matter.

    Args:
        h, w: image size.
        a, b: displacement in image widths / heights, a float or (B,) tensor.
        t: exposure, a float or (B,) tensor.
        device: where to build the transfer.
    Returns:
        (B or 1, 1, H, W) complex64 (real values), the full spectrum in ``torch.fft.fft2``
        layout.
    """
    a_, b_, t_ = (torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1, 1, 1, 1)
                  for v in (a, b, t))
    u = torch.fft.fftfreq(w, 1.0 / w, device=device).view(1, 1, 1, w)
    v = torch.fft.fftfreq(h, 1.0 / h, device=device).view(1, 1, h, 1)
    return (t_ * torch.sinc(u * a_ + v * b_)).to(torch.complex64)


def wiener_deconvolve(images: Tensor, transfer: Tensor, k: float = 0.01) -> Tensor:
    """Wiener deconvolution ``F = conj(H) G / (|H|^2 + k)`` (circular, in the DFT domain).

    Args:
        images: (B, C, H, W) float in [0, 1], blurred.
        transfer: (B or 1, 1, H, W) complex blur transfer in ``torch.fft.fft2`` layout.
        k: noise-to-signal power ratio (regularisation), > 0.
    Returns:
        (B, C, H, W) float, unclamped, the dtype of ``images`` (computed in float32).
    Raises:
        ValueError: ``images`` break the image contract, or ``k <= 0``.
    """
    check_images(images, "images")
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    spectrum = torch.fft.fft2(images.to(torch.float32))
    hh = transfer.to(images.device)
    restored = torch.fft.ifft2(spectrum * hh.conj() / (hh.abs() ** 2 + k)).real
    return restored.to(images.dtype)


class WienerDeblur(Restorer):
    """Wiener deconvolution of a motion blur.

    With the degradation's drawn ``a`` and ``b`` in ``params`` (the "known blur" case) each
    image is deconvolved with its own blur. Without them the blur given at construction is
    assumed for every image (``a``/``b`` or ``length``/``angle``; default
    :data:`DEFAULT_BLUR`), which only helps where the real blur is close to it. ``a`` without
    ``b`` (or the reverse) is an error: they are one displacement.

    Args:
        a: assumed horizontal displacement in image widths.
        b: assumed vertical displacement in image heights.
        t: exposure T of the study's transfer function (not drawn by the degradation).
        length: alternative to ``a``/``b``: assumed blur length in pixels (None: use a, b).
        angle: direction of ``length`` in degrees (0 = right, 90 = down).
        k: noise-to-signal ratio.
        phase: ``"study"`` inverts the study's transfer, linear phase included (the blurred
            image is displaced by half the blur, and deconvolving puts it back); ``"zero"``
            inverts only its magnitude, a blur centred on the pixel: the sign of ``(a, b)``
            then does not matter, which suits an *estimated* blur, whose sign an image cannot
            show (the result stays displaced by half the blur, whichever the true sign; a
            wrong sign with ``"study"`` displaces it by the whole blur).
    """

    uses_params = ("a", "b")

    def __init__(self, a: float = DEFAULT_BLUR["a"], b: float = DEFAULT_BLUR["b"],
                 t: float = DEFAULT_BLUR["t"], length: float | None = None,
                 angle: float | None = None, k: float = 0.01, phase: str = "study") -> None:
        super().__init__()
        self.a, self.b, self.t, self.k = float(a), float(b), float(t), float(k)
        self.length, self.angle = length, angle
        self.phase = check_choice(phase, WIENER_PHASES, "phase")

    def _assumed_blur(self, h: int, w: int) -> tuple[Tensor | float, Tensor | float]:
        if self.length is not None:
            return blur_from_length(float(self.length), float(self.angle or 0.0), (h, w))
        return self.a, self.b

    def restore_raw(self, images: Tensor, a: Tensor | float | None = None,
                    b: Tensor | float | None = None) -> Tensor:
        """Deconvolve ``images`` (B, C, H, W) with blur ``a``, ``b`` (B,) or the assumed one."""
        if (a is None) != (b is None):
            raise ValueError("wiener needs both blur parameters a and b (or neither, for the "
                             f"assumed blur); got only {'a' if b is None else 'b'}")
        h, w = images.shape[-2:]
        if a is None:
            a, b = self._assumed_blur(h, w)
        if self.phase == "zero":
            transfer = zero_phase_transfer(h, w, a, b, self.t, device=images.device)
        else:
            transfer = motion_blur_transfer(h, w, a, b, self.t, device=images.device)
        return wiener_deconvolve(images, transfer, self.k)


# ---------------------------------------------------------------- bicubic (low resolution)
def bicubic_reupsample(images: Tensor, factor: int = 2) -> Tensor:
    """Average ``factor x factor`` blocks (undoing a nearest upscaling), then bicubic back up.

    Args:
        images: (B, C, H, W) float in [0, 1], a low-resolution image shown at full size.
        factor: the resolution reduction (2 or 4 for Haar levels 1 or 2).
    Returns:
        (B, C, H, W), unclamped, same dtype.
    Raises:
        ValueError: ``images`` break the image contract, or ``factor < 1``.
    """
    check_images(images, "images")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return images.clone()
    h, w = images.shape[-2:]
    low = F.avg_pool2d(images, factor, ceil_mode=True)  # (B, C, ceil(H/f), ceil(W/f))
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)


class BicubicUpsample(Restorer):
    """Bicubic re-upsampling of the block-averaged image.

    With the degradation's drawn ``level`` in ``params`` (Haar levels per image; severity 3
    mixes 1 and 2) each image uses the factor ``2 ** level``; without it every image uses
    ``factor``.

    Args:
        factor: the resolution reduction assumed when ``level`` is not given (2 = one level).
    """

    uses_params = ("level",)

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = int(factor)

    def restore_raw(self, images: Tensor, level: Tensor | int | None = None) -> Tensor:
        """Re-upsample ``images`` (B, C, H, W) by ``2 ** level`` (B,) or by ``factor``."""
        if level is None:
            return bicubic_reupsample(images, self.factor)
        factor = (2 ** torch.as_tensor(level).long()).reshape(-1)
        if factor.numel() == 1:
            return bicubic_reupsample(images, int(factor))
        out = torch.empty_like(images)
        for f in factor.unique().tolist():  # one call per distinct factor
            sel = (factor == f).nonzero().flatten().to(images.device)
            out[sel] = bicubic_reupsample(images[sel], int(f))
        return out
