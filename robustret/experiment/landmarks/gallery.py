"""A landmark benchmark's gallery embeddings, cached: a gallery with R1M's million distractors
takes hours to embed on a CPU, and every run with the same retriever needs the same rows.

The file ``CACHE/landmarks/gallery-KEY.npy`` (with its ``.sha256`` sidecar) is keyed by all that
decides the rows: the weights file's SHA-256 (or, untrained, the seed), the backbone, channels
and image size, every gallery file's path, size and modification time, and the source of the
decoding, model and embedding code (:data:`GALLERY_CODE`). A file that does not match its
sidecar, cannot be mapped or holds non-finite rows is one warning and is embedded again; a disk
that refuses the write is one warning and the run goes on without the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustret.core.io import CorruptFileError, file_digest, write_optional_cache
from robustret.core.keys import fingerprint, source_hash
from robustret.core.paths import cache_dir
from robustret.data.landmark_images import iter_image_batches
from robustret.data.landmarks import LandmarkBenchmark
from robustret.retrieval.store import load_embeddings, write_rows

log = logging.getLogger(__name__)

#: the modules whose code decides the gallery's rows
GALLERY_CODE = ("robustret.data.landmark_images", "robustret.models", "robustret.retrieval")


def gallery_key(config: Any, bench: LandmarkBenchmark) -> str:
    """The cache key of ``bench``'s gallery embedded by the retriever of ``config`` (see the
    module)."""
    weights = (file_digest(config.weights) if config.weights is not None
               else f"untrained:{config.seed}")
    listing = []
    for path in bench.gallery_files:
        stat = path.stat()
        listing.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return fingerprint("landmark-gallery", weights, config.backbone, config.channels,
                       config.image_size, listing, source_hash(*GALLERY_CODE))


def _finite(rows: Tensor, path: Path) -> Tensor:
    for block in rows.split(1 << 14):
        if not bool(torch.isfinite(block).all()):
            raise CorruptFileError(path, "its embeddings are not all finite")
    return rows


def embed_gallery(bench: LandmarkBenchmark, embed: Callable[[Tensor], Tensor], config: Any, *,
                  cached: bool = True) -> tuple[Tensor, bool]:
    """The (N, D) float32 embeddings of the gallery, in gallery order.

    Args:
        bench: the benchmark (its ``gallery_files``).
        embed: ``(B, C, H, W) -> (B, D)`` the retriever's embedding.
        config: the run's :class:`~robustret.experiment.landmarks.run.LandmarkConfig`.
        cached: read and write the cache (False for an embedding the key cannot name).
    Returns:
        ``(rows, reused)``: reused is True when the rows came from the cache.
    """
    path = None
    if cached:
        path = cache_dir("landmarks") / f"gallery-{gallery_key(config, bench)}.npy"
        if path.is_file():
            try:
                return _finite(load_embeddings(path, count=len(bench.gallery_files)), path), True
            except CorruptFileError as exc:
                log.warning("gallery embeddings %s; embedding the gallery again", exc)
    rows = torch.cat([embed(batch) for batch in iter_image_batches(
        bench.gallery_files, config.image_size, config.channels, config.batch_size)])
    if path is not None:
        write_optional_cache(path, lambda: write_rows(path, [rows], len(rows)))
    return rows, False
