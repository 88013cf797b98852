"""Blind estimation of the study's Haar resolution level from blockwise constancy.

``degradations.haar_lowres`` keeps the mean of every aligned ``2**level x 2**level`` block and
copies it back into the block (nearest-neighbour upsampling), so the degraded image is exactly
constant on those blocks. For each candidate level ``L`` this module measures

- ``aligned(L)``: the fraction of aligned ``2**L`` blocks (origin at the top-left pixel, as the
  degradation pads at the bottom and right) whose values span at most ``tolerance``;
- ``shifted(L)``: the same for blocks shifted by ``2**(L - 1)`` pixels in both directions.

A level-``K`` image has ``aligned(L) = 1`` for every ``L <= K`` while the shifted blocks straddle
the block edges (``shifted(K) = 0`` up to flat areas, ``shifted(K - 1)`` about 1/4). A sharp
image with large flat areas (a uniform background, 8-bit quantised gradients) has many constant
blocks too, but equally many at either offset. The estimated level is the largest ``L`` such
that every level up to ``L`` has ``aligned >= min_fraction`` and ``aligned - shifted >=
min_contrast``; 0 means "not block-constant".

This is a fingerprint of the study's synthetic degradation: a camera's resolution loss
(area or bicubic downsampling, bilinear upsampling, a sub-pixel offset, noise, JPEG) leaves no
exactly constant blocks. ``tolerance`` admits nearly constant ones (quantisation), but the
offset and the interpolation defeat this estimator; a realistic variant needs an estimator of
the lost bandwidth (e.g. the energy of the fine Haar detail bands) instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.core.checks import check_images


def constant_block_fraction(images: Tensor, level: int, *, offset: int = 0,
                            tolerance: float = 1e-6) -> Tensor:
    """Fraction of ``2**level``-sided blocks, starting ``offset`` px from the top-left, whose
    values (all channels) span at most ``tolerance``.

    Args:
        images: (B, C, H, W) float.
        level: block side ``2**level``, >= 1.
        offset: shift of the block grid in both directions, pixels, >= 0.
        tolerance: largest max - min of a block that counts as constant.

    Returns:
        (B,) float32 in [0, 1]; 0 where no whole block fits.
    """
    side = 2**level
    x = images.float()[..., offset:, offset:]
    h, w = x.shape[-2] // side * side, x.shape[-1] // side * side
    if h == 0 or w == 0:
        return torch.zeros(images.shape[0], device=images.device)
    x = x[..., :h, :w]
    span = F.max_pool2d(x, side) + F.max_pool2d(-x, side)  # (B, C, h / side, w / side)
    return (span.amax(dim=1) <= tolerance).flatten(1).float().mean(dim=1)


def estimate_haar_level(images: Tensor, *, max_level: int = 4, tolerance: float = 1e-6,
                        min_fraction: float = 0.9, min_contrast: float = 0.2) -> Tensor:
    """Each image's Haar level: the largest ``L`` with block-constant ``2**L`` blocks.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        max_level: largest level tested (also limited by the image size).
        tolerance: largest max - min of a block that counts as constant (1e-6: exact copies;
            about 1/255 for 8-bit re-quantised images).
        min_fraction: fraction of aligned blocks that must be constant.
        min_contrast: how many more aligned than shifted blocks must be constant.

    Returns:
        (B,) int64 in 0..max_level; 0: not reduced (or not recognisably).

    Raises:
        TypeError, ValueError: ``images`` break the image contract, or a bad option.
    """
    check_images(images, "images")
    if max_level < 1 or not 0 < min_fraction <= 1 or tolerance < 0:
        raise ValueError(f"need max_level >= 1, min_fraction in (0, 1] and tolerance >= 0; got "
                         f"{max_level}, {min_fraction}, {tolerance}")
    level = torch.zeros(images.shape[0], dtype=torch.int64, device=images.device)
    still = torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
    for candidate in range(1, max_level + 1):
        if 2**candidate > min(images.shape[-2:]):
            break
        aligned = constant_block_fraction(images, candidate, tolerance=tolerance)
        shifted = constant_block_fraction(images, candidate, offset=2 ** (candidate - 1),
                                          tolerance=tolerance)
        still &= (aligned >= min_fraction) & (aligned - shifted >= min_contrast)
        level = torch.where(still, candidate, level)
        if not bool(still.any()):
            break
    return level


__all__ = ["constant_block_fraction", "estimate_haar_level"]
