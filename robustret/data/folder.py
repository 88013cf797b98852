"""Labeled image folders: one sub-folder per class, any format OpenCV decodes.

Layout::

    root/
      class_a/ img1.png img2.jpg ...
      class_b/ ...

Files are found recursively inside each class folder; names with an image extension that
OpenCV cannot decode are skipped and listed in one logging warning. Decoded images are
cached under ``cache_dir('folders')`` keyed by the path, size, mtime, ctime and inode of every
file (``rsync -t`` and ``cp -p`` restore an mtime, never a ctime), the decode options and the
source of the decoding code, so a second load skips decoding. The cache file is verified
against its ``.sha256`` sidecar; a corrupt one is reported in one warning and decoded again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch

from robustret.data.base import (
    ImageSet,
    RetrievalData,
    cap_per_class,
    check_channels,
    check_image_size,
    resize_square,
    to_float_images,
)
from robustret.data.splits import instance_ids, instance_split, split_from_file, stratified_split
from robustret.io import CorruptFileError, atomic_write_bytes, read_verified, remove_stale_temps
from robustret.keys import source_hash
from robustret.paths import cache_dir

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    ".bmp .dib .jpg .jpeg .jpe .jp2 .png .webp .avif .pbm .pgm .ppm .pxm .pnm .pfm .sr .ras "
    ".tif .tiff .exr .hdr .pic".split()
)
DECODE_CODE = ("robustret.data.folder", "robustret.data.base")
"""Modules whose source is part of the decoded-image cache key."""


def list_images(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Class names and ``(class_name, relative/path)`` of every image-named file under ``root``.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no class sub-folders, fewer than two classes, or no image files.
    """
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder not found: {root}; pass a folder with one sub-folder per class"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected root/<class_name>/<images>")
    entries: list[tuple[str, str]] = []
    with_images = []
    for name in classes:
        found = sorted(
            p.relative_to(root).as_posix()
            for p in (root / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        entries.extend((name, rel) for rel in found)
        if found:
            with_images.append(name)
    if not entries:
        raise ValueError(
            f"{root} has no image files in its class sub-folders ({len(classes)} folders)"
        )
    if len(with_images) < 2:
        raise ValueError(
            f"{root} has a single class with images ({with_images[0]!r}); retrieval needs at least "
            "2 classes"
        )
    return with_images, [e for e in entries if e[0] in with_images]


def decode_image(path: Path, image_size: int | None) -> np.ndarray | None:
    """Decode one file to (C, H, W), C in {1, 3} RGB order, uint8 or uint16; None if unreadable."""
    try:
        buffer = np.fromfile(path, dtype=np.uint8)  # works for unicode paths, unlike cv2.imread
    except OSError:
        return None
    if buffer.size == 0:
        return None
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype not in (np.uint8, np.uint16):
        image = (np.clip(image.astype(np.float32), 0, 1) * 65535).astype(np.uint16)
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape[2] == 1:
            image = image[:, :, 0]
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image_size is not None:
        image = resize_square(image, image_size)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


def _cache_key(root: Path, entries: list[tuple[str, str]], image_size: int | None) -> str:
    digest = hashlib.sha256()
    header = {
        "code": source_hash(*DECODE_CODE),
        "root": str(root.resolve()),
        "image_size": image_size,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for _, rel in entries:
        stat = (root / rel).stat()
        digest.update(
            f"\n{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\t{stat.st_ctime_ns}\t{stat.st_ino}".encode()
        )
    return digest.hexdigest()[:32]


def decode_folder(
    root: Path, image_size: int | None = None, *, use_cache: bool = True
) -> dict[str, object]:
    """Decode every image of a class-per-folder tree (cached).

    Returns:
        dict with ``images`` (N, C, H, W) uint8/uint16 (C = 3 if any image is colour),
        ``labels`` (N,) int64, ``class_names`` list, ``files`` list of relative paths.
    Raises:
        ValueError: see :func:`list_images`; no readable image; differing sizes without
            ``image_size``.
    """
    class_names, entries = list_images(root)
    key = _cache_key(root, entries, image_size)
    cache_file = cache_dir("folders") / f"{key}.npz"
    if use_cache and cache_file.is_file():
        try:
            cached = _read_cache(cache_file)
            logger.info("folder %s: loaded decoded images from cache %s", root, cache_file)
            return cached
        except (CorruptFileError, OSError) as exc:
            logger.warning("decoded-image cache %s; decoding %s again", exc, root)

    start = time.perf_counter()
    decoded, labels, files, bad = [], [], [], []
    index = {name: i for i, name in enumerate(class_names)}
    for name, rel in entries:
        image = decode_image(root / rel, image_size)
        if image is None:
            bad.append(rel)
            continue
        decoded.append(image)
        labels.append(index[name])
        files.append(rel)
    if bad:
        shown = ", ".join(bad[:20]) + (f" ... ({len(bad) - 20} more)" if len(bad) > 20 else "")
        logger.warning("skipped %d unreadable image file(s) in %s: %s", len(bad), root, shown)
    if not decoded:
        raise ValueError(f"{root}: none of the {len(entries)} image files could be decoded")
    present = sorted(set(labels))
    if len(present) < 2:
        raise ValueError(
            f"{root}: readable images in a single class ({class_names[present[0]]!r}); need at "
            "least 2"
        )
    if len(present) < len(class_names):  # drop classes left without a readable image
        dropped = [name for i, name in enumerate(class_names) if i not in set(present)]
        logger.warning(
            "dropped class(es) with no readable image in %s: %s", root, ", ".join(dropped)
        )
        remap = {old: new for new, old in enumerate(present)}
        labels = [remap[label] for label in labels]
        class_names = [class_names[i] for i in present]
    sizes = {im.shape[1:] for im in decoded}
    if len(sizes) > 1:
        raise ValueError(
            f"{root}: images have different sizes "
            f"({', '.join(f'{h}x{w}' for h, w in sorted(sizes)[:4])} ...); "
            "pass image_size=N to resize them to N x N"
        )
    if any(im.shape[0] == 3 for im in decoded):
        decoded = [np.repeat(im, 3, axis=0) if im.shape[0] == 1 else im for im in decoded]
    dtype = np.uint16 if any(im.dtype == np.uint16 for im in decoded) else np.uint8
    if dtype == np.uint16:
        decoded = [im.astype(np.uint16) * 257 if im.dtype == np.uint8 else im for im in decoded]
    result = {
        "images": np.stack(decoded).astype(dtype, copy=False),
        "labels": np.asarray(labels, dtype=np.int64),
        "class_names": class_names,
        "files": files,
    }
    logger.info(
        "folder %s: decoded %d images in %.2f s", root, len(files), time.perf_counter() - start
    )
    if use_cache:
        buffer = io.BytesIO()
        np.savez(buffer, images=result["images"], labels=result["labels"],
                 class_names=np.asarray(class_names), files=np.asarray(files))
        remove_stale_temps(cache_file.parent)
        atomic_write_bytes(cache_file, buffer.getvalue(), checksum=True)
    return result


def _read_cache(path: Path) -> dict[str, object]:
    """The decoded folder in a verified cache file; :class:`CorruptFileError` if it is not one."""
    data = read_verified(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            cached = {
                "images": saved["images"],
                "labels": saved["labels"],
                "class_names": [str(s) for s in saved["class_names"]],
                "files": [str(s) for s in saved["files"]],
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(path, f"numpy cannot read it as decoded images ({exc})") from exc
    images, labels = cached["images"], cached["labels"]
    if (images.ndim != 4 or len(labels) != len(images) or len(cached["files"]) != len(images)
            or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(cached["class_names"])):
        raise CorruptFileError(path, "its arrays do not fit together")
    return cached


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
) -> RetrievalData:
    """Load a class-per-folder tree and split it into gallery and queries.

    Args:
        path: the root folder (one sub-folder per class).
        image_size: resize to (image_size, image_size) (INTER_AREA down); required when sizes
            differ.
        channels: 'gray', 'rgb' or None (native: 3 if any file is colour, else 1).
        per_class: cap images per class in each split (seeded choice, after splitting).
        seed: seed of the split and of the per-class choice.
        query_fraction: share of each class (or of its instances) used as queries.
        split_file: explicit ``relative/path,gallery|query`` file; overrides the seeded split.
        instance_pattern: regex whose first group is the object id (e.g. ``r'obj(\\d+)__'``);
            requests an instance-disjoint split (each class needs >= 2 instances).
        use_cache: read / write the decoded-image cache.
    Returns:
        :class:`RetrievalData` named ``'folder:<path>'``; metadata ``file`` (relative paths)
        and, with ``instance_pattern``, ``instance`` (ids as strings).
    """
    root = Path(path)
    check_channels(channels)
    image_size = check_image_size(image_size)
    if split_file is not None and instance_pattern is not None:
        raise ValueError("pass either split_file or instance_pattern, not both")
    data = decode_folder(root, image_size, use_cache=use_cache)
    labels, files, class_names = data["labels"], data["files"], data["class_names"]
    metadata: dict[str, object] = {"file": list(files)}
    if split_file is not None:
        gallery, query = split_from_file(files, split_file)
    elif instance_pattern is not None:
        ids = instance_ids(files, instance_pattern)
        metadata["instance"] = ids
        gallery, query = instance_split(labels, ids, query_fraction, seed, class_names)
    else:
        gallery, query = stratified_split(labels, query_fraction, seed)
    images = to_float_images(data["images"], None, channels)
    full = ImageSet(images, torch.from_numpy(labels), list(class_names), metadata)
    sides = []
    for side, positions in (("gallery", gallery), ("queries", query)):
        positions = positions[cap_per_class(labels[positions], per_class, seed, side)]
        sides.append(full.subset(positions))
    return RetrievalData(f"folder:{root}", sides[0], sides[1], list(class_names))
