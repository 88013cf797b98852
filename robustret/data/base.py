"""The one retrieval data interface: :class:`ImageSet` and :class:`RetrievalData`.

Every reader (synthetic, smallNORB, labeled folder) returns a :class:`RetrievalData`
whose two splits are :class:`ImageSet` objects holding ``(N, C, H, W)`` float32 images in
``[0, 1]`` and ``(N,)`` int64 labels. The helpers here (channel conversion, resizing,
per-class capping) are shared by the readers so that every spec behaves the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import Tensor

from robustret.core.checks import check_images, check_labels
from robustret.core.rng import stream_seed

CHANNEL_CHOICES = ("gray", "rgb")
CAP_SIDES = ("gallery", "queries", "extra")
"""What :func:`cap_per_class` caps: the two splits and a set's extra (training-only) objects."""


@dataclass
class ImageSet:
    """A labeled image collection (one split).

    Attributes:
        images: (N, C, H, W) float32 in [0, 1], C in {1, 3}.
        labels: (N,) int64 class indices into ``class_names``.
        class_names: names of all classes of the data set (not only those present).
        metadata: optional per-image columns, each a (N,) tensor or a length-N list,
            e.g. ``'instance'``, ``'elevation'``, ``'azimuth'``, ``'lighting'``, ``'file'``.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    metadata: dict[str, Tensor | list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_images(self.images, "ImageSet.images", check_values=False)
        check_labels(self.labels, self.images.shape[0], "ImageSet.labels")
        if self.labels.dtype != torch.int64:
            self.labels = self.labels.long()
        for key, column in self.metadata.items():
            if len(column) != len(self.labels):
                raise ValueError(
                    f"metadata column {key!r} has {len(column)} entries but the set has "
                    f"{len(self.labels)} images"
                )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: Sequence[int] | Tensor | np.ndarray) -> ImageSet:
        """The images at ``indices`` (in that order), with their labels and metadata.

        Args:
            indices: (M,) integer positions, or a (N,) boolean mask.
        Returns:
            A new :class:`ImageSet` of M images (tensors are indexed copies).
        """
        index = torch.as_tensor(np.asarray(indices))
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.long()
        positions = index.tolist()
        metadata: dict[str, Tensor | list] = {}
        for key, column in self.metadata.items():
            metadata[key] = (
                column[index] if isinstance(column, Tensor) else [column[i] for i in positions]
            )
        return ImageSet(self.images[index], self.labels[index], list(self.class_names), metadata)

    def class_counts(self) -> list[int]:
        """Number of images per class, aligned with ``class_names``."""
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


@dataclass
class RetrievalData:
    """A gallery and a query split over the same classes.

    Attributes:
        name: where it came from, e.g. ``'synthetic'``, ``'smallnorb:/path'``, ``'folder:/path'``.
        gallery: the images the retriever is trained on and that are searched.
        queries: the images that are (degraded and) used as queries.
        class_names: the shared class names; label i means ``class_names[i]``.
    """

    name: str
    gallery: ImageSet
    queries: ImageSet
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.gallery.images.shape[1:] != self.queries.images.shape[1:]:
            raise ValueError(
                f"gallery images are {tuple(self.gallery.images.shape[1:])} but queries are "
                f"{tuple(self.queries.images.shape[1:])}; both splits must share one (C, H, W)"
            )

    def describe(self) -> str:
        """A multi-line summary: classes, counts per split and per class, image shape."""
        c, h, w = self.gallery.images.shape[1:]
        gallery_counts = self.gallery.class_counts()
        query_counts = self.queries.class_counts()
        width = max([len(n) for n in self.class_names] + [5])
        lines = [
            f"dataset: {self.name}",
            f"classes: {len(self.class_names)}",
            f"image shape: (C, H, W) = ({c}, {h}, {w}), float32 in [0, 1]",
            f"gallery: {len(self.gallery)} images",
            f"queries: {len(self.queries)} images",
            f"{'class':<{width}}  {'gallery':>7}  {'queries':>7}",
        ]
        for name, n_gallery, n_query in zip(self.class_names, gallery_counts, query_counts):
            lines.append(f"{name:<{width}}  {n_gallery:>7}  {n_query:>7}")
        extra = sorted(set(self.gallery.metadata) | set(self.queries.metadata))
        if extra:
            lines.append("metadata: " + ", ".join(extra))
        return "\n".join(lines)


def cap_per_class(
    labels: np.ndarray | Tensor, per_class: int | None, seed: int, side: str
) -> np.ndarray:
    """Positions of at most ``per_class`` items of each class, a seeded choice.

    Args:
        labels: (N,) integer class labels.
        per_class: the cap; None keeps everything.
        seed: the data seed.
        side: one of :data:`CAP_SIDES`: each side draws from its own seed stream.
    Returns:
        (M,) int64 positions in increasing order. Class ``c`` draws from
        ``stream_seed(seed, f"data/cap/{side}", c)``, so the choice for one class does not
        depend on others.
    Raises:
        ValueError: ``per_class`` < 1, or an unknown ``side``.
    """
    if side not in CAP_SIDES:
        raise ValueError(f"side must be one of {CAP_SIDES}; got {side!r}")
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if per_class is None:
        return np.arange(labels.shape[0], dtype=np.int64)
    if int(per_class) < 1:
        raise ValueError(f"per_class must be >= 1 or None, got {per_class}")
    keep = []
    for c in np.unique(labels):
        positions = np.flatnonzero(labels == c)
        if positions.size > per_class:
            rng = np.random.default_rng(stream_seed(seed, f"data/cap/{side}", int(c)))
            positions = np.sort(rng.choice(positions, size=int(per_class), replace=False))
        keep.append(positions)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def check_channels(channels: str | None) -> str | None:
    """Validate the ``channels`` option: ``'gray'``, ``'rgb'`` or None (native)."""
    if channels is not None and channels not in CHANNEL_CHOICES:
        raise ValueError(f"channels must be 'gray', 'rgb' or None (native); got {channels!r}")
    return channels


def check_image_size(image_size: int | None) -> int | None:
    """Validate the ``image_size`` option: a positive int or None (native size)."""
    if image_size is not None and (int(image_size) != image_size or int(image_size) < 1):
        raise ValueError(f"image_size must be a positive integer or None; got {image_size!r}")
    return None if image_size is None else int(image_size)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one (H, W) or (H, W, C) image to (size, size[, C]).

    Shrinking uses ``cv2.INTER_AREA`` (area averaging, no aliasing); enlarging uses
    ``cv2.INTER_LINEAR``. The dtype is kept.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(image, (size, size), interpolation=interpolation)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[:, :, None]
    return out


def crop_resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop one (H, W) or (H, W, C) image to a square and resize it to (size, size[, C]).

    The square is the shorter side, taken from the middle of the longer one (an odd remainder
    leaves the extra pixel at the end), then :func:`resize_square` brings it to ``size``: the
    same as resizing the shorter side to ``size`` and centre-cropping, without distorting the
    aspect ratio. A square image is only resized. The dtype is kept.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_square(np.ascontiguousarray(image[top:top + side, left:left + side]), size)


def to_float_images(
    array: np.ndarray, image_size: int | None = None, channels: str | None = None
) -> Tensor:
    """Convert a (N, C, H, W) integer or float array into the image contract.

    Args:
        array: (N, C, H, W), C in {1, 3}; uint8 (0..255), uint16 (0..65535) or float in [0, 1].
        image_size: resize every image to (image_size, image_size); None keeps the size.
        channels: ``'gray'`` (ITU-R 601 luma), ``'rgb'`` (gray repeated) or None (native).
    Returns:
        (N, C', H', W') float32 in [0, 1].
    """
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, C, H, W) with C in {{1, 3}}, got {array.shape}")
    if image_size is not None and array.shape[2:] != (image_size, image_size):
        array = np.stack(
            [resize_square(np.ascontiguousarray(a.transpose(1, 2, 0)), image_size) for a in array]
        )
        array = (
            array.transpose(0, 3, 1, 2)
            if len(array)
            else np.zeros((0, array.shape[1], image_size, image_size), array.dtype)
        )
    if array.dtype == np.uint8:
        images = torch.from_numpy(np.ascontiguousarray(array)).float().div_(255.0)
    elif array.dtype == np.uint16:
        images = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32)).div_(65535.0)
    else:
        images = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).clamp_(0.0, 1.0)
    return convert_channels(images, channels)


def convert_channels(images: Tensor, channels: str | None) -> Tensor:
    """(N, C, H, W) float -> the requested channel count (see :func:`to_float_images`)."""
    check_channels(channels)
    if channels == "gray" and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)
    if channels == "rgb" and images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    return images
