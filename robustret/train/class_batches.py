"""Class-balanced batch order: several images of each class in a batch, for the pair losses
of :mod:`robustret.train.metric_losses` (a positive pair needs two images of one class)."""

from __future__ import annotations

import torch
from torch import Tensor


def class_balanced_batches(labels: Tensor, batch_size: int, per_class: int,
                           generator: torch.Generator) -> list[Tensor]:
    """One epoch's batches: each image once, in groups of ``per_class`` images of one class.

    Each class's images are shuffled and cut into groups of ``per_class`` (the last group of a
    class may be smaller); the groups are shuffled and joined, ``batch_size // per_class``
    groups (at least 2) to a batch, so a batch holds about ``batch_size`` images of about
    ``batch_size / per_class`` classes.

    Args:
        labels: (N,) int64 classes.
        batch_size: images per batch (about), >= 2.
        per_class: images of one class in a group, >= 2.
        generator: the epoch's generator (all randomness comes from it).
    Returns:
        A list of (<= about batch_size,) int64 index tensors covering 0..N-1 once.
    Raises:
        ValueError: ``per_class`` < 2, or ``batch_size`` < ``per_class``.
    """
    if per_class < 2:
        raise ValueError(f"per_class must be >= 2 (a positive pair needs two images of a "
                         f"class); got {per_class}")
    if batch_size < per_class:
        raise ValueError(f"batch_size {batch_size} must hold at least one group of "
                         f"per_class {per_class} images")
    groups: list[Tensor] = []
    for label in torch.unique(labels).tolist():  # sorted: the order depends on the seed only
        positions = torch.nonzero(labels == label).flatten()
        shuffled = positions[torch.randperm(len(positions), generator=generator)]
        groups.extend(shuffled.split(per_class))
    order = torch.randperm(len(groups), generator=generator).tolist()
    width = max(2, batch_size // per_class)
    return [torch.cat([groups[i] for i in order[start:start + width]])
            for start in range(0, len(order), width)]
