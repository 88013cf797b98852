"""Seeded batched augmentation."""

from __future__ import annotations

import torch

from robustret.train.augment import augment_batch, random_affine, random_hflip


def test_shape_range_seed(images) -> None:
    a = augment_batch(images, torch.Generator().manual_seed(0))
    b = augment_batch(images, torch.Generator().manual_seed(0))
    c = augment_batch(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and a.dtype == images.dtype
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_identity_settings(images) -> None:
    assert torch.allclose(
        random_affine(images, torch.Generator(), degrees=0, translate_px=0), images, atol=1e-5
    )
    assert torch.equal(random_hflip(images, torch.Generator(), p=1.0), images.flip(-1))
