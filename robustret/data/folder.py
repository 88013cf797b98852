"""Labeled image folders: one sub-folder per class, any format OpenCV decodes.

Layout::

    root/
      class_a/ img1.png img2.jpg ...
      class_b/ ...

Files are found recursively inside each class folder; names with an image extension that
OpenCV cannot decode are skipped and listed in one logging warning.

Sizes, orientations and colour modes may be mixed (a Corel-style folder of 384x256 and 256x384
JPEGs, gray and RGB files together). The default: every image is centre-cropped to a square
(its shorter side, from the middle of the longer one) and resized to ``image_size``; without
``image_size`` a folder of one size keeps it, and a folder of several sizes goes to the
smallest shorter side among its images. Gray files are repeated to RGB when any file is colour,
8-bit files scaled to 16 bits when any file is 16-bit. :func:`survey_folder` describes a folder
(counts per class, size and mode distribution, unreadable files). Decoded images are
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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robustret.core.io import (
    CorruptFileError,
    atomic_write_bytes,
    read_verified,
    remove_stale_temps,
    write_optional_cache,
)
from robustret.core.keys import source_hash
from robustret.core.paths import cache_dir
from robustret.data.base import (
    cap_per_class,
    check_image_size,
    crop_resize_square,
)
from robustret.data.splits import instance_ids, instance_split, split_from_file, stratified_split

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    ".bmp .dib .jpg .jpeg .jpe .jp2 .png .webp .avif .pbm .pgm .ppm .pxm .pnm .pfm .sr .ras "
    ".tif .tiff .exr .hdr .pic".split()
)
DECODE_MODES = ("eager", "lazy")
"""How :func:`load_folder` decodes: the whole folder at once, or one file at a time."""
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


def _decode(path: Path) -> tuple[np.ndarray, str] | None:
    """One file as decoded, (H, W) or (H, W, 3) RGB, uint8 or uint16, and its mode ('RGB 8-bit',
    'gray 16-bit', 'RGBA 8-bit', ...); None if unreadable."""
    try:
        buffer = np.fromfile(path, dtype=np.uint8)  # works for unicode paths, unlike cv2.imread
    except OSError:
        return None
    if buffer.size == 0:
        return None
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    depth = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit"}.get(image.dtype, "float")
    if image.dtype not in (np.uint8, np.uint16):
        image = (np.clip(image.astype(np.float32), 0, 1) * 65535).astype(np.uint16)
    kind = "gray"
    if image.ndim == 3:
        kind = {1: "gray", 3: "RGB", 4: "RGBA"}.get(image.shape[2], f"{image.shape[2]}-channel")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape[2] == 1:
            image = image[:, :, 0]
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image, f"{kind} {depth}"


def decode_image(path: Path, image_size: int | None) -> np.ndarray | None:
    """Decode one file to (C, H, W), C in {1, 3} RGB order, uint8 or uint16; None if unreadable.

    With ``image_size`` the image is centre-cropped to a square and resized to it
    (:func:`robustret.data.base.crop_resize_square`); without, it keeps its size.
    """
    decoded = _decode(path)
    if decoded is None:
        return None
    image = decoded[0]
    if image_size is not None:
        image = crop_resize_square(image, image_size)
    return _to_chw(image)


def _to_chw(image: np.ndarray) -> np.ndarray:
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

    Images are centre-cropped to a square and resized to ``image_size``; without it, a folder
    of one size keeps it and a folder of several sizes goes to the smallest shorter side.

    Returns:
        dict with ``images`` (N, C, S, S) or, for one native size, (N, C, H, W) uint8/uint16
        (C = 3 if any image is colour), ``labels`` (N,) int64, ``class_names`` list, ``files``
        list of relative paths, ``sizes`` (N, 2) int64 native (height, width), ``modes`` list
        (e.g. ``'RGB 8-bit'``), ``unreadable`` list of relative paths skipped.
    Raises:
        ValueError: see :func:`list_images`; no readable image; readable images in one class.
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
    decoded, labels, files, bad, sizes, modes = [], [], [], [], [], []
    index = {name: i for i, name in enumerate(class_names)}
    for name, rel in entries:
        result = _decode(root / rel)
        if result is None:
            bad.append(rel)
            continue
        image, mode = result
        sizes.append(image.shape[:2])
        modes.append(mode)
        # with image_size, shrink at once: the native images are never all held in memory
        decoded.append(image if image_size is None else crop_resize_square(image, image_size))
        labels.append(index[name])
        files.append(rel)
    labels, class_names = readable_classes(root, len(entries), class_names, labels, bad)
    if image_size is None and len(set(sizes)) > 1:
        side = min(min(size) for size in sizes)
        logger.info(
            "folder %s: %d image sizes; each centre-cropped to a square and resized to %d x %d "
            "(the smallest shorter side; pass image_size=N for another size)",
            root, len(set(sizes)), side, side,
        )
        decoded = [crop_resize_square(im, side) for im in decoded]
    decoded = [_to_chw(im) for im in decoded]
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
        "sizes": np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        "modes": modes,
        "unreadable": bad,
    }
    logger.info(
        "folder %s: decoded %d images in %.2f s", root, len(files), time.perf_counter() - start
    )
    if use_cache:
        buffer = io.BytesIO()
        np.savez(buffer, images=result["images"], labels=result["labels"],
                 class_names=np.asarray(class_names), files=np.asarray(files),
                 sizes=result["sizes"], modes=np.asarray(modes, dtype=str),
                 unreadable=np.asarray(bad, dtype=str))
        remove_stale_temps(cache_file.parent)
        write_optional_cache(
            cache_file, lambda: atomic_write_bytes(cache_file, buffer.getvalue(), checksum=True))
    return result


def readable_classes(
    root: Path, listed: int, class_names: list[str], labels: list[int], bad: list[str]
) -> tuple[list[int], list[str]]:
    """The labels and class names of the readable images: classes left without one dropped.

    Args:
        root: the folder (for messages).
        listed: how many image files were listed.
        class_names: the listed classes.
        labels: (N,) class index of each readable image, in listing order.
        bad: relative paths of the unreadable files (one warning lists them).
    Returns:
        ``(labels, class_names)``, renumbered when a class was dropped (one warning names it).
    Raises:
        ValueError: no readable image, or readable images in one class only.
    """
    if bad:
        shown = ", ".join(bad[:20]) + (f" ... ({len(bad) - 20} more)" if len(bad) > 20 else "")
        logger.warning("skipped %d unreadable image file(s) in %s: %s", len(bad), root, shown)
    if not labels:
        raise ValueError(f"{root}: none of the {listed} image files could be decoded")
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
    return labels, class_names


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
                "sizes": saved["sizes"],
                "modes": [str(s) for s in saved["modes"]],
                "unreadable": [str(s) for s in saved["unreadable"]],
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(path, f"numpy cannot read it as decoded images ({exc})") from exc
    images, labels = cached["images"], cached["labels"]
    if (images.ndim != 4 or len(labels) != len(images) or len(cached["files"]) != len(images)
            or cached["sizes"].shape != (len(images), 2) or len(cached["modes"]) != len(images)
            or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(cached["class_names"])):
        raise CorruptFileError(path, "its arrays do not fit together")
    return cached


@dataclass(frozen=True)
class FolderSurvey:
    """What a class-per-folder tree holds, as :func:`survey_folder` found it.

    Attributes:
        root: the folder.
        class_names: classes with at least one readable image.
        counts: readable images per class, aligned with ``class_names``.
        sizes: native (width, height) -> number of images.
        modes: colour mode (``'RGB 8-bit'``, ``'gray 8-bit'``, ``'RGBA 8-bit'``,
            ``'gray 16-bit'``, ...) -> number of images.
        unreadable: relative paths of image-named files OpenCV could not decode.
        shape: the (C, H, W) every image is loaded as with these options.
    """

    root: Path
    class_names: list[str]
    counts: list[int]
    sizes: dict[tuple[int, int], int]
    modes: dict[str, int]
    unreadable: list[str]
    shape: tuple[int, int, int]

    def describe(self) -> str:
        """A multi-line summary (``python -m robustret.data info`` prints it for a folder)."""
        total = sum(self.counts)
        width = max([len(n) for n in self.class_names] + [5])
        lines = [f"folder: {self.root}",
                 f"images: {total} readable in {len(self.class_names)} classes, "
                 f"{len(self.unreadable)} unreadable",
                 f"{'class':<{width}}  {'images':>6}"]
        lines += [f"{n:<{width}}  {c:>6}" for n, c in zip(self.class_names, self.counts)]
        top = sorted(self.sizes.items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{w}x{h}: {n}" for (w, h), n in top[:8])
        more = f", ... ({len(top) - 8} more sizes)" if len(top) > 8 else ""
        lines.append(f"sizes (width x height): {shown}{more}")
        lines.append("modes: " + ", ".join(f"{m}: {n}" for m, n in sorted(self.modes.items())))
        if self.unreadable:
            listed = ", ".join(self.unreadable[:10])
            extra = f" ... ({len(self.unreadable) - 10} more)" if len(self.unreadable) > 10 else ""
            lines.append(f"unreadable: {listed}{extra}")
        c, h, w = self.shape
        lines.append(f"loaded as: (C, H, W) = ({c}, {h}, {w})"
                     + ("" if list(self.sizes) == [(w, h)]
                        else ", each centre-cropped to a square and resized"))
        return "\n".join(lines)


def survey_folder(path: str | os.PathLike, image_size: int | None = None) -> FolderSurvey:
    """Describe a class-per-folder tree: counts per class, sizes, modes, unreadable files.

    Decodes through the cache of :func:`decode_folder` (a later load with the same
    ``image_size`` reuses it).

    Raises:
        FileNotFoundError, ValueError: as :func:`decode_folder`.
    """
    root = Path(path)
    data = decode_folder(root, check_image_size(image_size))
    labels = np.asarray(data["labels"])
    sizes = Counter((int(w), int(h)) for h, w in np.asarray(data["sizes"]).tolist())
    return FolderSurvey(
        root=root,
        class_names=list(data["class_names"]),
        counts=np.bincount(labels, minlength=len(data["class_names"])).tolist(),
        sizes=dict(sizes),
        modes=dict(Counter(data["modes"])),
        unreadable=list(data["unreadable"]),
        shape=tuple(int(v) for v in np.asarray(data["images"]).shape[1:]),
    )


def split_positions(
    labels: np.ndarray,
    files: list[str],
    class_names: list[str],
    *,
    per_class: int | None,
    seed: int,
    query_fraction: float,
    split_file: str | os.PathLike | None,
    instance_pattern: str | None,
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, object]]:
    """The gallery and query positions of a folder's readable images, and their metadata.

    Args:
        labels: (N,) int64 labels of the readable images, in listing order.
        files: (N,) their relative paths.
        class_names, per_class, seed, query_fraction, split_file, instance_pattern: as
            :func:`load_folder`.
    Returns:
        ``((gallery, query), metadata)``: int64 positions into the N images, each side capped
        at ``per_class``; ``metadata`` holds the length-N columns ``file`` and, with
        ``instance_pattern``, ``instance``.
    """
    metadata: dict[str, object] = {"file": list(files)}
    if split_file is not None:
        gallery, query = split_from_file(files, split_file)
    elif instance_pattern is not None:
        ids = instance_ids(files, instance_pattern)
        metadata["instance"] = ids
        gallery, query = instance_split(labels, ids, query_fraction, seed, class_names)
    else:
        gallery, query = stratified_split(labels, query_fraction, seed)
    sides = tuple(
        positions[cap_per_class(labels[positions], per_class, seed, side)]
        for side, positions in (("gallery", gallery), ("queries", query))
    )
    return sides, metadata
