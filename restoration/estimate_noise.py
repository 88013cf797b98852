"""Blind estimation of additive, impulse and multiplicative noise from the noisy image alone.

Every statistic is computed per image over the finest Haar level, pooled over the channels (the
study's noise is drawn independently per value). With ``a, b, c, d`` the four values of an
aligned 2 x 2 block, the diagonal detail coefficient is ``HH = (a - b - c + d) / 2`` (orthonormal
Haar: white noise of standard deviation sigma gives ``HH`` of standard deviation sigma) and the
block mean ``m = (a + b + c + d) / 4``. A smooth image has ``HH`` near 0 almost everywhere, so
the coefficients' median absolute value measures the noise (Donoho & Johnstone 1994):

- ``sigma``: ``median |HH| / 0.6745``, taken a second time over the blocks whose mean lies
  ``CLIP_MARGIN`` first-pass sigmas inside (0, 1), because clipping to [0, 1] shrinks the noise
  of dark and bright blocks (the first pass underestimates a large sigma);
- ``relative_sigma``: ``median |HH / (m + 0.01)| / 0.6745``, the noise as a fraction of the
  signal; for the study's speckle ``g = f (1 + e)``, ``e ~ U(-A, A)``, it is ``A / sqrt(3)``
  (taken a second time without the blocks bright enough for such a speckle to clip at 1 and
  without the darkest ones);
- ``impulse_fraction``: the fraction of values set to exactly 0 or 1 (salt-and-pepper's ``p``),
  counted where it is visible: a 1 whose 3 x 3 median is below ``1 - IMPULSE_MARGIN`` (salt on
  a darker neighbourhood), a 0 whose median is above ``IMPULSE_MARGIN``, each divided by half
  the number of values where such an impulse would be visible;
- ``residual_sigma``: ``sigma`` over the blocks with no value at exactly 0 or 1. Salt and
  pepper leaves every other value exact, so this is about 0 under impulse noise but about sigma
  under Gaussian noise, whose clipped values also read as impulses;
- ``whiteness``: ``median |HH|`` over the median magnitude of the horizontal and vertical
  details (HL, LH). White noise is as strong in all three (about 1); a smooth image's own
  structure, sharp or blurred, is much weaker in the diagonal band, so this
  keeps a dark blurred image (whose relative variation can exceed 2%) from reading as noisy;
- ``scaling``: the slope of ``log median |HH|`` against ``log median m`` over ``SCALING_BINS``
  bins of blocks sorted by ``m`` (blocks within one ``sigma`` of 0 or 1, where clipping bends
  the curve, left out): about 0 for additive noise, about 1 for multiplicative (speckle).

:func:`noise_kind` turns these into the noise mixture's kind codes
(``degradations.noise.MIXTURE_KINDS``: 0 Gaussian, 1 salt-and-pepper, 2 speckle) and
:func:`noise_level` into each kind's own parameter (sigma, p or amplitude). Known weaknesses:
the image's own fine texture reads as noise (these images are smooth; a textured photo needs
the patch-based estimators of Liu, Tanaka & Okutomi 2013); salt-and-pepper on top of another
noise is read as that noise; ``scaling`` needs a range of brightness within the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from degradations.noise import MIXTURE_KINDS
from robustret.core.checks import check_images

MAD_TO_SIGMA = 0.6745
"""Median of |N(0, 1)|: a Gaussian's median absolute value divided by this is its sigma."""
CLIP_MARGIN = 1.5
"""Second pass of ``sigma``: blocks whose mean is this many first-pass sigmas inside (0, 1)."""
IMPULSE_MARGIN = 0.25
"""An exact 0 (1) counts as an impulse where its 3 x 3 median is above this (below 1 - this)."""
SCALING_BINS = 4
"""Bins of blocks sorted by brightness whose median |HH| the ``scaling`` slope is fitted to."""
RELATIVE_OFFSET = 0.01
"""Added to the block mean in ``relative_sigma``, so black blocks do not divide by zero."""
DARK_FLOOR = 0.05
"""Second pass of ``relative_sigma``: blocks at least this bright (speckle keeps 0 at 0, and
the offset above biases darker blocks)."""
GAUSSIAN = MIXTURE_KINDS.index("gaussian_noise")
SALT_PEPPER = MIXTURE_KINDS.index("salt_pepper")
SPECKLE = MIXTURE_KINDS.index("speckle")


@dataclass(frozen=True)
class NoiseFeatures:
    """Per-image noise statistics (see the module docstring); every field (B,) float32.

    Attributes:
        sigma: Donoho's MAD estimate of an additive noise's standard deviation (clip-aware).
        relative_sigma: the same relative to the local brightness (speckle's ``A / sqrt(3)``).
        impulse_fraction: estimated fraction of values replaced by 0 or 1.
        residual_sigma: ``sigma`` over the blocks with no value at exactly 0 or 1.
        whiteness: diagonal over horizontal-and-vertical detail magnitude (about 1 for noise).
        scaling: slope of the noise's log magnitude against the log brightness (0 additive,
            1 multiplicative).
    """

    sigma: Tensor
    relative_sigma: Tensor
    impulse_fraction: Tensor
    residual_sigma: Tensor
    whiteness: Tensor
    scaling: Tensor


def haar_finest(images: Tensor) -> tuple[Tensor, Tensor]:
    """Diagonal detail and mean of every aligned 2 x 2 block, pooled over the channels.

    Args:
        images: (B, C, H, W) float; an odd last row or column is left out.

    Returns:
        ``(hh, mean)``, each (B, C * (H // 2) * (W // 2)) float32: ``(a - b - c + d) / 2``
        (orthonormal Haar HH band) and ``(a + b + c + d) / 4``.
    """
    x = images.float()
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return ((a - b - c + d) / 2).flatten(1), ((a + b + c + d) / 4).flatten(1)


def detail_whiteness(images: Tensor) -> Tensor:
    """``median |HH| / median |HL, LH|`` of the finest Haar level, pooled over the channels.

    Args:
        images: (B, C, H, W) float, H and W >= 2.

    Returns:
        (B,) float32 >= 0; 0 where the image has no horizontal or vertical detail.
    """
    x = images.float()
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    diagonal = ((a - b - c + d) / 2).flatten(1).abs().median(dim=1).values
    sides = torch.cat([((a - b + c - d) / 2).flatten(1), ((a + b - c - d) / 2).flatten(1)], 1)
    return diagonal / sides.abs().median(dim=1).values.clamp(min=1e-8)


def _masked_median(values: Tensor, keep: Tensor) -> Tensor:
    """Row-wise median of ``values`` (B, N) over ``keep`` (B, N) bool; NaN for an empty row."""
    return torch.where(keep, values, torch.full_like(values, math.nan)).nanmedian(dim=1).values


def mad_sigma(images: Tensor) -> Tensor:
    """Donoho's noise estimate, ``median |HH| / 0.6745``, clip-aware (module docstring).

    Args:
        images: (B, C, H, W) float in [0, 1], H and W >= 2.

    Returns:
        (B,) float32.
    """
    hh, mean = haar_finest(images)
    magnitude = hh.abs()
    first = magnitude.median(dim=1).values / MAD_TO_SIGMA
    margin = CLIP_MARGIN * first[:, None]
    inside = (mean > margin) & (mean < 1 - margin)
    inside |= inside.sum(dim=1, keepdim=True) < 32  # too few blocks inside: use them all
    return _masked_median(magnitude, inside) / MAD_TO_SIGMA


def impulse_fraction(images: Tensor) -> Tensor:
    """Estimated fraction of values replaced by exactly 0 or 1 (salt-and-pepper's ``p``).

    Args:
        images: (B, C, H, W) float in [0, 1].

    Returns:
        (B,) float32 in [0, 1]; 0 where no value could show an impulse.
    """
    x = images.float()
    b, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    median = F.unfold(padded, 3).view(b, c, 9, h, w).median(dim=2).values  # (B, C, H, W)
    salt_visible, pepper_visible = median < 1 - IMPULSE_MARGIN, median > IMPULSE_MARGIN
    found = ((x == 1) & salt_visible) | ((x == 0) & pepper_visible)
    visible = 0.5 * (salt_visible.flatten(1).sum(1) + pepper_visible.flatten(1).sum(1))
    return (found.flatten(1).sum(1) / visible.clamp(min=1)).clamp(max=1.0).float()


def noise_scaling(hh: Tensor, mean: Tensor, sigma: Tensor) -> Tensor:
    """Slope of ``log median |HH|`` against ``log median mean`` over brightness bins.

    Args:
        hh, mean: (B, N) from :func:`haar_finest`.
        sigma: (B,) additive estimate; blocks within ``sigma`` of 0 or 1 are left out.

    Returns:
        (B,) float32; 0 where the image has no spread of brightness.
    """
    keep = (mean > sigma[:, None]) & (mean < 1 - sigma[:, None])
    order = torch.where(keep, mean, torch.full_like(mean, math.inf)).argsort(dim=1)
    sorted_hh, sorted_mean = hh.abs().gather(1, order), mean.gather(1, order)
    count = keep.sum(dim=1, keepdim=True).clamp(min=1)
    rank = torch.arange(hh.shape[1], device=hh.device)[None, :]
    bins = torch.div(rank * SCALING_BINS, count, rounding_mode="floor")  # >= BINS: left out
    log_hh, log_mean = [], []
    for j in range(SCALING_BINS):
        member = bins == j
        log_hh.append(torch.log(_masked_median(sorted_hh, member) + 1e-5))
        log_mean.append(torch.log(_masked_median(sorted_mean, member) + RELATIVE_OFFSET))
    y, x = torch.stack(log_hh, dim=1), torch.stack(log_mean, dim=1)  # (B, BINS)
    y, x = y - y.mean(dim=1, keepdim=True), x - x.mean(dim=1, keepdim=True)
    slope = (x * y).sum(dim=1) / (x * x).sum(dim=1).clamp(min=1e-6)
    return torch.nan_to_num(slope, nan=0.0)


def relative_mad_sigma(hh: Tensor, mean: Tensor) -> Tensor:
    """``median |HH / (mean + 0.01)| / 0.6745``, a second time over the blocks too dark for a
    speckle of the first pass's amplitude to have clipped at 1 (``mean < 1 / (1 + A)``) but
    not darker than ``DARK_FLOOR`` (black areas stay black under speckle).

    Args:
        hh, mean: (B, N) from :func:`haar_finest`.

    Returns:
        (B,) float32.
    """
    ratio = (hh / (mean + RELATIVE_OFFSET)).abs()
    amplitude = math.sqrt(3.0) * ratio.median(dim=1).values / MAD_TO_SIGMA
    keep = (mean < 1 / (1 + amplitude[:, None])) & (mean >= DARK_FLOOR)
    keep |= keep.sum(dim=1, keepdim=True) < 32  # too few blocks: use them all
    return _masked_median(ratio, keep) / MAD_TO_SIGMA


def noise_features(images: Tensor) -> NoiseFeatures:
    """All the statistics of the module docstring, per image.

    Args:
        images: (B, C, H, W) float in [0, 1], H and W >= 4, any device.

    Returns:
        :class:`NoiseFeatures` of (B,) float32 tensors on the images' device.

    Raises:
        TypeError, ValueError: ``images`` break the image contract or are smaller than 4 px.
    """
    check_images(images, "images")
    if min(images.shape[-2:]) < 4:
        raise ValueError(f"noise estimation needs images of at least 4 x 4 px; got shape "
                         f"{tuple(images.shape)}")
    hh, mean = haar_finest(images)
    sigma = mad_sigma(images)
    relative = relative_mad_sigma(hh, mean)
    x = images.float()[..., : images.shape[-2] // 2 * 2, : images.shape[-1] // 2 * 2]
    extreme = ((x == 0) | (x == 1)).float()
    exact = F.max_pool2d(extreme, 2).flatten(1) == 0  # (B, N): block without 0 or 1
    residual = torch.nan_to_num(_masked_median(hh.abs(), exact) / MAD_TO_SIGMA, nan=0.0)
    return NoiseFeatures(sigma=sigma, relative_sigma=relative,
                         impulse_fraction=impulse_fraction(images), residual_sigma=residual,
                         whiteness=detail_whiteness(images), scaling=noise_scaling(hh, mean, sigma))


@dataclass(frozen=True)
class NoiseThresholds:
    """The rule of :func:`is_noisy` and :func:`noise_kind` (read off the built-in data's feature
    distributions; see docs/estimation.md).

    Attributes:
        min_relative_sigma: ``relative_sigma`` above which an image is noisy...
        min_whiteness: ... provided its ``whiteness`` is at least this.
        min_impulse_fraction: ``impulse_fraction`` above which impulses are noise.
        max_residual_sigma: impulse noise leaves the other values at most this noisy.
        min_scaling: ``scaling`` above which the noise is multiplicative (speckle).
    """

    min_relative_sigma: float = 0.02
    min_whiteness: float = 0.25
    min_impulse_fraction: float = 0.005
    max_residual_sigma: float = 0.02
    min_scaling: float = 0.5


def is_impulse(features: NoiseFeatures, rule: NoiseThresholds = NoiseThresholds()) -> Tensor:
    """(B,) bool: many isolated 0/1 values while every other value is nearly noise-free."""
    return ((features.impulse_fraction >= rule.min_impulse_fraction)
            & (features.residual_sigma <= rule.max_residual_sigma))


def is_noisy(features: NoiseFeatures, rule: NoiseThresholds = NoiseThresholds()) -> Tensor:
    """(B,) bool: impulse noise, or a white fine-scale variation above
    ``min_relative_sigma``."""
    white = features.whiteness >= rule.min_whiteness
    varies = features.relative_sigma >= rule.min_relative_sigma
    return is_impulse(features, rule) | (white & varies)


def noise_kind(features: NoiseFeatures, rule: NoiseThresholds = NoiseThresholds()) -> Tensor:
    """(B,) int64 kind codes of ``degradations.noise.MIXTURE_KINDS`` (0 Gaussian, 1
    salt-and-pepper, 2 speckle); meaningful only where :func:`is_noisy`."""
    kind = torch.where(features.scaling > rule.min_scaling, SPECKLE, GAUSSIAN)
    return torch.where(is_impulse(features, rule), SALT_PEPPER, kind).long()


def noise_level(features: NoiseFeatures, kind: Tensor) -> Tensor:
    """(B,) float32: each image's noise in its kind's own parameter: Gaussian ``sigma``,
    salt-and-pepper ``p``, speckle ``amplitude`` (``sqrt(3) * relative_sigma``)."""
    amplitude = math.sqrt(3.0) * features.relative_sigma
    level = torch.where(kind == SPECKLE, amplitude, features.sigma)
    return torch.where(kind == SALT_PEPPER, features.impulse_fraction, level)


__all__ = [
    "GAUSSIAN", "NoiseFeatures", "NoiseThresholds", "SALT_PEPPER", "SPECKLE", "detail_whiteness",
    "haar_finest",
    "impulse_fraction", "is_impulse", "is_noisy", "mad_sigma", "noise_features", "noise_kind",
    "noise_level", "noise_scaling", "relative_mad_sigma",
]
