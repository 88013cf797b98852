"""Pure pairwise distance/similarity matrices between query and gallery embeddings.

These are the readable reference versions: they build the whole ``(Q, G)`` matrix. Ranking
code (:func:`robustret.retrieval.index.search`) uses the same algebra in bounded chunks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustret.core.checks import check_embeddings


def _pair(queries: Tensor, gallery: Tensor) -> None:
    check_embeddings(queries, "queries")
    check_embeddings(gallery, "gallery")
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"queries and gallery must have the same dimension D; got {queries.shape[1]} and "
            f"{gallery.shape[1]}"
        )


def l2_distances(queries: Tensor, gallery: Tensor) -> Tensor:
    """Euclidean distances ``||q_i - g_j||_2`` by the matrix-product expansion.

    ``||q||^2 + ||g||^2 - 2 q.g``, clamped at 0 before the square root (rounding can make
    it slightly negative for near-identical vectors).

    Args:
        queries: (Q, D) float.
        gallery: (G, D) float, same dtype and device.
    Returns:
        (Q, G) float, >= 0; smaller is closer.
    """
    _pair(queries, gallery)
    q_sq = queries.pow(2).sum(dim=1, keepdim=True)  # (Q, 1)
    g_sq = gallery.pow(2).sum(dim=1)  # (G,)
    squared = torch.addmm(g_sq.unsqueeze(0), queries, gallery.T, alpha=-2.0).add_(q_sq)
    return squared.clamp_(min=0.0).sqrt_()


def cosine_similarities(queries: Tensor, gallery: Tensor, eps: float = 1e-12) -> Tensor:
    """Cosine similarities ``q.g / (||q|| ||g||)``; a zero vector gets similarity 0.

    Args:
        queries: (Q, D) float.
        gallery: (G, D) float, same dtype and device.
        eps: lower bound on the norms (``torch.nn.functional.normalize`` convention).
    Returns:
        (Q, G) float in [-1, 1]; larger is closer.
    """
    _pair(queries, gallery)
    q = torch.nn.functional.normalize(queries, dim=1, eps=eps)
    g = torch.nn.functional.normalize(gallery, dim=1, eps=eps)
    return q @ g.T
