"""Decoding a landmark benchmark's photos into the image contract.

A query is cropped to its box as the protocols do (revisitop's example crops the PIL image with
``Image.crop(bbx)``, which rounds each coordinate to the nearest integer; the same rounding
here, with the box clipped to the photo). Then every image, gallery or cropped query, is
resized to ``size x size`` as a whole: the aspect ratio is not kept (a photo 4:3 becomes square),
but nothing is cut away (a centre crop would lose part of a query's box) and nothing is padded
(a border of constant value would be degraded and restored like image content). Shrinking uses
area averaging, enlarging bilinear interpolation (:func:`robustret.data.base.resize_square`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from robustret.data.base import check_channels, convert_channels, resize_square


def read_rgb(path: Path) -> np.ndarray:
    """One photo as (H, W, 3) uint8 RGB (gray files repeated to RGB).

    Raises:
        FileNotFoundError: no file.
        ValueError: a file OpenCV cannot decode (named).
    """
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist") from None
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ValueError(f"image {path} cannot be decoded; replace it or remove it from the "
                         "benchmark's lists")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_box(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The ``(x1, y1, x2, y2)`` box of an (H, W[, C]) image, each coordinate rounded to the
    nearest integer (as ``PIL.Image.crop``) and clipped to the image; x2, y2 exclusive.

    Raises:
        ValueError: a box with no pixel inside the image.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = max(0, min(x1, w)), max(0, min(x2, w))
    y1, y2 = max(0, min(y1, h)), max(0, min(y2, h))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {tuple(box)} holds no pixel of the {w}x{h} image")
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def prepare(image: np.ndarray, size: int, channels: str = "rgb") -> Tensor:
    """(H, W, 3) uint8 RGB -> (C, size, size) float32 in [0, 1] (the module's resizing)."""
    check_channels(channels)
    resized = resize_square(image, int(size))  # (size, size, 3)
    tensor = torch.from_numpy(resized.transpose(2, 0, 1).copy()).float().div_(255.0)
    return convert_channels(tensor[None], channels)[0]


def load_images(files: Sequence[Path], size: int, channels: str = "rgb",
                boxes: Sequence[Sequence[float]] | None = None) -> Tensor:
    """Decode, crop (when ``boxes`` are given) and resize ``files``.

    Returns:
        (N, C, size, size) float32 in [0, 1], C = 3 for ``rgb``, 1 for ``gray``.
    """
    if boxes is not None and len(boxes) != len(files):
        raise ValueError(f"{len(files)} files but {len(boxes)} boxes")
    out = []
    for i, path in enumerate(files):
        image = read_rgb(path)
        if boxes is not None:
            try:
                image = crop_box(image, boxes[i])
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        out.append(prepare(image, size, channels))
    if not out:
        return torch.zeros((0, 1 if channels == "gray" else 3, size, size))
    return torch.stack(out)


def iter_image_batches(files: Sequence[Path], size: int, channels: str = "rgb",
                       batch_size: int = 64) -> Iterator[Tensor]:
    """:func:`load_images` of ``files`` one batch at a time (a large gallery, distractors
    included, is never held decoded at once). Yields (B, C, size, size) in file order."""
    for start in range(0, len(files), batch_size):
        yield load_images(files[start:start + batch_size], size, channels)
