"""What the demo tests share: a tiny service (12 gallery, 6 query images of 3 classes, an
untrained resnet18) and an RGB PNG. A plain module: a conftest.py here would shadow
tests/conftest.py."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

from robustret.demo.service import DemoService
from robustret.models import build_retriever

CLASSES = ["disc", "bar", "ring"]


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    images = 0.1 * torch.rand((n, 1, 32, 32), generator=generator)
    for i, label in enumerate(labels.tolist()):
        images[i, 0, 4 + 8 * label:12 + 8 * label, 6:26] += 0.8
    return images.clamp(0, 1), labels


@lru_cache(maxsize=1)
def make_service() -> DemoService:
    with torch.random.fork_rng():  # seeded weights without touching the global stream
        torch.manual_seed(0)
        model = build_retriever("resnet18", num_classes=len(CLASSES), in_channels=1)
    gallery, gallery_labels = _images(12, 1)
    queries, query_labels = _images(6, 2)
    return DemoService(model, gallery, gallery_labels, queries, query_labels, CLASSES, seed=0)


def make_png() -> bytes:
    """A 48x40 RGB PNG (not square, not the data's size or channels)."""
    yy, xx = np.mgrid[0:40, 0:48]
    image = np.stack([xx * 5, yy * 6, (xx + yy) * 3], axis=-1).clip(0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()
