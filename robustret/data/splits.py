"""Gallery / query splits and seeded DataLoader construction.

Three ways to split one labeled collection:

* :func:`stratified_split`: per class, a seeded ``query_fraction`` of the images are queries;
* :func:`split_from_file`: an explicit CSV/text file of ``relative/path,gallery|query`` lines;
* :func:`instance_split`: multi-view sets; whole object instances go to one side, so no
  object is seen both in the gallery and among the queries (needs >= 2 instances per class).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustret.core.rng import make_generator, stream_seed
from robustret.data.base import ImageSet

SIDES = ("gallery", "query")


def _check_fraction(query_fraction: float) -> float:
    if not 0.0 < float(query_fraction) < 1.0:
        raise ValueError(f"query_fraction must be in (0, 1), got {query_fraction}")
    return float(query_fraction)


def _n_query(n: int, query_fraction: float) -> int:
    """round(n * fraction), but at least one item on each side when n >= 2."""
    if n < 2:
        return 0
    return int(min(max(round(n * query_fraction), 1), n - 1))


def stratified_split(
    labels: Sequence[int] | Tensor | np.ndarray, query_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split.

    Class ``c`` with ``n`` images sends ``round(n * query_fraction)`` of them (at least one, and
    never all) to the queries, chosen by ``stream_seed(seed, "data/split", c)``. A class with one
    image stays in the gallery.

    Args:
        labels: (N,) integer class labels.
        query_fraction: share of each class used as queries, in (0, 1).
        seed: split seed.
    Returns:
        ``(gallery, query)`` sorted int64 positions, disjoint, covering 0..N-1.
    """
    query_fraction = _check_fraction(query_fraction)
    labels = np.asarray(labels).astype(np.int64)
    query = []
    for c in np.unique(labels):
        positions = np.flatnonzero(labels == c)
        rng = np.random.default_rng(stream_seed(seed, "data/split", int(c)))
        query.append(rng.permutation(positions)[: _n_query(positions.size, query_fraction)])
    is_query = np.zeros(labels.shape[0], dtype=bool)
    if query:
        is_query[np.concatenate(query)] = True
    return np.flatnonzero(~is_query), np.flatnonzero(is_query)


def instance_ids(files: Sequence[str], pattern: str) -> list[str]:
    """The object id of each file: the first group of ``pattern`` searched in its path.

    Raises:
        ValueError: the pattern has no group, or does not match a file (named in the message).
    """
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise ValueError(f"instance_pattern {pattern!r} needs a group, e.g. r'obj(\\d+)__'")
    ids = []
    for name in files:
        match = regex.search(name)
        if match is None:
            raise ValueError(f"instance_pattern {pattern!r} does not match file {name!r}")
        ids.append(match.group(1))
    return ids


def instance_split(
    labels: Sequence[int] | Tensor | np.ndarray,
    instances: Sequence[object],
    query_fraction: float = 0.2,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance-disjoint split: per class, a seeded share of the *instances* become queries.

    Args:
        labels: (N,) integer class labels.
        instances: (N,) instance id of each image (any hashable; unique within its class).
        query_fraction: share of each class's instances used as queries (at least one, never all).
        seed: split seed.
        class_names: for error messages.
    Returns:
        ``(gallery, query)`` sorted int64 positions; no (class, instance) appears on both sides.
    Raises:
        ValueError: a class has a single instance (e.g. COIL-20, one object per class), so it
            cannot be split by instance; use the stratified split there.
    """
    query_fraction = _check_fraction(query_fraction)
    labels = np.asarray(labels).astype(np.int64)
    if len(instances) != labels.shape[0]:
        raise ValueError(f"{len(instances)} instance ids for {labels.shape[0]} labels")
    keys = np.asarray([str(i) for i in instances], dtype=object)
    is_query = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        in_class = labels == c
        objects = sorted(set(keys[in_class]))
        if len(objects) < 2:
            name = class_names[c] if class_names is not None else str(c)
            raise ValueError(
                f"class {name!r} has a single instance ({objects[0]!r}); an instance-disjoint "
                "split needs at least 2 instances per class. Use the default stratified split "
                "for one-object-per-class sets such as COIL-20."
            )
        rng = np.random.default_rng(stream_seed(seed, "data/split/instance", int(c)))
        shuffled = rng.permutation(np.asarray(objects, dtype=object))
        chosen = set(shuffled[: _n_query(len(objects), query_fraction)])
        is_query |= in_class & np.isin(keys, list(chosen))
    return np.flatnonzero(~is_query), np.flatnonzero(is_query)


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """Parse a split file: one ``relative/path,gallery|query`` per line.

    Blank lines and lines starting with ``#`` are skipped, as is a ``path,split`` header.
    Paths use ``/`` and are relative to the data folder.

    Returns:
        ``{relative_path: 'gallery' | 'query'}``.
    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line or an unknown side (with the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    sides: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{path}:{number}: expected 'relative/path,gallery|query', got "
                    f"{','.join(row)!r}"
                )
            name, side = row[0].strip().replace("\\", "/"), row[1].strip().lower()
            if number == 1 and side in ("split", "side"):
                continue
            if side not in SIDES:
                raise ValueError(
                    f"{path}:{number}: side must be 'gallery' or 'query', got {side!r}"
                )
            sides[name] = side
    return sides


def split_from_file(files: Sequence[str], path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Split by an explicit file (see :func:`read_split_file`).

    Args:
        files: (N,) relative paths of the images, ``/``-separated.
        path: the split file.
    Returns:
        ``(gallery, query)`` positions; images the file does not list are left out.
    Raises:
        ValueError: the file lists paths that are not among ``files`` (the first few are named),
            or leaves one side empty.
    """
    sides = read_split_file(path)
    known = set(files)
    missing = [name for name in sides if name not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"split file {path} lists {len(missing)} image(s) not in the data folder: {shown}"
        )
    gallery = np.asarray(
        [i for i, f in enumerate(files) if sides.get(f) == "gallery"], dtype=np.int64
    )
    query = np.asarray([i for i, f in enumerate(files) if sides.get(f) == "query"], dtype=np.int64)
    if gallery.size == 0 or query.size == 0:
        raise ValueError(
            f"split file {path} leaves the {'gallery' if gallery.size == 0 else 'query'} side empty"
        )
    return gallery, query


class ImageSetDataset(Dataset):
    """Torch dataset over an :class:`ImageSet`.

    Item i is ``(image (C, H, W) float in [0, 1], label int)``.
    """

    def __init__(self, imageset: ImageSet) -> None:
        self.imageset = imageset

    def __len__(self) -> int:
        return len(self.imageset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.imageset.images[index], int(self.imageset.labels[index])


def to_loader(
    imageset: ImageSet, batch_size: int = 64, shuffle: bool = False, seed: int = 0, **kwargs: object
) -> DataLoader:
    """A DataLoader over ``imageset``; with ``shuffle`` the order depends on ``seed`` only.

    Args:
        imageset: the split.
        batch_size: images per batch.
        shuffle: reshuffle each epoch (seeded by a generator made from ``seed``).
        seed: shuffling seed.
        **kwargs: passed to :class:`torch.utils.data.DataLoader` (``num_workers``,
            ``drop_last`` ...).
    Returns:
        Batches of ``(images (B, C, H, W) float32 in [0, 1], labels (B,) int64)``.
    """
    generator = make_generator(seed) if shuffle else None
    return DataLoader(
        ImageSetDataset(imageset),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        **kwargs,
    )
