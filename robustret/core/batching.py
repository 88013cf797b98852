"""One chunked-inference helper: run a model (or any batch function) over N images in batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


@torch.inference_mode()
def map_batches(
    fn: Callable[..., Tensor],
    images: Tensor,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    per_item: dict[str, Tensor] | None = None,
) -> Tensor:
    """Apply ``fn`` to ``images`` in batches on ``device``; the result is gathered on the CPU.

    Args:
        fn: ``(batch (b, ...), **per_item slices) -> (b, ...)``, e.g. a restorer or an embedder.
        images: (N, ...) tensor, any device.
        batch_size: items per call, >= 1; fixed, so results never depend on N.
        device: where ``fn`` runs.
        per_item: (N,) tensors sliced like ``images`` and passed as keyword arguments (e.g. the
            blur parameters each query was degraded with).
    Returns:
        (N, ...) on the CPU; an empty input gives an empty copy of ``images``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    per_item = per_item or {}
    for name, value in per_item.items():
        if value.shape[0] != images.shape[0]:
            raise ValueError(
                f"per_item[{name!r}] has {value.shape[0]} entries for {images.shape[0]} images"
            )
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        stop = start + batch_size
        kwargs = {name: value[start:stop].to(device) for name, value in per_item.items()}
        outputs.append(fn(images[start:stop].to(device), **kwargs).cpu())
    return torch.cat(outputs) if outputs else images[:0].cpu().clone()
