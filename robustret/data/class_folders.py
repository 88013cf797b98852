"""``load_folder``: a class-per-folder tree as gallery and queries, decoded eagerly
(:mod:`robustret.data.folder`) or one file at a time (:mod:`robustret.data.lazy`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from robustret.data.base import (
    ImageSet,
    RetrievalData,
    check_channels,
    check_image_size,
    to_float_images,
)
from robustret.data.folder import DECODE_MODES, decode_folder, split_positions
from robustret.data.lazy import lazy_folder


def load_folder(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    query_fraction: float = 0.2,
    split_file: str | os.PathLike | None = None,
    instance_pattern: str | None = None,
    use_cache: bool = True,
    decode: str = "eager",
    workers: int = 0,
) -> RetrievalData:
    """Load a class-per-folder tree and split it into gallery and queries.

    Args:
        path: the root folder (one sub-folder per class).
        image_size: centre-crop each image to a square and resize it to (image_size,
            image_size) (INTER_AREA down); None keeps one native size, and brings a folder of
            several sizes to the smallest shorter side the same way.
        channels: 'gray', 'rgb' or None (native: 3 if any file is colour, else 1).
        per_class: cap images per class in each split (seeded choice, after splitting).
        seed: seed of the split and of the per-class choice.
        query_fraction: share of each class (or of its instances) used as queries.
        split_file: explicit ``relative/path,gallery|query`` file; overrides the seeded split.
        instance_pattern: regex whose first group is the object id (e.g. ``r'obj(\\d+)__'``);
            requests an instance-disjoint split (each class needs >= 2 instances).
        use_cache: read / write the decoded-image cache (with ``decode='lazy'``: the folder's
            index and a memory-mapped cache of the decoded images, :mod:`robustret.data.lazy`).
        decode: ``'eager'`` decodes the whole folder in this process (then converts it);
            ``'lazy'`` decodes one file at a time through a DataLoader, straight into the
            splits. Both give identical tensors.
        workers: DataLoader worker processes that decode in parallel (``decode='lazy'``).
    Returns:
        :class:`RetrievalData` named ``'folder:<path>'``; metadata ``file`` (relative paths)
        and, with ``instance_pattern``, ``instance`` (ids as strings).
    """
    root = Path(path)
    check_channels(channels)
    image_size = check_image_size(image_size)
    if split_file is not None and instance_pattern is not None:
        raise ValueError("pass either split_file or instance_pattern, not both")
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}; got {decode!r}")
    if decode == "lazy":
        return lazy_folder(
            root, image_size=image_size, channels=channels, per_class=per_class, seed=seed,
            query_fraction=query_fraction, split_file=split_file,
            instance_pattern=instance_pattern, workers=workers, use_cache=use_cache,
        ).load(workers=workers)
    if workers:
        raise ValueError(f"workers={workers} decode in parallel only with decode='lazy'")
    data = decode_folder(root, image_size, use_cache=use_cache)
    labels, files, class_names = data["labels"], data["files"], data["class_names"]
    positions, metadata = split_positions(
        labels, files, class_names, per_class=per_class, seed=seed,
        query_fraction=query_fraction, split_file=split_file, instance_pattern=instance_pattern,
    )
    images = to_float_images(data["images"], None, channels)
    full = ImageSet(images, torch.from_numpy(labels), list(class_names), metadata)
    gallery, queries = (full.subset(side) for side in positions)
    return RetrievalData(f"folder:{root}", gallery, queries, list(class_names))
