"""Reader (and writer) for the official smallNORB binary matrix files, plain or gzipped.

Format (all little-endian): int32 magic giving the element type, int32 ``ndim``, then
``max(3, ndim)`` int32 dimension sizes (unused slots hold 1), then the raw elements.
The data set is three files per split::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat[.gz]   (gallery)
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat[.gz]    (queries)

``dat`` is uint8 (N, 2, H, W) (two cameras), ``cat`` int32 (N,) categories 0..4, ``info``
int32 (N, 4) = instance, elevation index, azimuth (x10 degrees), lighting. Nothing here
assumes N = 24300 or 96x96. Uncompressed files are memory-mapped, so only the selected
images are read.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustret.core.io import atomic_write_bytes
from robustret.data.base import (
    ImageSet,
    RetrievalData,
    cap_per_class,
    check_channels,
    check_image_size,
    to_float_images,
)

logger = logging.getLogger(__name__)

CLASS_NAMES = ["animal", "human", "airplane", "truck", "car"]
INFO_COLUMNS = ("instance", "elevation", "azimuth", "lighting")

MAGIC_TO_DTYPE: dict[int, np.dtype] = {
    0x1E3D4C55: np.dtype("<u1"),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
    0x1E3D4C56: np.dtype("<i2"),
}
DTYPE_TO_MAGIC = {dtype: magic for magic, dtype in MAGIC_TO_DTYPE.items()}
_MAX_NDIM = 16
SPLITS = {"training": "gallery", "testing": "queries"}


class SmallNorbFormatError(ValueError):
    """A smallNORB file is corrupt, truncated or inconsistent with its siblings."""


@dataclass(frozen=True)
class MatrixHeader:
    """The parsed header of one binary matrix file."""

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # bytes before the first element

    @property
    def nbytes(self) -> int:
        return self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def write_smallnorb_matrix(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` in the smallNORB binary matrix format (gzipped when the name ends in .gz).

    Args:
        path: destination file; written atomically.
        array: any shape, dtype uint8, int32, float32, float64 or int16.
    Returns:
        The path written.
    Raises:
        TypeError: the dtype has no smallNORB magic number.
    """
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    magic = DTYPE_TO_MAGIC.get(np.dtype(dtype))
    if magic is None:
        raise TypeError(
            f"smallNORB matrices hold uint8, int16, int32, float32 or float64; got {array.dtype}"
        )
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], dtype="<i4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, payload)


def parse_header(raw: bytes, path: Path, total: int) -> MatrixHeader:
    """Parse and validate a header from the first bytes of a file.

    Args:
        raw: at least the first 8 bytes of the (decompressed) file, ideally 8 + 4 * 16.
        path: the file, for error messages.
        total: the (decompressed) file length in bytes.
    Raises:
        SmallNorbFormatError: bad magic, bad ndim or dimensions, or a length that does not
            match the header.
    """
    if len(raw) < 8:
        raise SmallNorbFormatError(
            f"{path}: truncated: expected at least 8 header bytes, got {len(raw)}"
        )
    magic, ndim = (int(v) for v in np.frombuffer(raw[:8], dtype="<i4"))
    if magic not in MAGIC_TO_DTYPE:
        raise SmallNorbFormatError(
            f"{path}: bad magic 0x{magic & 0xFFFFFFFF:08X}; not a smallNORB matrix file "
            f"(expected one of {', '.join(f'0x{m:08X}' for m in MAGIC_TO_DTYPE)})"
        )
    if not 1 <= ndim <= _MAX_NDIM:
        raise SmallNorbFormatError(f"{path}: bad ndim {ndim} (expected 1..{_MAX_NDIM})")
    n_slots = max(3, ndim)
    offset = 8 + 4 * n_slots
    if len(raw) < offset:
        raise SmallNorbFormatError(
            f"{path}: truncated: expected {offset} header bytes, got {len(raw)}"
        )
    dims = [int(v) for v in np.frombuffer(raw[8:offset], dtype="<i4")]
    if any(d < 0 for d in dims[:ndim]) or any(d != 1 for d in dims[ndim:]):
        raise SmallNorbFormatError(f"{path}: bad dimensions {dims} for ndim {ndim}")
    header = MatrixHeader(MAGIC_TO_DTYPE[magic], tuple(dims[:ndim]), offset)
    if total != header.nbytes:
        problem = "truncated" if total < header.nbytes else "trailing data"
        raise SmallNorbFormatError(
            f"{path}: {problem}: expected {header.nbytes} bytes for {header.dtype} {header.shape}, "
            f"got {total}"
        )
    return header


def read_smallnorb_matrix(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    """Read one binary matrix file (plain or .gz) after validating its header and length.

    Args:
        path: the file.
        mmap: memory-map an uncompressed file (read-only) instead of reading it.
    Returns:
        The array with the header's shape and dtype (a read-only ``np.memmap`` when mapped).
    Raises:
        FileNotFoundError: no such file.
        SmallNorbFormatError: see :func:`parse_header`; also a corrupt gzip stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"smallNORB file not found: {path}")
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise SmallNorbFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
        header = parse_header(data[: 8 + 4 * _MAX_NDIM], path, len(data))
        return np.frombuffer(data, dtype=header.dtype, offset=header.offset).reshape(header.shape)
    total = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8 + 4 * _MAX_NDIM)
    header = parse_header(head, path, total)
    if mmap and int(np.prod(header.shape)) > 0:
        return np.memmap(
            path, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape
        )
    with path.open("rb") as handle:
        handle.seek(header.offset)
        data = handle.read()
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape)


def find_split_files(root: Path, split: str) -> dict[str, Path]:
    """The ``dat``, ``cat`` and ``info`` files of ``split`` (training or testing) in ``root``."""
    files: dict[str, Path] = {}
    for kind in ("dat", "cat", "info"):
        matches = sorted(root.glob(f"smallnorb-*-{split}-{kind}.mat")) + sorted(
            root.glob(f"smallnorb-*-{split}-{kind}.mat.gz")
        )
        if not matches:
            raise FileNotFoundError(
                f"no smallNORB {split} {kind} file in {root}: expected "
                f"'smallnorb-5x...x96x96-{split}-{kind}.mat' or '.mat.gz' (the official file names)"
            )
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise ValueError(f"several smallNORB {split} {kind} files in {root}: {names}; keep one")
        files[kind] = matches[0]
    return files


def read_split(
    root: Path,
    split: str,
    *,
    camera: int | str = 0,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    side: str = "gallery",
) -> ImageSet:
    """Read one split as an :class:`ImageSet` (only the selected images are decoded).

    Args:
        root: folder with the official files.
        split: ``'training'`` or ``'testing'``.
        camera: 0, 1 or ``'both'`` (both views become separate images, column ``'camera'``).
        image_size, channels, per_class, seed: as in :func:`robustret.data.load`.
        side: ``'gallery'`` or ``'queries'``: the per-class capping stream.
    Returns:
        (N, C, H, W) float32 in [0, 1] with metadata ``instance``, ``elevation`` (index 0..8),
        ``azimuth`` (0, 2, .., 34; x10 degrees), ``lighting``, ``camera``.
    """
    files = find_split_files(root, split)
    dat = read_smallnorb_matrix(files["dat"])
    cat = np.asarray(read_smallnorb_matrix(files["cat"], mmap=False))
    info = np.asarray(read_smallnorb_matrix(files["info"], mmap=False))
    if dat.ndim != 4 or dat.dtype != np.uint8:
        raise SmallNorbFormatError(
            f"{files['dat']}: expected uint8 (N, 2, H, W) images, got {dat.dtype} {dat.shape}"
        )
    if cat.ndim != 1 or cat.dtype.kind != "i":
        raise SmallNorbFormatError(
            f"{files['cat']}: expected int32 (N,) categories, got {cat.dtype} {cat.shape}"
        )
    if info.ndim != 2 or info.shape[1] != 4 or info.dtype.kind != "i":
        raise SmallNorbFormatError(
            f"{files['info']}: expected int32 (N, 4) info, got {info.dtype} {info.shape}"
        )
    counts = {
        files["dat"].name: dat.shape[0],
        files["cat"].name: cat.shape[0],
        files["info"].name: info.shape[0],
    }
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise SmallNorbFormatError(f"mismatched counts in {root} ({split}): {detail}")
    if cat.size and (cat.min() < 0 or cat.max() >= len(CLASS_NAMES)):
        raise SmallNorbFormatError(
            f"{files['cat']}: categories must be 0..4, found {cat.min()}..{cat.max()}"
        )
    if camera in (0, 1):
        cameras = [int(camera)]
    elif camera == "both":
        cameras = [0, 1]
    else:
        raise ValueError(f"camera must be 0, 1 or 'both'; got {camera!r}")
    if dat.shape[1] <= max(cameras):
        raise SmallNorbFormatError(
            f"{files['dat']}: has {dat.shape[1]} camera views, camera {max(cameras)} asked"
        )

    n = dat.shape[0]
    item = np.repeat(np.arange(n), len(cameras))  # (N * cams,) item-major order
    cam = np.tile(np.asarray(cameras), n)
    labels = cat[item].astype(np.int64)
    keep = cap_per_class(labels, per_class, seed, side)
    item, cam, labels = item[keep], cam[keep], labels[keep]
    raw = np.asarray(dat[item, cam])[:, None]  # (M, 1, H, W) uint8, only these rows are read
    images = to_float_images(raw, image_size, channels)
    metadata: dict = {
        col: torch.from_numpy(info[item, j].astype(np.int64)) for j, col in enumerate(INFO_COLUMNS)
    }
    metadata["camera"] = torch.from_numpy(cam.astype(np.int64))
    return ImageSet(images, torch.from_numpy(labels), list(CLASS_NAMES), metadata)


def load_smallnorb(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    camera: int | str = 0,
) -> RetrievalData:
    """The smallNORB protocol: gallery = training split, queries = testing split.

    Args:
        path: folder holding the six official files (plain or .gz).
        image_size: resize to (image_size, image_size) with INTER_AREA; None keeps 96x96.
        channels: 'gray', 'rgb' or None (native: 1 channel).
        per_class: cap images per class in each split (seeded choice).
        seed: seed of the per-class choice.
        camera: 0, 1 or 'both'.
    Returns:
        :class:`RetrievalData` named ``'smallnorb:<path>'``.
    Raises:
        FileNotFoundError: the folder or one of the six files is missing.
        SmallNorbFormatError: a file is corrupt, truncated, or the counts do not match.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"smallNORB folder not found: {root}; pass the folder holding the official .mat(.gz) "
            "files"
        )
    check_channels(channels)
    image_size = check_image_size(image_size)
    splits = {}
    for split, side in SPLITS.items():
        splits[side] = read_split(
            root, split, camera=camera, image_size=image_size, channels=channels,
            per_class=per_class, seed=seed, side=side,
        )
        logger.info("smallNORB %s: %d images from %s", split, len(splits[side]), root)
    return RetrievalData(
        f"smallnorb:{root}", splits["gallery"], splits["queries"], list(CLASS_NAMES)
    )
