"""One row of the table: queries -> (degrade) -> (restore) -> embed -> search -> accuracy.

Pure helpers the runner composes; they take tensors and models, never configs or paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.metrics import topk_hit_rate
from robustret.report import make_row
from robustret.retrieval import GalleryIndex

GREEN = torch.tensor([0.1, 0.8, 0.1])
RED = torch.tensor([0.9, 0.1, 0.1])


@torch.inference_mode()
def map_batches(fn: Callable[..., Tensor], images: Tensor, *, batch_size: int = 128,
                device: torch.device | str = "cpu", per_item: dict[str, Tensor] | None = None) -> Tensor:
    """Apply ``fn`` to ``images`` (N, C, H, W) in batches on ``device``; result on the CPU.

    ``per_item`` holds (N,) tensors passed to ``fn`` as keyword arguments, sliced like the images
    (e.g. the blur parameters each query was degraded with, for a non-blind Wiener filter).
    """
    per_item = per_item or {}
    outputs = []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        kwargs = {name: value[start:stop].to(device) for name, value in per_item.items()}
        outputs.append(fn(images[start:stop].to(device), **kwargs).cpu())
    return torch.cat(outputs) if outputs else images[:0].clone()


def score_condition(
    query_embeddings: Tensor,
    query_labels: Tensor,
    indexes: dict[str, GalleryIndex],
    ks: Sequence[int],
    *,
    query: str,
    degradation: str | None = None,
    severity: int | None = None,
    restorer: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """Top-k matching accuracy of one query condition under every metric.

    Args:
        query_embeddings: (Q, D) float.
        query_labels: (Q,) int64.
        indexes: one :class:`GalleryIndex` per metric name.
        ks: the k values.
        query, degradation, severity, restorer: the condition, copied into each row.

    Returns:
        ``(rows, retrieved)``: the result rows, and per metric the (Q, max(ks)) gallery
        indices of the retrieved items, best first.
    """
    rows, retrieved = [], {}
    k_max = max(ks)
    for metric, index in indexes.items():
        _, indices = index.search(query_embeddings, k_max)
        retrieved[metric] = indices
        rates = topk_hit_rate(index.labels[indices], query_labels, ks=tuple(ks))
        rows += [make_row(query, degradation, severity, restorer, metric, k, rates[k]) for k in ks]
    return rows, retrieved


def _to_rgb(images: Tensor) -> Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _bordered(images: Tensor, colors: Tensor, width: int = 2) -> Tensor:
    """(N, 3, H, W) images framed by (N, 3) colours -> (N, 3, H + 2w, W + 2w)."""
    framed = colors[:, :, None, None].expand(-1, -1, images.shape[2] + 2 * width, images.shape[3] + 2 * width).clone()
    framed[:, :, width:-width, width:-width] = images
    return framed


def retrieval_grid(queries: Tensor, query_labels: Tensor, gallery: Tensor, gallery_labels: Tensor,
                   retrieved: Tensor, *, size: int = 48) -> Tensor:
    """A picture of retrieval: each line is a query then its results, framed green (class match) or red.

    Args:
        queries: (n, C, H, W) in [0, 1]; query_labels: (n,).
        gallery: (G, C, H, W) in [0, 1]; gallery_labels: (G,).
        retrieved: (n, k) gallery indices, best first.
        size: thumbnail side in pixels.

    Returns:
        (3, n * (size + 4), (k + 1) * (size + 4)) float in [0, 1].
    """
    n, k = retrieved.shape
    thumbs_q = _to_rgb(F.interpolate(queries.float(), size=(size, size), mode="area"))
    thumbs_g = _to_rgb(F.interpolate(gallery[retrieved.reshape(-1)].float(), size=(size, size), mode="area"))
    hits = (gallery_labels[retrieved.reshape(-1)] == query_labels.repeat_interleave(k)).float()[:, None]
    framed_q = _bordered(thumbs_q, torch.full((n, 3), 1.0))
    framed_g = _bordered(thumbs_g, hits * GREEN + (1 - hits) * RED)                   # (n*k, 3, s+4, s+4)
    tiles = torch.cat([framed_q[:, None], framed_g.reshape(n, k, *framed_g.shape[1:])], dim=1)  # (n, k+1, 3, h, w)
    _, columns, channels, h, w = tiles.shape
    return tiles.permute(2, 0, 3, 1, 4).reshape(channels, n * h, columns * w)
