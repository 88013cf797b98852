"""Embeddings on disk: (N, D) float32 rows written in shards to a ``.npy`` file, read back mapped.

A gallery of a million images has (1,000,000, 512) float32 embeddings, 2 GB: more than a
small machine wants to hold beside the model. :func:`write_rows` writes each batch (a shard of
rows) into a memory map of its place in the file and unmaps it at once, so writing holds one
batch, whatever N; :func:`write_embeddings` feeds it the batches of
:func:`robustret.retrieval.embed.iter_embeddings` (a tensor, or a DataLoader over a lazy
folder, :mod:`robustret.data.lazy`). :func:`load_embeddings` maps the file back: the rows stay
on disk until they are read, and the operating system can drop them again under pressure.

The file is a plain ``.npy`` (``numpy.load`` reads it) written through
:func:`robustret.core.io.atomic_output`: under a temporary name beside the target, hashed and
renamed over it at the end, with a ``NAME.sha256`` sidecar (``sha256sum -c`` reads it). An
interrupted write leaves no file under the final name (and the previous one untouched); the next
write removes its temporary file. A write is not resumed: it starts over.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from robustret.core.io import CorruptFileError, verify_file, write_npy_blocks
from robustret.retrieval.embed import iter_embeddings

log = logging.getLogger(__name__)

DTYPE = np.dtype(np.float32)


def write_rows(
    path: str | os.PathLike, blocks: Iterable[Tensor | np.ndarray], count: int, *,
    checksum: bool = True,
) -> Path:
    """Write ``count`` rows, arriving as (B, D) blocks in order, to a (count, D) float32 ``.npy``.

    Each block goes into a memory map of its own rows that is closed before the next block is
    taken (:func:`robustret.core.io.write_npy_blocks`), so the writer holds one block. D is the
    first block's width.

    Args:
        path: the ``.npy`` file to write (its folder is created).
        blocks: (B, D) float tensors or arrays, any B >= 0, cast to float32.
        count: total rows, >= 1; the blocks must add up to exactly this.
        checksum: write a ``NAME.sha256`` sidecar.
    Returns:
        ``path``.
    Raises:
        ValueError: a block that is not 2-D, whose width differs from the first, rows beyond
            ``count`` or fewer than ``count`` in all; nothing is written under ``path``.
    """

    def arrays() -> Iterator[np.ndarray]:
        for block in blocks:
            array = (block.detach().cpu().numpy() if isinstance(block, Tensor)
                     else np.asarray(block))
            if array.ndim != 2:
                raise ValueError(f"rows must come as (B, D) blocks; got shape {array.shape}")
            yield array

    return write_npy_blocks(path, arrays(), count, DTYPE, checksum=checksum)


def load_embeddings(
    path: str | os.PathLike, *, count: int | None = None, verify: bool = True
) -> Tensor:
    """The (N, D) float32 rows of a ``.npy`` file, memory-mapped, not read into memory.

    The tensor is backed by a copy-on-write map of the file: the file is never written
    through it (an in-place change stays in this process's memory).

    Args:
        path: a file written by :func:`write_rows`.
        count: the number of rows it must hold (None: any).
        verify: check it against its ``.sha256`` sidecar first (read in 1 MiB blocks).
    Returns:
        (N, D) float32 CPU tensor.
    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: a checksum mismatch or missing sidecar (``verify``), a file numpy
            cannot map, or one that does not hold ``count`` rows of float32; it names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    if verify:
        verify_file(path)
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(path, f"numpy cannot map it as an array ({exc})") from exc
    if array.dtype != DTYPE or array.ndim != 2 or (count is not None and len(array) != count):
        wanted = f"{count} rows" if count is not None else "rows"
        raise CorruptFileError(path, f"it holds a {array.dtype} array of shape {array.shape}, "
                                     f"not {wanted} of float32 embeddings")
    return torch.from_numpy(array)


def write_embeddings(
    model: nn.Module,
    images: Tensor | Iterable,
    path: str | os.PathLike,
    *,
    count: int | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool | None = None,
    checksum: bool = True,
) -> Tensor:
    """Embed ``images`` batch by batch into ``path`` and return the rows mapped from it.

    The same rows as :func:`robustret.retrieval.embed.extract_embeddings` (same batches, same
    forward passes), written as they come (:func:`write_rows`), so memory holds one batch.

    Args:
        model: a network already on ``device`` (put in ``eval()`` mode while embedding).
        images: (N, C, H, W) float in [0, 1], or a DataLoader of batches (tensors or tuples
            whose first item is the image batch).
        path: the ``.npy`` file.
        count: N; None takes ``len(images)`` of a tensor or ``len(images.dataset)`` of a
            DataLoader.
        batch_size, device, channels_last, progress: as for ``extract_embeddings``.
        checksum: write a ``NAME.sha256`` sidecar.
    Returns:
        (N, D) float32, memory-mapped from ``path`` (:func:`load_embeddings`).
    Raises:
        ValueError: ``count`` unknown, or the batches do not add up to it.
    """
    if count is None:
        count = len(images) if isinstance(images, Tensor) else _dataset_length(images)
    blocks = iter_embeddings(model, images, batch_size=batch_size, device=device,
                             channels_last=channels_last, progress=progress)
    try:
        write_rows(path, blocks, count, checksum=checksum)
    finally:
        blocks.close()  # the model back in its former mode, also after an error
    return load_embeddings(path, count=count, verify=False)


def _dataset_length(images: Iterable) -> int:
    dataset = getattr(images, "dataset", None)
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("pass count= (the number of images): it is not known from a "
                         f"{type(images).__name__} without a sized .dataset") from None
