"""Embedding extraction: a model's ``embed()`` over many images, batched, in inference mode."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def extract_embeddings(
    model: nn.Module,
    images: Tensor | Iterable,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool | None = None,
) -> Tensor:
    """Run ``model.embed`` (or ``model`` itself when it has no ``embed``) over all images.

    Args:
        model: a network already on ``device``; put in ``eval()`` mode here.
        images: (N, C, H, W) float in [0, 1] (any device), or an iterable (DataLoader) of
            batches, each a tensor or a tuple whose first item is the image tensor.
        batch_size: images per forward pass (tensor input only).
        device: where the forward passes run.
        channels_last: feed batches in ``torch.channels_last`` memory format.
        progress: show a tqdm bar (None: only on a terminal).
    Returns:
        (N, D) float32 on the CPU.
    """
    outputs = list(iter_embeddings(model, images, batch_size=batch_size, device=device,
                                   channels_last=channels_last, progress=progress))
    if not outputs:
        raise ValueError("no images to embed")
    return torch.cat(outputs)


def iter_embeddings(
    model: nn.Module,
    images: Tensor | Iterable,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool | None = None,
) -> Iterator[Tensor]:
    """The embeddings of :func:`extract_embeddings` one batch at a time, in input order.

    Same arguments; yields (B, D) float32 CPU tensors, so a caller can write them away and
    hold one batch (:func:`robustret.retrieval.store.write_embeddings`). The model is in
    ``eval()`` mode while the generator runs and back in its former mode once it is finished
    or closed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
        batches: Iterable = images.split(batch_size)
        total = (images.shape[0] + batch_size - 1) // batch_size
    else:
        batches, total = images, None
        try:
            total = len(images)  # a DataLoader knows its number of batches
        except TypeError:
            pass
    embed = getattr(model, "embed", model)
    was_training = model.training
    model.eval()
    # lazy: loaded only when a progress bar is shown
    from tqdm.auto import tqdm

    try:
        for batch in tqdm(batches, total=total, desc="embed", leave=False,
                          disable=None if progress is None else not progress):
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            # inference mode per batch, so that it never leaks into the caller between yields
            with torch.inference_mode():
                batch = batch.to(device, non_blocking=True)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                out = embed(batch).float().cpu()
            yield out
    finally:
        model.train(was_training)
