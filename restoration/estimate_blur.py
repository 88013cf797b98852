"""Blind estimation of a uniform linear motion blur from the blurred image alone.

The study's blur (``degradations.motion_blur``) multiplies the spectrum by
``H(f) = sinc(f . d) exp(-j pi f . d)``, where ``f = (u / W, v / H)`` is the frequency in cycles
per pixel and ``d = (a W, b H)`` the displacement in pixels. Its magnitude ``|sinc(f . d)|``
vanishes on the lines ``f . d = k`` (k = +-1, +-2, ...): parallel lines perpendicular to ``d``,
``1 / |d|`` apart. A blur of at least about 2 px puts such lines inside the spectrum, and they
are what this estimator looks for:

1. the log magnitude spectrum of the (gray) image, whitened by subtracting its mean over rings of
   equal radius (the image's own fall-off with frequency is roughly isotropic; the blur's is
   not) and normalised to unit norm;
2. its correlation with the equally whitened model ``log(|sinc(f . d)| + delta)`` for every
   candidate displacement ``d`` of a coarse grid (one matrix product for the whole batch),
   then on a fine grid around each image's best candidate;
3. the best candidate is the estimate; its correlation (the ``score``, in [-1, 1]) says how much
   the spectrum looks like a line blur at all, which is how a caller tells blurred images from
   sharp ones (``restoration.estimate`` thresholds it).

The sign of ``d`` is not observable: ``|H|`` is even in ``d``, and a blur by ``d`` equals the blur
by ``-d`` followed by a shift by ``d``, which a single image cannot reveal. The estimate is
reported in the canonical half plane ``b > 0`` (or ``b == 0`` and ``a >= 0``): angle in
[0, 180) degrees, 90 = downwards. How a restorer copes: ``WienerDeblur`` given the estimated
``a, b`` divides by the study's causal ``H``; with the opposite sign, the deconvolved image is
the sharp image circularly shifted by ``d`` (``H(-d) = H(d) exp(2 pi j f . d)``), a translation
of a few pixels that a retrieval network with global pooling mostly ignores. A restorer that must
not translate can deconvolve with the zero-phase ``|H|`` (shift ``d / 2``) or try both signs and
keep the one closer to the degraded image.

Blurs shorter than about 2 px have no zero line inside the spectrum: they are a mild
anisotropic low-pass that the score cannot tell from a sharp image's own anisotropy, so they are
usually reported with a low score (read as "no blur"). Added noise fills the zero lines and
lowers the score; block-copied low-resolution images look like a two-axis box blur (they are
recognised first by ``restoration.estimate_resolution``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustret.core.checks import check_images

RING_BINS = 16
"""Rings of equal frequency radius whose mean log magnitude is subtracted (the whitening)."""
SINC_FLOOR = 0.05
"""``delta`` of the model ``log(|sinc| + delta)``: how deep (and how wide) a zero line is."""
COARSE_STEP = 0.5
"""Spacing of the coarse candidate grid, pixels."""
FINE_STEPS = (0.2, 0.05)
"""Spacings of the two 5 x 5 grids searched around each image's best candidate, pixels."""
CHUNK = 1024
"""Candidates whose models are built at once (bounds the memory to CHUNK x H x (W/2 + 1))."""


@dataclass(frozen=True)
class BlurEstimate:
    """Per-image estimate of a linear motion blur; every field a (B,) float32 tensor.

    Attributes:
        a: horizontal displacement in image widths (the study's ``a``), canonical sign.
        b: vertical displacement in image heights (the study's ``b``), ``b >= 0``.
        length: ``|(a W, b H)|``, pixels.
        angle: direction in degrees in [0, 180) (0 = right, 90 = down; the sign is unobservable).
        score: correlation of the whitened log spectrum with the best blur model, in [-1, 1]:
            low for sharp images, high for blurs with a zero line (distributions in
            docs/estimation.md).
    """

    a: Tensor
    b: Tensor
    length: Tensor
    angle: Tensor
    score: Tensor


class _Spectrum:
    """The rfft2 frequency grid of an H x W image and its ring whitening, on one device."""

    def __init__(self, height: int, width: int, device: torch.device) -> None:
        fy = torch.fft.fftfreq(height, device=device)[:, None]
        fx = torch.fft.rfftfreq(width, device=device)[None, :]
        self.fx = fx.expand(height, -1).reshape(-1)  # (F,), cycles per pixel
        self.fy = fy.expand(-1, fx.shape[1]).reshape(-1)  # (F,)
        radius = torch.sqrt(self.fx**2 + self.fy**2)
        self.weight = (radius > 1.5 / max(height, width)).float()  # (F,), DC and lowest out
        ring = (radius / radius.max() * RING_BINS).floor().clamp(max=RING_BINS - 1).long()
        members = torch.nn.functional.one_hot(ring, RING_BINS).float() * self.weight[:, None]
        self.members = members.T.contiguous()  # (R, F), which ring each frequency is in
        self.ring_mean = members / members.sum(dim=0).clamp(min=1)  # (F, R): weighted means

    def whiten(self, values: Tensor) -> Tensor:
        """(N, F) -> (N, F): minus each ring's weighted mean, times the weight, unit norm."""
        out = (values - (values @ self.ring_mean) @ self.members) * self.weight
        return out / out.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def models(self, dx: Tensor, dy: Tensor) -> Tensor:
        """Whitened ``log(|sinc(f . d)| + delta)`` for displacements (K,) -> (K, F)."""
        phase = dx[:, None] * self.fx + dy[:, None] * self.fy
        return self.whiten(torch.log(torch.sinc(phase).abs() + SINC_FLOOR))


def log_spectrum(images: Tensor) -> Tensor:
    """Log magnitude of the orthonormal rfft2 of each image's channel mean.

    Args:
        images: (B, C, H, W) float.

    Returns:
        (B, H * (W // 2 + 1)) float32.
    """
    gray = images.float().mean(dim=1)  # (B, H, W)
    magnitude = torch.fft.rfft2(gray, norm="ortho").abs()
    return torch.log(magnitude + 1e-4).flatten(1)


def _coarse_grid(max_length: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """Canonical-half-plane displacements (dy > 0, or dy == 0 and dx > 0) up to ``max_length``."""
    steps = torch.arange(-max_length, max_length + 1e-9, COARSE_STEP, device=device)
    dx, dy = (t.flatten() for t in torch.meshgrid(steps, steps, indexing="xy"))
    keep = ((dy > 1e-9) | ((dy.abs() <= 1e-9) & (dx > 1e-9))) & (dx**2 + dy**2 <= max_length**2)
    return dx[keep], dy[keep]


def _best_coarse(spectra: Tensor, grid: _Spectrum, dx: Tensor, dy: Tensor) -> Tensor:
    """(B, F) whitened spectra -> (B,) index of the best of the K candidates (chunked)."""
    best_score = torch.full((spectra.shape[0],), -2.0, device=spectra.device)
    best_index = torch.zeros(spectra.shape[0], dtype=torch.long, device=spectra.device)
    for start in range(0, dx.numel(), CHUNK):
        scores = spectra @ grid.models(dx[start:start + CHUNK], dy[start:start + CHUNK]).T
        value, index = scores.max(dim=1)
        better = value > best_score
        best_score = torch.where(better, value, best_score)
        best_index = torch.where(better, index + start, best_index)
    return best_index


def _refine(spectra: Tensor, grid: _Spectrum, dx: Tensor, dy: Tensor,
            step: float) -> tuple[Tensor, Tensor, Tensor]:
    """Search the 5 x 5 grid of spacing ``step`` centred on each image's ``(dx, dy)`` (B,).

    Returns:
        The best (dx, dy, score), each (B,).
    """
    offsets = torch.arange(-2, 3, device=spectra.device, dtype=torch.float32) * step
    ox, oy = (t.flatten() for t in torch.meshgrid(offsets, offsets, indexing="xy"))  # (K,)
    k = ox.numel()
    per_chunk = max(1, CHUNK // k)
    out_x, out_y, out_s = [], [], []
    for start in range(0, spectra.shape[0], per_chunk):
        cx = dx[start:start + per_chunk, None] + ox  # (b, K)
        cy = dy[start:start + per_chunk, None] + oy
        models = grid.models(cx.reshape(-1), cy.reshape(-1)).view(cx.shape[0], k, -1)
        scores = torch.einsum("bkf,bf->bk", models, spectra[start:start + per_chunk])
        value, index = scores.max(dim=1)
        out_x.append(cx.gather(1, index[:, None])[:, 0])
        out_y.append(cy.gather(1, index[:, None])[:, 0])
        out_s.append(value)
    return torch.cat(out_x), torch.cat(out_y), torch.cat(out_s)


def estimate_motion_blur(images: Tensor, *, max_length: float = 0.4) -> BlurEstimate:
    """Estimate each image's linear motion blur (displacement, length, angle) and a score.

    Args:
        images: (B, C, H, W) float in [0, 1], any device (color images are averaged to gray).
        max_length: longest blur searched, as a fraction of the larger image side (0.4: 25.6 px
            at 64 px; the study's severity 5 draws a longer one for about 0.1% of images).

    Returns:
        :class:`BlurEstimate` of (B,) float32 tensors on the images' device.

    Raises:
        TypeError, ValueError: ``images`` break the image contract, are smaller than 8 px, or
            ``max_length`` is not in (0, 1].
    """
    check_images(images, "images")
    height, width = images.shape[-2:]
    if min(height, width) < 8:
        raise ValueError(f"blur estimation needs images of at least 8 x 8 px; got shape "
                         f"{tuple(images.shape)}")
    if not 0 < max_length <= 1:
        raise ValueError(f"max_length must be a fraction of the image side in (0, 1]; "
                         f"got {max_length}")
    device = images.device
    if images.shape[0] == 0:
        empty = torch.zeros(0, device=device)
        return BlurEstimate(empty, empty, empty, empty, empty)
    grid = _Spectrum(height, width, device)
    spectra = grid.whiten(log_spectrum(images))  # (B, F), unit norm
    dx, dy = _coarse_grid(max(1.0, max_length * max(height, width)), device)
    best = _best_coarse(spectra, grid, dx, dy)
    dx, dy = dx[best], dy[best]
    for step in FINE_STEPS:
        dx, dy, score = _refine(spectra, grid, dx, dy, step)
    flip = (dy < 0) | ((dy == 0) & (dx < 0))  # canonical half plane
    dx, dy = torch.where(flip, -dx, dx), torch.where(flip, -dy, dy)
    angle = torch.rad2deg(torch.atan2(dy, dx)).remainder(180.0)
    return BlurEstimate(a=dx / width, b=dy / height, length=torch.sqrt(dx**2 + dy**2),
                        angle=angle, score=score)


def blur_endpoint_error(a: Tensor, b: Tensor, true_a: Tensor, true_b: Tensor,
                        size: tuple[int, int]) -> Tensor:
    """Distance in pixels between estimated and true displacements, up to the unobservable sign.

    Args:
        a, b, true_a, true_b: (B,) displacements in image widths / heights.
        size: ``(H, W)`` of the images.

    Returns:
        (B,) float: ``min(|d - d_true|, |d + d_true|)`` with ``d = (a W, b H)``.
    """
    height, width = size
    dx, dy = a * width, b * height
    tx, ty = true_a * width, true_b * height
    same = torch.hypot(dx - tx, dy - ty)
    opposite = torch.hypot(dx + tx, dy + ty)
    return torch.minimum(same, opposite)


def angle_difference(angle: Tensor, true_angle: Tensor) -> Tensor:
    """Absolute difference of two line orientations in degrees, modulo 180: in [0, 90]."""
    diff = (angle - true_angle).remainder(180.0)
    return torch.minimum(diff, 180.0 - diff)


__all__ = ["BlurEstimate", "angle_difference", "blur_endpoint_error", "estimate_motion_blur",
           "log_spectrum"]
