"""Folder data decoded on demand: one file at a time, through a DataLoader with workers.

The eager reader (:func:`robustret.data.folder.decode_folder`) holds every decoded image in
memory at once. Here a folder is first indexed (:func:`index_folder`: each file decoded once,
in parallel, to learn its size, channels and depth; the decoded pixels are dropped at once),
which fixes what every image becomes, exactly as the eager reader decides it: the square side
(``image_size``, or the smallest shorter side of a folder of several sizes), 3 channels when any
file is colour, 16 bits when any file is. Then :class:`DecodedFolder` decodes file ``j`` when
item ``j`` is asked for, and :class:`FolderDataset` turns it into a float image: the same
functions in the same order as the eager path, so the tensors are bit-identical (a test checks).

The index is cached under ``cache_dir('folders')`` (``KEY.index.json`` with a ``.sha256``
sidecar), keyed like the eager cache by each file's path, size, mtime, ctime and inode and by
this code. The decoded-image cache is an option (``use_cache``): a ``.npy`` file of the
converted images, written in shards through :func:`robustret.core.io.write_npy_blocks` and then
memory-mapped, so a second pass reads pixels instead of decoding them; without it nothing but
the index is written.

Memory: a DataLoader over a :class:`FolderDataset` holds the batches in flight (``workers``
times the prefetch factor); :meth:`LazyFolder.load` holds the float splits it returns.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustret.core.io import (
    CorruptFileError,
    atomic_write_json,
    read_verified,
    remove_stale_temps,
    verify_file,
    write_npy_blocks,
    write_optional_cache,
)
from robustret.core.keys import fingerprint, source_hash
from robustret.core.paths import cache_dir
from robustret.data.base import (
    ImageSet,
    RetrievalData,
    check_channels,
    check_image_size,
    crop_resize_square,
    to_float_images,
)
from robustret.data.folder import (
    _cache_key,
    _decode,
    _to_chw,
    list_images,
    readable_classes,
    split_positions,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
"""Images per DataLoader batch when indexing, caching and loading a folder."""


def check_workers(workers: int) -> int:
    """Validate a DataLoader worker count: an integer >= 0 (0 decodes in this process)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: decode in this process); "
                         f"got {workers!r}")
    return workers


@dataclass(frozen=True)
class FolderIndex:
    """What a class-per-folder tree holds, file by file, without its pixels.

    Attributes:
        root: the folder.
        key: the cache key of this listing (files' paths, sizes, times, inodes; the code).
        class_names: classes with at least one readable image.
        files: (N,) relative paths of the readable images, in listing order.
        labels: (N,) int64 indices into ``class_names``.
        sizes: (N, 2) int64 native (height, width).
        modes: (N,) colour modes (``'RGB 8-bit'``, ``'gray 16-bit'``, ...).
        unreadable: relative paths of image-named files OpenCV could not decode.
        colour: any readable file is colour (then every image has 3 channels).
        deep: any readable file is 16-bit or float (then every image is uint16).
    """

    root: Path
    key: str
    class_names: list[str]
    files: list[str]
    labels: np.ndarray
    sizes: np.ndarray
    modes: list[str]
    unreadable: list[str]
    colour: bool
    deep: bool

    def __len__(self) -> int:
        return len(self.files)

    def side(self, image_size: int | None) -> int | None:
        """The square side every image is cropped and resized to (None: kept as it is)."""
        if image_size is not None:
            return image_size
        if len({tuple(s) for s in self.sizes.tolist()}) > 1:
            return int(self.sizes.min())  # the smallest shorter side
        return None

    def shape(self, image_size: int | None) -> tuple[int, int, int]:
        """The (C, H, W) of every decoded image with this ``image_size``."""
        channels = 3 if self.colour else 1
        side = self.side(image_size)
        if side is None:
            return channels, int(self.sizes[0, 0]), int(self.sizes[0, 1])
        return channels, side, side

    @property
    def dtype(self) -> np.dtype:
        """The decoded images' dtype: uint16 when any file is deep, else uint8."""
        return np.dtype(np.uint16 if self.deep else np.uint8)


class _ProbeFiles(Dataset):
    """Item j: ``(height, width, channels, deep, mode)`` of file j, or None if unreadable."""

    def __init__(self, root: Path, files: list[str]) -> None:
        self.root, self.files = root, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, j: int) -> tuple[int, int, int, bool, str] | None:
        decoded = _decode(self.root / self.files[j])
        if decoded is None:
            return None
        image, mode = decoded
        channels = 1 if image.ndim == 2 else int(image.shape[2])
        return int(image.shape[0]), int(image.shape[1]), channels, image.dtype == np.uint16, mode


def _as_list(batch: list) -> list:
    return batch


def index_folder(
    path: str | os.PathLike, *, workers: int = 0, use_cache: bool = True
) -> FolderIndex:
    """Index a class-per-folder tree: every file decoded once, in parallel, pixels dropped.

    Args:
        path: the root folder (one sub-folder per class).
        workers: DataLoader worker processes that decode (0: this process).
        use_cache: read / write the index in ``cache_dir('folders')``.
    Returns:
        The :class:`FolderIndex`; classes without a readable image are dropped (one warning).
    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: no class folders, no image files, no readable image, fewer than two
            classes with readable images, or a bad ``workers``.
    """
    root = Path(path)
    workers = check_workers(workers)
    class_names, entries = list_images(root)
    key = fingerprint(_cache_key(root, entries, None), "index", source_hash(__name__))
    cache_file = cache_dir("folders") / f"{key}.index.json"
    if use_cache and cache_file.is_file():
        try:
            return _read_index(cache_file, root, key)
        except (CorruptFileError, OSError) as exc:
            logger.warning("folder index %s; indexing %s again", exc, root)
    start = time.perf_counter()
    files = [rel for _, rel in entries]
    loader = DataLoader(_ProbeFiles(root, files), batch_size=BATCH_SIZE, num_workers=workers,
                        collate_fn=_as_list)
    probes = [probe for batch in loader for probe in batch]
    number = {name: i for i, name in enumerate(class_names)}
    good = [j for j, probe in enumerate(probes) if probe is not None]
    bad = [files[j] for j, probe in enumerate(probes) if probe is None]
    labels, class_names = readable_classes(
        root, len(entries), class_names, [number[entries[j][0]] for j in good], bad)
    readable = [probes[j] for j in good]
    index = FolderIndex(
        root=root, key=key, class_names=list(class_names), files=[files[j] for j in good],
        labels=np.asarray(labels, dtype=np.int64),
        sizes=np.asarray([p[:2] for p in readable], dtype=np.int64).reshape(-1, 2),
        modes=[p[4] for p in readable], unreadable=bad,
        colour=any(p[2] != 1 for p in readable), deep=any(p[3] for p in readable),
    )
    logger.info("folder %s: indexed %d images in %.2f s", root, len(index),
                time.perf_counter() - start)
    if use_cache:
        remove_stale_temps(cache_file.parent)
        write_optional_cache(cache_file, lambda: atomic_write_json(cache_file, {
            "class_names": index.class_names, "files": index.files,
            "labels": index.labels.tolist(), "sizes": index.sizes.tolist(),
            "modes": index.modes, "unreadable": index.unreadable,
            "colour": index.colour, "deep": index.deep,
        }, indent=0, checksum=True))
    return index


def _read_index(path: Path, root: Path, key: str) -> FolderIndex:
    """The index in a verified cache file; :class:`CorruptFileError` if it is not one."""
    try:
        saved = json.loads(read_verified(path))
        index = FolderIndex(
            root=root, key=key, class_names=[str(n) for n in saved["class_names"]],
            files=[str(f) for f in saved["files"]],
            labels=np.asarray(saved["labels"], dtype=np.int64),
            sizes=np.asarray(saved["sizes"], dtype=np.int64).reshape(-1, 2),
            modes=[str(m) for m in saved["modes"]],
            unreadable=[str(u) for u in saved["unreadable"]],
            colour=bool(saved["colour"]), deep=bool(saved["deep"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"it is not a folder index ({exc})") from exc
    n = len(index.files)
    if (n == 0 or len(index.labels) != n or len(index.sizes) != n or len(index.modes) != n
            or index.labels.min() < 0 or index.labels.max() >= len(index.class_names)):
        raise CorruptFileError(path, "its columns do not fit together")
    return index


class DecodedFolder(Dataset):
    """Item j: file j of the index decoded as the eager reader converts it.

    ``(C, H, W)`` uint8 or uint16 (:attr:`FolderIndex.dtype`), C = 3 when any file of the folder
    is colour: decoded, centre-cropped and resized to the folder's side, to channels-first,
    gray repeated to 3 channels, 8-bit scaled by 257 in a 16-bit folder.
    """

    def __init__(self, index: FolderIndex, image_size: int | None = None) -> None:
        self.index = index
        self.side = index.side(check_image_size(image_size))
        self.shape = index.shape(image_size)
        self.dtype = index.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int) -> np.ndarray:
        path = self.index.root / self.index.files[j]
        decoded = _decode(path)
        if decoded is None:
            raise ValueError(f"{path} could not be decoded, though it could when the folder "
                             "was indexed; was it changed or removed during the run?")
        image = decoded[0]
        if self.side is not None:
            image = crop_resize_square(image, self.side)
        image = _to_chw(image)
        if self.index.colour and image.shape[0] == 1:
            image = np.repeat(image, 3, axis=0)
        if self.index.deep and image.dtype == np.uint8:
            image = image.astype(np.uint16) * 257
        if image.shape != self.shape:
            raise ValueError(f"{path} decodes to {image.shape}, not {self.shape} as indexed; "
                             "was it changed during the run?")
        return image.astype(self.dtype, copy=False)


def decoded_cache(
    index: FolderIndex, image_size: int | None = None, *, workers: int = 0
) -> np.ndarray | DecodedFolder:
    """The decoded images of ``index`` in a cache file, memory-mapped (written on first use).

    The file is ``cache_dir('folders')/KEY-SIDE.npy``, (N, C, H, W) as :class:`DecodedFolder`
    gives them, written in shards (one DataLoader batch at a time) with a ``.sha256`` sidecar;
    a file that does not verify is reported in one warning and written again.

    Returns:
        (N, C, H, W) uint8 / uint16, a read-only memory map; or, where the disk refuses the
        cache file (read-only, full: one warning), the :class:`DecodedFolder` itself, which
        decodes each item when asked for.
    """
    source = DecodedFolder(index, image_size)
    path = cache_dir("folders") / f"{index.key}-{source.side or 'native'}.npy"
    if path.is_file():
        try:
            verify_file(path)
            cached = np.load(path, mmap_mode="r", allow_pickle=False)
            if cached.shape == (len(index), *source.shape) and cached.dtype == source.dtype:
                return cached
            raise CorruptFileError(path, f"it holds {cached.dtype} {cached.shape}")
        except (CorruptFileError, OSError, ValueError) as exc:
            logger.warning("decoded-image cache %s; decoding %s again", exc, index.root)
    start = time.perf_counter()
    loader = DataLoader(source, batch_size=BATCH_SIZE, num_workers=check_workers(workers))
    remove_stale_temps(path.parent)
    if not write_optional_cache(path, lambda: write_npy_blocks(
            path, (batch.numpy() for batch in loader), len(index), source.dtype,
            checksum=True)):
        return source  # the disk refused the cache: each item is decoded when asked for
    logger.info("folder %s: cached %d decoded images in %.2f s (%s)", index.root, len(index),
                time.perf_counter() - start, path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


class FolderDataset(Dataset):
    """Torch dataset over images of a folder, decoded on demand.

    Item i is ``(image (C, H, W) float32 in [0, 1], label int)``: the decoded image at
    ``positions[i]`` converted by :func:`robustret.data.base.to_float_images`.

    Args:
        source: item j -> (C, H, W) uint8 / uint16: a :class:`DecodedFolder` or the array of
            :func:`decoded_cache`.
        labels: (N,) int64 labels of all items of ``source``.
        positions: (M,) which items, in this order (None: all N).
        channels: ``'gray'``, ``'rgb'`` or None (native).
    """

    def __init__(self, source: DecodedFolder | np.ndarray, labels: np.ndarray,
                 positions: np.ndarray | None = None, channels: str | None = None) -> None:
        self.source = source
        self.channels = check_channels(channels)
        self.positions = (np.arange(len(source), dtype=np.int64) if positions is None
                          else np.asarray(positions, dtype=np.int64))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)[self.positions])
        native = tuple(source.shape[-3:]) if isinstance(source, np.ndarray) else source.shape
        c = {"gray": 1, "rgb": 3, None: native[0]}[channels]
        self.image_shape: tuple[int, int, int] = (c, native[1], native[2])

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        raw = np.array(self.source[int(self.positions[i])])  # a private, writable copy
        return to_float_images(raw[None], None, self.channels)[0], int(self.labels[i])


def folder_loader(dataset: Dataset, *, batch_size: int = BATCH_SIZE,
                  workers: int = 0) -> DataLoader:
    """A DataLoader in the dataset's order (no shuffling): the same batches for any ``workers``.

    Returns:
        Batches of ``(images (B, C, H, W) float32 in [0, 1], labels (B,) int64)``.
    """
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      num_workers=check_workers(workers))


def to_imageset(dataset: FolderDataset, class_names: list[str],
                metadata: dict[str, object] | None = None, *, workers: int = 0) -> ImageSet:
    """Decode ``dataset`` into an :class:`ImageSet` held in memory (one float tensor).

    Args:
        dataset: the split.
        class_names: the data set's class names.
        metadata: length-M columns for the split.
        workers: DataLoader worker processes.
    """
    images = torch.empty((len(dataset), *dataset.image_shape), dtype=torch.float32)
    start = 0
    for batch, _ in folder_loader(dataset, workers=workers):
        images[start:start + len(batch)] = batch
        start += len(batch)
    return ImageSet(images, dataset.labels.clone(), list(class_names), dict(metadata or {}))


@dataclass
class LazyFolder:
    """A folder's gallery and query splits as datasets that decode on demand.

    Attributes:
        name: ``'folder:<path>'``.
        index: the folder's :class:`FolderIndex`.
        gallery, queries: the splits (the same images as :func:`load_folder` puts in them).
        class_names: the shared class names.
        metadata: per split (``'gallery'``, ``'queries'``) the columns ``file`` and, with an
            instance pattern, ``instance``.
    """

    name: str
    index: FolderIndex
    gallery: FolderDataset
    queries: FolderDataset
    class_names: list[str]
    metadata: dict[str, dict[str, object]]

    def load(self, *, workers: int = 0) -> RetrievalData:
        """Both splits decoded into memory: tensors identical to the eager reader's."""
        gallery, queries = (to_imageset(getattr(self, side), self.class_names,
                                        self.metadata[side], workers=workers)
                            for side in ("gallery", "queries"))
        return RetrievalData(self.name, gallery, queries, list(self.class_names))


def lazy_folder(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    query_fraction: float = 0.2,
    split_file: str | os.PathLike | None = None,
    instance_pattern: str | None = None,
    workers: int = 0,
    use_cache: bool = True,
) -> LazyFolder:
    """Index a class-per-folder tree and split it, decoding nothing but the index pass.

    The options are those of :func:`robustret.data.class_folders.load_folder`, with the same split.
    ``use_cache`` keeps the index and the decoded images (:func:`decoded_cache`) in
    ``cache_dir('folders')``; without it every item is decoded from its file when asked for.

    Raises:
        FileNotFoundError, ValueError: as :func:`index_folder`; bad options.
    """
    root = Path(path)
    check_channels(channels)
    image_size = check_image_size(image_size)
    if split_file is not None and instance_pattern is not None:
        raise ValueError("pass either split_file or instance_pattern, not both")
    index = index_folder(root, workers=workers, use_cache=use_cache)
    positions, columns = split_positions(
        index.labels, index.files, index.class_names, per_class=per_class, seed=seed,
        query_fraction=query_fraction, split_file=split_file, instance_pattern=instance_pattern,
    )
    if image_size is None and index.side(None) is not None:
        logger.info("folder %s: several image sizes; each centre-cropped to a square and resized "
                    "to %d x %d (the smallest shorter side; pass image_size=N for another size)",
                    root, index.side(None), index.side(None))
    source: DecodedFolder | np.ndarray = (decoded_cache(index, image_size, workers=workers)
                                          if use_cache else DecodedFolder(index, image_size))
    sides = {}
    metadata = {}
    for side, where in zip(("gallery", "queries"), positions):
        sides[side] = FolderDataset(source, index.labels, where, channels)
        metadata[side] = {name: [column[i] for i in where.tolist()]
                          for name, column in columns.items()}
    return LazyFolder(f"folder:{root}", index, sides["gallery"], sides["queries"],
                      list(index.class_names), metadata)
