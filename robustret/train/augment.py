"""Batched, seeded training augmentation on image tensors (the study's recipe).

Pure functions of ``(images, generator)``: horizontal flip, small affine (rotation up to 5
degrees, translation up to 5 px, border padding) and brightness/contrast jitter. Random draws
happen on the generator's device (CPU by default) and are moved to the images' device, so a
seed gives the same augmentation on CPU and CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.core.checks import check_images


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return (torch.rand(n, generator=generator, device=gen_device) * (high - low) + low).to(device)


def random_hflip(
    images: Tensor, generator: torch.Generator | None = None, p: float = 0.5
) -> Tensor:
    """Mirror each image left-right with probability ``p``.

    Args:
        images: (B, C, H, W) float.
        generator: source of randomness.
        p: flip probability in [0, 1].
    Returns:
        (B, C, H, W), same device and dtype.
    """
    flip = _uniform(images.shape[0], 0.0, 1.0, generator, images.device) < p  # (B,)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_affine(images: Tensor, generator: torch.Generator | None = None, *, degrees: float = 5.0,
                  translate_px: float = 5.0) -> Tensor:
    """Rotate by U(-degrees, degrees) and shift by U(-translate_px, translate_px) pixels per axis.

    Bilinear ``grid_sample`` with border padding (no black corners).

    Args:
        images: (B, C, H, W) float.
        generator: source of randomness.
        degrees: maximum absolute rotation, >= 0.
        translate_px: maximum absolute shift in pixels, >= 0.
    Returns:
        (B, C, H, W), same device and dtype.
    """
    if degrees < 0 or translate_px < 0:
        raise ValueError(f"degrees and translate_px must be >= 0; got {degrees}, {translate_px}")
    b, _, h, w = images.shape
    angle = _uniform(b, -degrees, degrees, generator, images.device) * (math.pi / 180)
    tx = _uniform(b, -translate_px, translate_px, generator, images.device) * (
        2.0 / w
    )  # normalised coords
    ty = _uniform(b, -translate_px, translate_px, generator, images.device) * (2.0 / h)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_brightness_contrast(
    images: Tensor,
    generator: torch.Generator | None = None,
    *,
    brightness: float = 0.01,
    contrast: float = 0.2,
    clip: bool = True,
) -> Tensor:
    """Contrast/lighting jitter: ``(x - mean) * c + mean + b``, c ~ U(1-contrast, 1+contrast),
    b ~ U(-brightness, brightness), per image (mean over that image's pixels).

    Args:
        images: (B, C, H, W) float in [0, 1].
        generator: source of randomness.
        brightness: half-width of the additive shift, >= 0 (the reference used 0.01).
        contrast: half-width of the contrast factor around 1, in [0, 1) (reference 0.2).
        clip: clamp to [0, 1].
    Returns:
        (B, C, H, W), same device and dtype.
    """
    if brightness < 0 or not 0 <= contrast < 1:
        raise ValueError(
            f"need brightness >= 0 and 0 <= contrast < 1; got {brightness}, {contrast}"
        )
    b = images.shape[0]
    factor = _uniform(b, 1 - contrast, 1 + contrast, generator, images.device).to(images.dtype)[
        :, None, None, None
    ]
    shift = _uniform(b, -brightness, brightness, generator, images.device).to(images.dtype)[
        :, None, None, None
    ]
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    out = (images - mean) * factor + mean + shift
    return out.clamp(0.0, 1.0) if clip else out


def augment_batch(images: Tensor, generator: torch.Generator | None = None, *, flip: bool = True,
                  degrees: float = 5.0, translate_px: float = 5.0, brightness: float = 0.01,
                  contrast: float = 0.2) -> Tensor:
    """The study's training augmentation: flip, affine, brightness/contrast, in that order.

    Args:
        images: (B, C, H, W) float in [0, 1].
        generator: source of randomness (the whole batch's draws come from it).
    Returns:
        (B, C, H, W) float in [0, 1], same device and dtype.
    """
    check_images(images, "images", check_values=False)
    if flip:
        images = random_hflip(images, generator)
    if degrees > 0 or translate_px > 0:
        images = random_affine(images, generator, degrees=degrees, translate_px=translate_px)
    return random_brightness_contrast(images, generator, brightness=brightness, contrast=contrast)
