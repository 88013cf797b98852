"""The retrieval-aware loss terms of restorer training, through a frozen retriever: the
feature term (:func:`feature_loss`, on the clean images' features :func:`clean_features`
computed once per run), the task term (:func:`class_loss`) and the neighbour term
(:func:`neighbour_loss`, scaled by :func:`mean_pair_distance`). The pixel term is the
trainer's (:mod:`robustret.train.restorer`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

FEATURE_CACHE_BYTES = 2 << 30
"""The most memory :func:`clean_features` of a training set may take (else steps compute them)."""


def clean_features(retriever: torch.nn.Module, images: Tensor, layers: tuple[str, ...], *,
                   batch_size: int, device: torch.device) -> dict[str, Tensor] | None:
    """``retriever.features(images, layers)`` without gradients, batch by batch, on the CPU.

    Args:
        retriever: frozen, in eval mode.
        images: (N, C, H, W) float in [0, 1], the clean training images.
        layers: names of ``retriever.features``.
        batch_size: images per forward pass.
        device: where the forward passes run.
    Returns:
        ``{layer: (N, ...) float tensor}``, or None where they would take more than
        :data:`FEATURE_CACHE_BYTES` (judged from the first batch).
    """
    def batch(start: int) -> dict[str, Tensor]:
        return {name: value.cpu() for name, value in
                retriever.features(images[start:start + batch_size].to(device), layers).items()}

    with torch.no_grad():
        first = batch(0)
        per_image = sum(value[:1].numel() * value.element_size() for value in first.values())
        if per_image * images.shape[0] > FEATURE_CACHE_BYTES:
            return None
        parts = [first, *(batch(i) for i in range(batch_size, images.shape[0], batch_size))]
    return {name: torch.cat([part[name] for part in parts]) for name in layers}


def feature_loss(retriever: torch.nn.Module, restored: Tensor, clean: Tensor,
                 layers: tuple[str, ...], targets: Mapping[str, Tensor] | None = None,
                 outputs: Mapping[str, Tensor] | None = None) -> Tensor:
    """Sum over ``layers`` of ``mse(f(restored), f(clean)) / mean(f(clean) ** 2)``.

    Args:
        retriever: frozen, in eval mode; gradients flow to ``restored`` only.
        restored: (B, C, H, W) restorer output (unclamped is fine).
        clean: (B, C, H, W) float in [0, 1].
        layers: names of ``retriever.features``.
        targets: ``f(clean)`` already computed (:func:`clean_features` of these images), one
            (B, ...) tensor per layer; None or empty: computed here.
        outputs: ``f(restored)`` already computed (with gradients), holding at least
            ``layers``; None: computed here.
    Returns:
        A scalar tensor.
    """
    if not targets:
        with torch.no_grad():
            targets = retriever.features(clean, layers)
    if outputs is None:
        outputs = retriever.features(restored, layers)
    total = restored.new_zeros(())
    for name in layers:
        target = targets[name]
        total = total + F.mse_loss(outputs[name], target) / target.pow(2).mean().clamp_min(1e-12)
    return total


def class_loss(retriever: torch.nn.Module, embedding: Tensor, labels: Tensor) -> Tensor:
    """The task term: cross-entropy of ``retriever.head`` (its classification layer) on the
    embeddings of restored images against their classes.

    Args:
        retriever: frozen, in eval mode, with a ``head`` from embeddings to class logits.
        embedding: (B, D) ``retriever.features(restored)["embedding"]``, with gradients.
        labels: (B,) int64 classes in ``[0, head.out_features)``.
    Returns:
        A scalar tensor.
    """
    return F.cross_entropy(retriever.head(embedding), labels)


def mean_pair_distance(embeddings: Tensor) -> Tensor:
    """Mean squared L2 distance over all ordered pairs (i, j) of rows, i == j included:
    ``2 * (mean ||g||^2 - ||mean g||^2)``, exact, without the (N, N) matrix.

    Args:
        embeddings: (N, D) float, N >= 1.
    Returns:
        A scalar tensor >= 0.
    """
    rows = embeddings.double()
    spread = rows.pow(2).sum(dim=1).mean() - rows.mean(dim=0).pow(2).sum()
    return (2 * spread).clamp_min(0).to(embeddings.dtype)


def neighbour_loss(embedding: Tensor, labels: Tensor, gallery: Tensor, gallery_labels: Tensor,
                   excluded: Tensor, temperature: float | Tensor) -> Tensor:
    """Soft nearest-neighbour loss: ``-log`` of the softmax mass that each embedding puts on
    the gallery rows of its own class, over ``-||embedding - g||^2 / temperature``, the
    ``excluded`` pairs (its own image, its instance) left out of the softmax.

    Rows with no admissible row of their class in the gallery add nothing; where no row has
    one the loss is zero (with a gradient of zeros).

    Args:
        embedding: (B, D) embeddings of restored images, with gradients.
        labels: (B,) int64 their classes.
        gallery: (N, D) clean embeddings searched (no gradients needed).
        gallery_labels: (N,) int64 their classes.
        excluded: (B, N) bool, True where row ``j`` of the gallery is not a neighbour of ``i``.
        temperature: > 0, in squared-distance units.
    Returns:
        A scalar tensor.
    """
    squared = (embedding.pow(2).sum(dim=1, keepdim=True) + gallery.pow(2).sum(dim=1)
               - 2 * embedding @ gallery.T).clamp_min(0)
    logits = (-squared / temperature).masked_fill(excluded, float("-inf"))
    same = (labels[:, None] == gallery_labels[None, :]) & ~excluded
    usable = same.any(dim=1) & (~excluded).any(dim=1)
    if not bool(usable.any()):
        return embedding.sum() * 0
    logits, same = logits[usable], same[usable]
    total = torch.logsumexp(logits, dim=1)
    hits = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
    return (total - hits).mean()


__all__ = ["FEATURE_CACHE_BYTES", "class_loss", "clean_features", "feature_loss",
           "mean_pair_distance", "neighbour_loss"]
