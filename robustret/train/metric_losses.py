"""Metric-learning losses of the retriever, in pure torch, with in-batch mining.

The alternatives to the classifier's cross-entropy (:data:`RETRIEVER_LOSSES`, the vocabulary
of ``--retriever-loss``):

* ``triplet``: batch-hard triplet loss (Hermans, Beyer and Leibe, 2017): for each anchor the
  farthest positive and the nearest negative of the batch, ``relu(d(a, p) - d(a, n) + margin)``
  on L2-normalised embeddings (Euclidean distance, in [0, 2]).
* ``contrastive``: every positive pair pulled (``d^2``), every negative pair closer than the
  margin pushed (``relu(margin - d)^2``), averaged over the pairs that contribute (the hard
  negatives mined in the batch); L2-normalised embeddings (Radenovic et al.'s loss).
* ``arcface``: additive angular margin softmax (Deng et al., CVPR 2019): cross-entropy of
  ``scale * cos(theta + margin)`` for the true class, ``scale * cos(theta)`` for the others,
  with the angles between the normalised embedding and the normalised class weights.

Pair losses need several images per class in a batch
(:func:`robustret.train.class_batches.class_balanced_batches`).
Written here rather than taken from pytorch-metric-learning: each is a few lines of tensor
code, the mining is tested directly, and no dependency is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class RetrieverLoss:
    """One entry of :data:`RETRIEVER_LOSSES`.

    Attributes:
        name: the ``--retriever-loss`` name.
        pairs: compares the embeddings of a batch with each other (needs several images per
            class in each batch; the class head is not trained).
        margin: its default margin (None for the classifier).
    """

    name: str
    pairs: bool
    margin: float | None


RETRIEVER_LOSSES: dict[str, RetrieverLoss] = {loss.name: loss for loss in (
    RetrieverLoss("classifier", pairs=False, margin=None),
    RetrieverLoss("triplet", pairs=True, margin=0.2),
    RetrieverLoss("contrastive", pairs=True, margin=0.7),
    RetrieverLoss("arcface", pairs=False, margin=0.5),
)}
#: ArcFace's logit scale (the paper's 64 is for 512-d face embeddings and many classes; 30 is
#: the common choice for retrieval data sets of tens to thousands of classes)
ARCFACE_SCALE = 30.0


def pairwise_distances(embeddings: Tensor) -> Tensor:
    """(B, D) -> (B, B) Euclidean distances, >= 0, with a zero diagonal (gradients stay
    finite at zero distance)."""
    squared = embeddings.pow(2).sum(dim=1)
    gram = embeddings @ embeddings.T
    d2 = (squared[:, None] + squared[None, :] - 2.0 * gram).clamp(min=0.0)
    d2 = d2.masked_fill(torch.eye(len(embeddings), dtype=torch.bool, device=d2.device), 0.0)
    return torch.sqrt(d2 + 1e-12) - math.sqrt(1e-12)


def hardest_pairs(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining: each anchor's farthest positive and nearest negative.

    Args:
        distances: (B, B) pairwise distances.
        labels: (B,) int64 classes.
    Returns:
        ``(positive, negative, valid)``: (B,) int64 indices of the hardest positive (another
        image of the class) and negative (another class) of each anchor, and (B,) bool: the
        anchor has both (the indices of an invalid anchor are meaningless).
    """
    same = labels[:, None] == labels[None, :]
    own = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positives, negatives = same & ~own, ~same
    far = distances.masked_fill(~positives, float("-inf")).argmax(dim=1)
    near = distances.masked_fill(~negatives, float("inf")).argmin(dim=1)
    return far, near, positives.any(dim=1) & negatives.any(dim=1)


def triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> tuple[Tensor, float]:
    """Batch-hard triplet loss on L2-normalised ``embeddings``.

    Args:
        embeddings: (B, D) float (normalised here).
        labels: (B,) int64.
        margin: > 0, in distance units of unit vectors (distances lie in [0, 2]).
    Returns:
        ``(loss, active)``: the mean over anchors with a positive and a negative (0 with
        gradients when none has), and the share of those anchors whose triplet violates the
        margin.
    """
    rows = F.normalize(embeddings, dim=1)
    distances = pairwise_distances(rows)
    far, near, valid = hardest_pairs(distances.detach(), labels)
    if not bool(valid.any()):
        return rows.sum() * 0.0, 0.0
    index = torch.arange(len(labels), device=labels.device)
    gaps = distances[index, far] - distances[index, near] + margin  # (B,)
    losses = F.relu(gaps[valid])
    return losses.mean(), float((losses.detach() > 0).float().mean())


def contrastive_loss(embeddings: Tensor, labels: Tensor,
                     margin: float = 0.7) -> tuple[Tensor, float]:
    """Contrastive loss over every pair of the batch, on L2-normalised ``embeddings``.

    Args:
        embeddings: (B, D) float (normalised here).
        labels: (B,) int64.
        margin: > 0: negatives farther than it give nothing.
    Returns:
        ``(loss, active)``: ``(sum of d^2 over positive pairs + sum of relu(margin - d)^2 over
        negative pairs) / (the number of positive pairs + hard negative pairs)``, and the share
        of negative pairs inside the margin.
    """
    rows = F.normalize(embeddings, dim=1)
    distances = pairwise_distances(rows)
    same = labels[:, None] == labels[None, :]
    upper = torch.ones_like(same).triu(diagonal=1)
    positive, negative = same & upper, ~same & upper
    pulls = distances[positive].pow(2)
    pushes = F.relu(margin - distances[negative]).pow(2)
    hard = pushes.detach() > 0
    count = int(positive.sum()) + int(hard.sum())
    if count == 0:
        return rows.sum() * 0.0, 0.0
    share = float(hard.float().mean()) if pushes.numel() else 0.0
    return (pulls.sum() + pushes.sum()) / count, share


def arcface_logits(embeddings: Tensor, weight: Tensor, labels: Tensor, *, margin: float = 0.5,
                   scale: float = ARCFACE_SCALE) -> Tensor:
    """ArcFace logits: ``scale * cos(theta_y + margin)`` for the true class, ``scale *
    cos(theta_j)`` for the others.

    Args:
        embeddings: (B, D) float.
        weight: (C, D) float, one row per class (the head's weight; normalised here).
        labels: (B,) int64 in [0, C).
        margin: the additive angle in radians, >= 0.
        scale: the logit scale, > 0.
    Returns:
        (B, C) logits for cross-entropy.
    """
    cosine = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T  # (B, C)
    cosine = cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7)
    target = cosine.gather(1, labels[:, None])  # (B, 1)
    theta = torch.acos(target)
    # past pi - margin, cos(theta + m) would rise again: use the monotone CosFace-like form
    shifted = torch.where(theta + margin < math.pi, torch.cos(theta + margin),
                          target - margin * math.sin(margin))
    return scale * cosine.scatter(1, labels[:, None], shifted)


def arcface_loss(embeddings: Tensor, weight: Tensor, labels: Tensor, *,
                 margin: float = 0.5, scale: float = ARCFACE_SCALE) -> tuple[Tensor, float]:
    """Cross-entropy of :func:`arcface_logits`; returns ``(loss, accuracy)``, the accuracy of
    the plain cosine (no margin) in [0, 1]."""
    logits = arcface_logits(embeddings, weight, labels, margin=margin, scale=scale)
    with torch.no_grad():
        plain = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T
        accuracy = float((plain.argmax(1) == labels).float().mean())
    return F.cross_entropy(logits, labels), accuracy
