"""A torchvision-style transform and a numpy / OpenCV bridge."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustret.core.rng import make_generator

from .api import apply, build_module


def from_uint8(images: Tensor) -> Tensor:
    """uint8 tensor (any shape) -> float32 in [0, 1]."""
    if images.dtype != torch.uint8:
        raise ValueError(f"from_uint8 expects a uint8 tensor; got {images.dtype}")
    return images.float().div_(255.0)


def to_tensor(image: np.ndarray) -> Tensor:
    """(H, W) or (H, W, C) uint8 or float [0, 1] numpy image -> (1, C, H, W) float32 tensor."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array (H, W) or (H, W, C); got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(
            f"expected (H, W) or (H, W, C) with C in {{1, 3}}; got shape {image.shape}"
        )
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    if image.dtype == np.uint8:
        return from_uint8(t)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected uint8 or float values in [0, 1]; got dtype {image.dtype}")
    return t.float()


def apply_numpy(
    image: np.ndarray, name: str, severity: int = 3, *, generator: torch.Generator | None = None,
    seed: int | None = None, **overrides: Any,
) -> np.ndarray:
    """Degrade one OpenCV-style image; returns the same dtype and layout.

    Args:
        image: (H, W) or (H, W, C) with C in {1, 3}, uint8 or float in [0, 1].
        name, severity, overrides: as :func:`degradations.apply`.
        generator: CPU ``torch.Generator``; or ``seed`` to make one.

    Returns:
        Array of ``image``'s shape and dtype (uint8 rounded from the [0, 1] result).
    """
    if generator is None and seed is not None:
        generator = make_generator(seed)
    out = apply(to_tensor(image), name, severity, generator=generator, **overrides)[0]  # (C, H, W)
    array = out.permute(1, 2, 0).numpy().reshape(image.shape)
    if image.dtype == np.uint8:
        return np.rint(array * 255.0).astype(np.uint8)
    return array.astype(image.dtype)


class Degrade(nn.Module):
    """Transform for a dataset or a model: (C, H, W) or (B, C, H, W) in, same shape out.

    Args:
        name: a degradation name; severity: 1..5; overrides: parameter overrides.
        seed: seeds the transform's own generator (advanced by every call); None uses torch's
            global generator.
    """

    def __init__(
        self, name: str, severity: int = 3, *, seed: int | None = None, **overrides: Any,
    ) -> None:
        super().__init__()
        self.name, self.severity, self.seed = name, severity, seed
        self.degradation = build_module(name, severity, **overrides)
        self.generator = make_generator(seed) if seed is not None else None

    def forward(self, images: Tensor) -> Tensor:
        single = images.ndim == 3
        out = self.degradation(images[None] if single else images, self.generator)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, severity={self.severity}, seed={self.seed}"
