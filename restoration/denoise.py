"""Edge-preserving denoisers that need no training: total variation and a switching median.

- :func:`tv_denoise`: the Rudin-Osher-Fatemi (ROF) model, ``argmin_u ||u - f||^2 / 2 + weight
  * TV(u)`` with isotropic total variation, solved per image and channel by Chambolle's dual
  projection (J. Math. Imaging Vis. 2004), batched in torch with one weight per image. It
  removes additive and multiplicative noise and keeps sharp edges, which the retriever's
  features depend on (a Gaussian or median filter blurs them).
- :func:`switching_median`: impulse (salt-and-pepper) noise sets values to exactly 0 or 1 and
  leaves every other value exact, so only those values are replaced, by the median of the
  non-extreme values around them (the "switching" median filters of the impulse-noise
  literature); a plain median also smooths the exact values.

:class:`TVDenoise` and :class:`SwitchingMedian` are restorers that read no parameter;
:class:`KindDenoiser` picks one of them per image by the noise kind it is given
(``degradations.noise.MIXTURE_KINDS``); :class:`restoration.routed.EstimateThenRestore` gives it
the *estimated* kind. Which strength serves the study's noise is measured in docs/results.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from restoration.base import Restorer
from restoration.classical import median_filter, window_values
from restoration.estimate_noise import SALT_PEPPER, mad_sigma
from robustret.core.checks import check_images

#: Chambolle's step: 1/4 is the largest that converges in practice in 2-D (1/8 is proved)
TV_STEP = 0.25


def _divergence(px: Tensor, py: Tensor, out: Tensor) -> Tensor:
    """``out`` = the discrete divergence of ``(px, py)``, backward differences (the negative
    adjoint of :func:`_gradient`'s forward ones, whose last column / row is 0)."""
    torch.sub(px[..., 1:], px[..., :-1], out=out[..., 1:])
    out[..., 0] = px[..., 0]
    out[..., 1:, :] += py[..., 1:, :] - py[..., :-1, :]
    out[..., 0, :] += py[..., 0, :]
    return out


def _gradient(u: Tensor, gx: Tensor, gy: Tensor) -> None:
    """Forward differences of ``u`` into ``gx`` and ``gy``, whose last column / row stay 0
    (Neumann boundary)."""
    torch.sub(u[..., 1:], u[..., :-1], out=gx[..., :-1])
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=gy[..., :-1, :])


def tv_denoise(images: Tensor, weight: Tensor | float, *, iterations: int = 100) -> Tensor:
    """Total-variation (ROF) denoising by Chambolle's projection, every image and channel alone.

    Minimises ``||u - f||^2 / 2 + weight * TV(u)`` (isotropic TV, Neumann boundary): a larger
    ``weight`` removes more; about the noise's standard deviation removes white noise of
    that level from a piecewise smooth image.

    Args:
        images: (B, C, H, W) float in [0, 1] (``f``).
        weight: (B,) per-image weights >= 0, or one number; 0 returns the image unchanged.
        iterations: projection steps (100: within about 0.015 of the converged solution on
            64 px images; the error shrinks as more are taken).

    Returns:
        (B, C, H, W) float32 on the input's device, not clamped (the solution stays within the
        input's range up to the unconverged error).

    Raises:
        ValueError: ``images`` break the image contract, a negative weight, or
            ``iterations < 1``.
    """
    check_images(images, "images")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    f = images.to(torch.float32)
    w = torch.as_tensor(weight, dtype=torch.float32, device=f.device).flatten()
    if w.numel() not in (1, f.shape[0]) or bool((w < 0).any()) or not bool(w.isfinite().all()):
        raise ValueError(f"weight must be one number or {f.shape[0]} finite numbers >= 0")
    w = w.expand(f.shape[0]).view(-1, 1, 1, 1)
    safe = w.clamp(min=1e-12)
    target = f / safe
    px, py = torch.zeros_like(f), torch.zeros_like(f)
    gx, gy = torch.zeros_like(f), torch.zeros_like(f)
    div = torch.empty_like(f)
    for _ in range(iterations):
        _gradient(_divergence(px, py, div).sub_(target), gx, gy)
        scale = torch.hypot(gx, gy).mul_(TV_STEP).add_(1)
        px.add_(gx, alpha=TV_STEP).div_(scale)
        py.add_(gy, alpha=TV_STEP).div_(scale)
    out = f - safe * _divergence(px, py, div)
    return torch.where(w > 0, out, f)


def switching_median(images: Tensor, size: int = 3) -> Tensor:
    """Replace the values at exactly 0 or 1 by the median of the other values in their
    ``size x size`` window; every other value is kept as it is.

    A value whose whole window is extreme takes the plain median of the window (reflect
    border). Meant for impulse noise: on a clean image with saturated areas it moves only
    their edges.

    Args:
        images: (B, C, H, W) float in [0, 1].
        size: odd window side >= 3.

    Returns:
        (B, C, H, W), the input's dtype and device.

    Raises:
        ValueError: ``images`` break the image contract, or ``size`` not odd and >= 3.
    """
    check_images(images, "images")
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be odd and >= 3; got {size}")
    extreme = (images <= 0) | (images >= 1)
    if not bool(extreme.any()):
        return images.clone()
    marked = torch.where(extreme, torch.nan, images)
    kept = window_values(marked, size).nanmedian(dim=2).values  # NaN: a window all extreme
    kept = torch.where(kept.isnan(), median_filter(images, size), kept)
    return torch.where(extreme, kept, images)


class TVDenoise(Restorer):
    """Total-variation denoising with a weight set from each image's own noise estimate:
    ``strength`` x Donoho's MAD sigma (:func:`restoration.estimate_noise.mad_sigma`). It reads no
    parameter, and estimates the one it needs: its knowledge is ``estimated``
    (:data:`restoration.base.KNOWLEDGE`). A noise-free image (sigma about 0) is nearly
    unchanged.

    Args:
        strength: weight per unit of estimated sigma (0.75: measured in docs/results.md).
        iterations: Chambolle steps.
    """

    knowledge: ClassVar[str] = "estimated"

    def __init__(self, strength: float = 0.75, iterations: int = 100) -> None:
        super().__init__()
        if not strength >= 0:
            raise ValueError(f"strength must be >= 0; got {strength!r}")
        self.strength, self.iterations = float(strength), int(iterations)

    def restore_raw(self, images: Tensor) -> Tensor:
        weight = self.strength * mad_sigma(images.to(torch.float32))
        return tv_denoise(images, weight, iterations=self.iterations).to(images.dtype)


class SwitchingMedian(Restorer):
    """:func:`switching_median`: replaces only the values at 0 or 1 (impulse noise).

    Args:
        size: odd window side >= 3.
    """

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        self.size = int(size)

    def restore_raw(self, images: Tensor) -> Tensor:
        return switching_median(images, self.size)


class KindDenoiser(Restorer):
    """Each image by the denoiser of its noise ``kind``: impulse noise by
    :class:`SwitchingMedian`, Gaussian and speckle by :class:`TVDenoise`.

    Told the drawn kind it is an oracle (the default :func:`~restoration.base.knowledge_of`);
    inside :class:`~restoration.routed.EstimateThenRestore` it is told the estimated one.

    Args:
        strength, iterations: :class:`TVDenoise`'s.
        size: :class:`SwitchingMedian`'s.
    """

    uses_params: ClassVar[tuple[str, ...]] = ("kind",)
    requires_params: ClassVar[tuple[str, ...]] = ("kind",)

    def __init__(self, strength: float = 0.75, iterations: int = 100, size: int = 3) -> None:
        super().__init__()
        self.tv = TVDenoise(strength, iterations)
        self.impulse = SwitchingMedian(size)

    def restore_raw(self, images: Tensor, kind: Tensor | int | None = None) -> Tensor:
        """Restore ``images`` (B, C, H, W) by each one's ``kind`` ((B,) int64 codes of
        ``MIXTURE_KINDS``, or one code)."""
        if kind is None:
            raise ValueError("kind_denoise needs each image's noise kind (params['kind'])")
        kinds = torch.as_tensor(kind, device=images.device).long().flatten()
        kinds = kinds.expand(images.shape[0])
        out = torch.empty_like(images)
        impulse = kinds == SALT_PEPPER  # exact extremes: the switching median
        for chosen, restorer in ((impulse, self.impulse), (~impulse, self.tv)):
            index = chosen.nonzero().flatten()
            if index.numel():
                out[index] = restorer.restore_raw(images[index]).to(out.dtype)
        return out


__all__ = ["KindDenoiser", "SwitchingMedian", "TVDenoise", "switching_median",
           "tv_denoise"]
