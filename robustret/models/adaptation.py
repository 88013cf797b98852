"""Test-time BatchNorm adaptation of the retriever (Schneider et al., NeurIPS 2020).

The retriever's BatchNorm layers normalise with running statistics of the clean training
images; a degraded query set has other statistics. :func:`adapt_batchnorm` re-estimates them
on the degraded queries themselves (no labels, no gradient, no other weight changes). The
experiment reports the result as its own rows (``adapted``): with the gallery embedded by the
original retriever (``queries``) or by the adapted one too (``both``).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

ADAPTATION_SIDES = ("queries", "both")


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, images: Tensor, *, batch_size: int = 128,
                    device: torch.device | str = "cpu") -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are re-estimated on ``images``.

    Args:
        model: a network with ``embed`` (the retriever); left unchanged.
        images: (N, C, H, W) float in [0, 1], the degraded queries.
        batch_size: images per forward pass (statistics are the exact average over batches).
        device: where the passes run.
    Returns:
        The adapted copy, in ``eval()`` mode on ``device``.
    Raises:
        ValueError: ``images`` is empty or the model has no BatchNorm layer.
    """
    if images.shape[0] == 0:
        raise ValueError("adapt_batchnorm needs at least one image")
    adapted = copy.deepcopy(model).to(device).eval()
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer to adapt")
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the adaptation batches
        norm.train()
    embed = getattr(adapted, "embed", adapted)
    for batch in images.split(batch_size):
        embed(batch.to(device))
    return adapted.eval()
