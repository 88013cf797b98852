"""The demo's logic as pure functions over tensors: parse a request, search, encode images.

A :class:`DemoService` holds a retriever, the gallery (images, labels, embeddings, one
:class:`~robustret.retrieval.GalleryIndex` per metric), the query split and the restorers it
offers (:class:`~robustret.demo.restorers.RestorerMenu`). Each search runs one query three ways
(original, degraded, restored), embeds the three images and returns their top-k gallery
matches. Degradation :data:`~robustret.demo.restorers.NONE` searches the query as it is (an
upload of a real photo): its degraded row is the original. Nothing here knows about HTTP:
bad input is a :class:`DemoError` carrying the status code and the one message the web app
answers with.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import PIL.Image
import torch
from torch import Tensor, nn

import degradations
import restoration
from robustret.core.quality import psnr
from robustret.data.base import convert_channels, crop_resize_square
from robustret.demo.errors import DemoError
from robustret.demo.restorers import NONE, Choice, RestorerMenu, untrained_choices
from robustret.evaluation.pipeline import degradation_seed
from robustret.retrieval import GalleryIndex, extract_embeddings

#: the largest upload accepted, in bytes
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: the most pixels an upload's header may claim (checked before decoding)
MAX_UPLOAD_PIXELS = 50_000_000
#: the largest k offered
MAX_K = 50
METRICS = ("l2", "cosine")
#: the three ways each query is searched with, in page order
ROWS = ("original", "degraded", "restored")
#: form fields a search reads (``image`` is the upload)
FIELDS = ("query_index", "class_name", "degradation", "severity", "restorer", "metric", "k",
          "x", "y", "w", "h")
DEFAULTS = {"severity": "3", "restorer": "identity", "metric": "l2", "k": "10"}


@dataclass(frozen=True)
class Crop:
    """A rectangle in the query image's own pixels (before it is resized)."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class SearchRequest:
    """One validated search: a query (``query_index`` or uploaded ``image`` bytes) and the
    settings. ``class_name`` may name an upload's class so that matches can be judged."""

    degradation: str
    severity: int
    restorer: str
    metric: str
    k: int
    query_index: int | None = None
    image: bytes | None = None
    class_name: str | None = None
    crop: Crop | None = None


@dataclass(frozen=True)
class Match:
    """One retrieved gallery item; ``hit`` is None when the query's class is unknown."""

    rank: int
    gallery_index: int
    class_name: str
    score: float
    hit: bool | None


@dataclass(frozen=True)
class Row:
    """One way of searching: the (C, H, W) query image, its PSNR against the original
    (None for the original itself), its matches and their hit rate (None: class unknown)."""

    name: str
    image: Tensor
    psnr: float | None
    matches: tuple[Match, ...]
    hit_rate: float | None


@dataclass(frozen=True)
class SearchResult:
    """What one search found, row by row in :data:`ROWS` order, and the restorer that made
    the restored row (``auto`` resolved to the run's choice)."""

    query_index: int | None
    class_name: str | None
    metric: str
    rows: tuple[Row, ...]
    restorer: Choice | None = None

    def to_json(self) -> dict:
        """The API's answer: ``results``, ``images`` (base64 PNGs), ``psnr``, ``hit_rate``,
        and ``restorer`` (``name``, ``label``, ``knowledge``)."""
        used = self.restorer
        return {
            "query": {"index": self.query_index, "class_name": self.class_name},
            "restorer": None if used is None else {"name": used.name, "label": used.label,
                                                   "knowledge": used.knowledge},
            "metric": self.metric,
            "score": "distance" if self.metric == "l2" else "similarity",
            "results": {row.name: [{"rank": m.rank, "gallery_index": m.gallery_index,
                                    "class_name": m.class_name, "score": m.score, "hit": m.hit}
                                   for m in row.matches] for row in self.rows},
            "images": {row.name: base64.b64encode(encode_png(row.image)).decode("ascii")
                       for row in self.rows},
            "psnr": {row.name: row.psnr for row in self.rows},
            "hit_rate": {row.name: row.hit_rate for row in self.rows},
        }


def encode_png(image: Tensor) -> bytes:
    """A (C, H, W) float image in [0, 1], C in {1, 3} (RGB), as PNG bytes."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    array = array[0] if array.shape[0] == 1 else cv2.cvtColor(array.transpose(1, 2, 0),
                                                              cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("OpenCV could not encode a PNG")
    return buffer.tobytes()


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` that an image file's header claims, read without decoding its
    pixels; None where Pillow does not know the format (OpenCV may still read it).

    Raises:
        DemoError: a claimed size far over any limit (413).
    """
    try:
        with warnings.catch_warnings():  # Pillow warns of, or refuses, huge claimed sizes
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as image:
                return image.size
    except PIL.Image.DecompressionBombError as exc:  # over twice Pillow's own pixel limit
        raise DemoError(f"the upload claims too many pixels ({exc}); the limit is "
                        f"{MAX_UPLOAD_PIXELS // 10**6} million", 413) from exc
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """A decoded image as float32 in [0, 1]: 8- and 16-bit by their type's range; a float
    image as it is when it lies in [0, 1], else stretched from its own range [min, max] (a
    float TIFF of 0..255 values is not clipped to white).

    Raises:
        DemoError: a float image with NaN or infinite values (422).
    """
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    array = image.astype(np.float32)
    if not np.isfinite(array).all():
        raise DemoError("the upload has NaN or infinite pixel values", 422)
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        return array
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def decode_upload(data: bytes) -> np.ndarray:
    """Uploaded bytes as an (H, W) or (H, W, 3) RGB float32 array in [0, 1].

    The size in bytes and the pixel count the header claims are checked before any decoding.

    Raises:
        DemoError: empty (400), over :data:`MAX_UPLOAD_BYTES` or :data:`MAX_UPLOAD_PIXELS`
            (413), not an image OpenCV reads (415), NaN or infinite values (422).
    """
    if not data:
        raise DemoError("the uploaded file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DemoError(f"the upload is over the limit of {MAX_UPLOAD_BYTES // 2**20} MB", 413)
    claimed = header_size(data)
    if claimed is not None and claimed[0] * claimed[1] > MAX_UPLOAD_PIXELS:
        raise DemoError(f"the upload claims {claimed[0]}x{claimed[1]} pixels, over the limit of "
                        f"{MAX_UPLOAD_PIXELS // 10**6} million", 413)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # a header OpenCV refuses (its own pixel limit, a broken file)
        image = None
    if image is None or image.size == 0:
        raise DemoError("the upload is not an image OpenCV can read (PNG, JPEG, TIFF, ...)", 415)
    array = to_unit_range(image)
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[:, :, 0]
        elif array.shape[2] in (3, 4):
            array = cv2.cvtColor(np.ascontiguousarray(array[:, :, :3]), cv2.COLOR_BGR2RGB)
        else:
            raise DemoError(f"the upload has {array.shape[2]} channels; need gray, RGB or RGBA",
                            415)
    return array


def apply_crop(image: np.ndarray, crop: Crop | None) -> np.ndarray:
    """``image`` (H, W[, C]) cut to ``crop``; a rectangle outside it is a :class:`DemoError`."""
    if crop is None:
        return image
    height, width = image.shape[:2]
    if crop.x + crop.w > width or crop.y + crop.h > height:
        raise DemoError(f"crop x={crop.x} y={crop.y} w={crop.w} h={crop.h} does not fit in the "
                        f"{width}x{height} image")
    return np.ascontiguousarray(image[crop.y:crop.y + crop.h, crop.x:crop.x + crop.w])


def to_query(image: np.ndarray, size: int, channels: int) -> Tensor:
    """An (H, W[, C]) float image converted like the data set's: centre-cropped to a square,
    resized to ``size``, gray or RGB to ``channels``. Returns (1, channels, size, size)."""
    square = crop_resize_square(image.astype(np.float32), size)
    chw = square[None] if square.ndim == 2 else square.transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(chw)).unsqueeze(0).clamp_(0.0, 1.0)
    return convert_channels(tensor, "gray" if channels == 1 else "rgb")


def _integer(fields: Mapping[str, str], name: str, low: int, high: int, what: str = "") -> int:
    text = fields[name].strip()
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise DemoError(f"{name} must be an integer in {low}..{high}{what}; got {text!r}")
    return value


class DemoService:
    """The demo's state and its one operation, :meth:`search`.

    Args:
        retriever: a model with ``embed`` (a :class:`robustret.models.Retriever`), eval mode.
        gallery_images: (G, C, H, W) float in [0, 1]; ``gallery_labels`` (G,) int64.
        query_images: (Q, C, H, W), the query split; ``query_labels`` (Q,) int64.
        class_names: label i means ``class_names[i]``.
        gallery_embeddings: (G, D) rows of the gallery; computed here when None.
        seed: the experiment's seed: query i is degraded exactly as in the run.
        device: where the retriever and the restorers run.
        restorers: what the page offers; None: identity and the classical filters only
            (a finished run's menu adds its trained restorers,
            :meth:`~robustret.demo.restorers.RestorerMenu.of_run`).
    """

    def __init__(self, retriever: nn.Module, gallery_images: Tensor, gallery_labels: Tensor,
                 query_images: Tensor, query_labels: Tensor, class_names: list[str], *,
                 gallery_embeddings: Tensor | None = None, seed: int = 0,
                 device: torch.device | str = "cpu",
                 restorers: RestorerMenu | None = None) -> None:
        self.device = torch.device(device)
        self.retriever = retriever.to(self.device).eval()
        self.gallery_images = gallery_images.detach().cpu()
        self.gallery_labels = gallery_labels.detach().cpu().long()
        self.query_images = query_images.detach().cpu()
        self.query_labels = query_labels.detach().cpu().long()
        self.class_names = list(class_names)
        self.seed = seed
        if gallery_embeddings is None:
            gallery_embeddings = extract_embeddings(self.retriever, self.gallery_images,
                                                    device=self.device, progress=False)
        self.indexes = {metric: GalleryIndex(gallery_embeddings, self.gallery_labels, metric)
                        for metric in METRICS}
        self.channels, self.size = int(gallery_images.shape[1]), int(gallery_images.shape[2])
        self.max_k = min(MAX_K, len(self.gallery_labels))
        self.restorers = restorers or RestorerMenu(untrained_choices(self.device))
        self.degradation_names = [NONE, *degradations.available()]
        self._lock = threading.Lock()  # one search at a time: the CPU is shared

    def options(self) -> dict:
        """What the page offers: choices, ranges and the data's shape."""
        return {
            "degradations": self.degradation_names,
            "upload_degradation": NONE,
            "severities": [1, 2, 3, 4, 5],
            "restorers": self.restorers.names(),
            "restorer_choices": self.restorers.to_json(),
            "metrics": list(METRICS),
            "k": {"min": 1, "max": self.max_k, "default": min(10, self.max_k)},
            "queries": len(self.query_labels),
            "gallery": len(self.gallery_labels),
            "class_names": self.class_names,
            "image_size": self.size,
            "channels": self.channels,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
        }

    def parse(self, fields: Mapping[str, str], image: bytes | None = None) -> SearchRequest:
        """Validate form ``fields`` (strings) and an upload into a :class:`SearchRequest`.

        Raises:
            DemoError: the first problem found, in one sentence.
        """
        fields = {**DEFAULTS, **{name: value for name, value in fields.items()
                                 if name in FIELDS and value.strip() != ""}}
        has_index = "query_index" in fields
        if (image is not None) == has_index:
            raise DemoError("give exactly one query: an uploaded image or a query_index")
        query_index = None
        if has_index:
            query_index = _integer(fields, "query_index", 0, len(self.query_labels) - 1,
                                   " (the query split's size)")
        else:
            decode_upload(image)  # reject a bad file before anything else
        if "degradation" not in fields:
            raise DemoError("degradation is required; one of "
                            f"{', '.join(self.degradation_names)}")
        name = fields["degradation"]
        if name not in self.degradation_names:
            raise DemoError(f"unknown degradation {name!r}; one of "
                            f"{', '.join(self.degradation_names)}")
        restorer = fields["restorer"]
        self.restorers.pick(restorer, name)  # unknown, or unable to run on such a query
        metric = fields["metric"]
        if metric not in METRICS:
            raise DemoError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
        class_name = fields.get("class_name")
        if class_name is not None and class_name not in self.class_names:
            raise DemoError(f"unknown class_name {class_name!r}; one of "
                            f"{', '.join(self.class_names)}")
        return SearchRequest(
            degradation=name, severity=_integer(fields, "severity", 1, 5),
            restorer=restorer, metric=metric, k=_integer(fields, "k", 1, self.max_k),
            query_index=query_index, image=image, class_name=class_name,
            crop=self._crop(fields))

    @staticmethod
    def _crop(fields: Mapping[str, str]) -> Crop | None:
        given = [name for name in ("x", "y", "w", "h") if name in fields]
        if not given:
            return None
        if len(given) != 4:
            raise DemoError("a crop needs all of x, y, w and h (or none of them)")
        limit = 1 << 16
        crop = Crop(*(_integer(fields, name, 0, limit) for name in ("x", "y", "w", "h")))
        if crop.w < 1 or crop.h < 1:
            raise DemoError(f"crop w and h must be at least 1; got w={crop.w} h={crop.h}")
        return crop

    def query(self, request: SearchRequest) -> tuple[Tensor, int | None]:
        """The (1, C, H, W) query image of ``request`` and its label (None when unknown)."""
        if request.query_index is not None:
            image = self.query_images[request.query_index]
            label = int(self.query_labels[request.query_index])
            if request.crop is None:
                return image.unsqueeze(0).clone(), label
            return to_query(apply_crop(image.numpy().transpose(1, 2, 0), request.crop),
                            self.size, self.channels), label
        assert request.image is not None
        array = apply_crop(decode_upload(request.image), request.crop)
        label = None if request.class_name is None else self.class_names.index(request.class_name)
        return to_query(array, self.size, self.channels), label

    def search(self, request: SearchRequest) -> SearchResult:
        """Search the original, degraded and restored query; see :class:`SearchResult`.

        A query of the split is degraded exactly as query ``query_index`` of the run (the
        run's seed stream); an upload is drawn as query 0. Degradation ``none`` leaves the
        query as it is and draws nothing (the severity is ignored).
        """
        with self._lock, torch.inference_mode():
            original, label = self.query(request)
            choice = self.restorers.pick(request.restorer, request.degradation)
            degraded, params = original, {}
            if request.degradation != NONE:
                degraded, params = degradations.apply_indexed(
                    original, request.degradation, request.severity,
                    seed=degradation_seed(self.seed, request.severity),
                    indices=torch.tensor([request.query_index or 0]), return_params=True)
            try:
                restored = restoration.restore_batches(choice.model, degraded, params,
                                                       batch_size=1, device=self.device)
            except ValueError as exc:  # drawn values it cannot read (a noise hybrid's kind
                # on a wild image that is not noisy): the restorer's contract, said as it is
                raise DemoError(f"{choice.label} cannot restore this query: {exc}", 422) from exc
            images = torch.cat([original, degraded.cpu(), restored.cpu()]).clamp(0, 1)
            embeddings = extract_embeddings(self.retriever, images, device=self.device,
                                            progress=False)
            scores, indices = self.indexes[request.metric].search(embeddings, request.k)
            quality = psnr(images, original.expand_as(images))
        rows = []
        for i, name in enumerate(ROWS):
            matches = []
            for rank, (score, item) in enumerate(zip(scores[i].tolist(), indices[i].tolist()),
                                                 start=1):
                item_label = int(self.gallery_labels[item])
                matches.append(Match(rank, item, self.class_names[item_label], float(score),
                                     None if label is None else item_label == label))
            hits = [m.hit for m in matches]
            value = float(quality[i])
            rows.append(Row(name, images[i], None if i == 0 or not np.isfinite(value) else value,
                            tuple(matches),
                            None if label is None else sum(hits) / len(hits)))
        return SearchResult(request.query_index,
                            None if label is None else self.class_names[label],
                            request.metric, tuple(rows), choice)

    def gallery_png(self, index: int) -> bytes:
        """Gallery item ``index`` as PNG bytes; out of range is a 404 :class:`DemoError`."""
        if not 0 <= index < len(self.gallery_labels):
            last = len(self.gallery_labels) - 1
            raise DemoError(f"gallery index {index} is out of range 0..{last}", 404)
        return encode_png(self.gallery_images[index])
