"""Pictures of retrieval: each line a query followed by its results, framed by class match."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

GREEN = torch.tensor([0.1, 0.8, 0.1])
RED = torch.tensor([0.9, 0.1, 0.1])


def _to_rgb(images: Tensor) -> Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _bordered(images: Tensor, colors: Tensor, width: int = 2) -> Tensor:
    """(N, 3, H, W) images framed by (N, 3) colours -> (N, 3, H + 2w, W + 2w)."""
    n, _, h, w = images.shape
    framed = colors[:, :, None, None].expand(n, 3, h + 2 * width, w + 2 * width).clone()
    framed[:, :, width:-width, width:-width] = images
    return framed


def retrieval_grid(queries: Tensor, query_labels: Tensor, gallery: Tensor, gallery_labels: Tensor,
                   retrieved: Tensor, *, size: int = 48) -> Tensor:
    """Each line is a query then its results, framed green (class match) or red (miss).

    Args:
        queries: (n, C, H, W) in [0, 1]; query_labels: (n,).
        gallery: (G, C, H, W) in [0, 1]; gallery_labels: (G,).
        retrieved: (n, k) gallery indices, best first.
        size: thumbnail side in pixels.

    Returns:
        (3, n * (size + 4), (k + 1) * (size + 4)) float in [0, 1].
    """
    n, k = retrieved.shape
    flat = retrieved.reshape(-1)
    thumbs_q = _to_rgb(F.interpolate(queries.float(), size=(size, size), mode="area"))
    thumbs_g = _to_rgb(F.interpolate(gallery[flat].float(), size=(size, size), mode="area"))
    hits = (gallery_labels[flat] == query_labels.repeat_interleave(k)).float()[:, None]
    framed_q = _bordered(thumbs_q, torch.full((n, 3), 1.0))
    framed_g = _bordered(thumbs_g, hits * GREEN + (1 - hits) * RED)        # (n*k, 3, s+4, s+4)
    tiles = torch.cat([framed_q[:, None], framed_g.reshape(n, k, *framed_g.shape[1:])], dim=1)
    _, columns, channels, h, w = tiles.shape                               # (n, k+1, 3, h, w)
    return tiles.permute(2, 0, 3, 1, 4).reshape(channels, n * h, columns * w)
