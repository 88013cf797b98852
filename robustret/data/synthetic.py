"""Built-in multi-view data set ``synthetic``: procedural 3D toys rendered like smallNORB.

Five categories (the smallNORB names) built from ellipsoids and boxes, ``n_instances``
objects per category whose proportions, part angles, albedo and surface markings are drawn
per instance (:mod:`robustret.data.synthetic_shapes`). Each object is rendered (orthographic
ray casting, z-buffer, Lambert shading: :mod:`robustret.data.synthetic_render`) at every
(elevation, azimuth, lighting) with a per-view random scale, offset, background level and
background clutter, to ``render_size`` x ``render_size`` grayscale.

Protocol as in smallNORB: with 10 instances the gallery holds instances 4, 6, 7, 8, 9 of each
category and the queries 0, 1, 2, 3, 5, so no object is on both sides. Every image depends on
``seed`` and the parameters only; the result is cached under ``cache_dir('synthetic')``.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.core.io import (
    CorruptFileError,
    atomic_write_bytes,
    read_verified,
    write_optional_cache,
)
from robustret.core.keys import fingerprint, source_hash
from robustret.core.paths import cache_dir
from robustret.core.rng import stream_seed
from robustret.data.base import (
    ImageSet,
    RetrievalData,
    cap_per_class,
    check_channels,
    check_image_size,
    to_float_images,
)
from robustret.data.synthetic_render import backgrounds, lights, render_views, view_rotations
from robustret.data.synthetic_shapes import build_object

logger = logging.getLogger(__name__)

CLASS_NAMES = ["animal", "human", "airplane", "truck", "car"]
SMALLNORB_GALLERY_INSTANCES = (4, 6, 7, 8, 9)
SHAPE_STREAM = "data/synthetic/shape"
"""Seed stream of an object's primitives (index: category, instance)."""
VIEW_STREAM = "data/synthetic/views"
"""Seed stream of an object's view jitter, scale, offset and backgrounds (same index)."""
RENDER_CODE = ("robustret.data.synthetic", "robustret.data.synthetic_shapes",
               "robustret.data.synthetic_render", "robustret.core.rng")
"""Modules whose source (with the first-party modules each imports) is part of the rendered-set
cache key."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator (all part of the cache key).

    Attributes:
        seed: everything is a function of this seed.
        render_size: rendered image side in pixels.
        n_instances: objects per category (>= 2); half go to the gallery.
        elevations: camera elevations, evenly spaced over 30..70 degrees.
        azimuths: camera azimuths, evenly spaced over 360 degrees.
        lightings: lighting conditions (light direction and ambient level).
    """

    seed: int = 0
    render_size: int = 96
    n_instances: int = 10
    elevations: int = 4
    azimuths: int = 12
    lightings: int = 2

    def __post_init__(self) -> None:
        for name in ("render_size", "elevations", "azimuths", "lightings"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_instances < 2:
            raise ValueError(
                f"n_instances must be >= 2 (gallery and query instances), got {self.n_instances}"
            )

    @property
    def views(self) -> int:
        return self.elevations * self.azimuths * self.lightings


def gallery_instances(n_instances: int) -> list[int]:
    """Instances in the gallery: smallNORB's 4, 6, 7, 8, 9 for 10; else the upper half."""
    if n_instances == 10:
        return list(SMALLNORB_GALLERY_INSTANCES)
    return list(range(n_instances // 2, n_instances))


def generate(config: SyntheticConfig) -> dict[str, np.ndarray]:
    """Render the whole set (no caching).

    Returns:
        dict of numpy arrays over N = 5 * n_instances * views images: ``images`` (N, 1, S, S)
        uint8, ``labels``, ``instance``, ``elevation``, ``azimuth``, ``lighting`` (N,) int64
        (indices), ``elevation_deg``, ``azimuth_deg`` (N,) float32.
    """
    start = time.perf_counter()
    cfg = config
    elev_deg = np.linspace(30, 70, cfg.elevations) if cfg.elevations > 1 else np.array([50.0])
    azim_deg = np.arange(cfg.azimuths) * 360.0 / cfg.azimuths
    e_idx, a_idx, l_idx = (
        g.reshape(-1)
        for g in np.meshgrid(
            np.arange(cfg.elevations),
            np.arange(cfg.azimuths),
            np.arange(cfg.lightings),
            indexing="ij",
        )
    )
    v = e_idx.size
    light_dirs, ambients = lights(cfg.lightings)
    blur = torch.tensor([0.25, 0.5, 0.25])
    kernel = (blur[:, None] * blur[None, :]).view(1, 1, 3, 3)
    out = {k: [] for k in ("images", "labels", "instance", "elevation", "azimuth", "lighting")}
    for category in range(len(CLASS_NAMES)):
        for instance in range(cfg.n_instances):
            parts = build_object(
                category,
                np.random.default_rng(stream_seed(cfg.seed, SHAPE_STREAM, category, instance)),
            )
            rng = np.random.default_rng(stream_seed(cfg.seed, VIEW_STREAM, category, instance))
            jitter_az = rng.uniform(-8, 8, v)  # degrees
            rotations = view_rotations(
                torch.from_numpy(np.radians(elev_deg[e_idx] + rng.uniform(-3, 3, v))).float(),
                torch.from_numpy(np.radians(azim_deg[a_idx] + jitter_az)).float(),
            )
            scale = torch.from_numpy(rng.uniform(0.62, 0.85, v)).float()
            offset = torch.from_numpy(rng.uniform(-0.09, 0.09, (v, 2))).float()
            light = light_dirs[torch.from_numpy(l_idx)]
            ambient = (
                ambients[torch.from_numpy(l_idx)]
                + torch.from_numpy(rng.uniform(-0.05, 0.05, v)).float()
            )
            shade, mask = render_views(
                parts, rotations, scale, offset, light, ambient, cfg.render_size
            )
            image = torch.where(mask, shade, backgrounds(rng, v, cfg.render_size))
            image = F.conv2d(
                F.pad(image[:, None], (1, 1, 1, 1), mode="replicate"), kernel
            )  # (V, 1, S, S)
            out["images"].append((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            out["labels"].append(np.full(v, category))
            out["instance"].append(np.full(v, instance))
            out["elevation"].append(e_idx)
            out["azimuth"].append(a_idx)
            out["lighting"].append(l_idx)
    result = {
        k: np.concatenate(val).astype(np.uint8 if k == "images" else np.int64)
        for k, val in out.items()
    }
    result["elevation_deg"] = elev_deg[result["elevation"]].astype(np.float32)
    result["azimuth_deg"] = azim_deg[result["azimuth"]].astype(np.float32)
    logger.info(
        "synthetic: rendered %d images in %.1f s",
        len(result["labels"]),
        time.perf_counter() - start,
    )
    return result


def generate_cached(config: SyntheticConfig, use_cache: bool = True) -> dict[str, np.ndarray]:
    """:func:`generate` through the on-disk cache keyed by every parameter and the renderer code.

    The cache file has a ``.sha256`` sidecar; one that does not match it or cannot be read as
    the rendered arrays is reported in one warning and rendered again.
    """
    key = fingerprint("synthetic", asdict(config), source_hash(*RENDER_CODE))
    path = cache_dir("synthetic") / f"{key}.npz"
    if use_cache and path.is_file():
        try:
            return _read_cache(path)
        except (CorruptFileError, OSError) as exc:
            logger.warning("synthetic cache %s; rendering again", exc)
    result = generate(config)
    if use_cache:
        buffer = io.BytesIO()
        np.savez(buffer, **result)
        write_optional_cache(
            path, lambda: atomic_write_bytes(path, buffer.getvalue(), checksum=True))
    return result


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a verified cache file; :class:`CorruptFileError` if it is not one."""
    data = read_verified(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(path, f"numpy cannot read it ({exc})") from exc
    images = arrays.get("images")
    if images is None or images.ndim != 4 or any(len(a) != len(images) for a in arrays.values()):
        raise CorruptFileError(path, "its arrays are not the rendered images and their labels")
    logger.info("synthetic: loaded from cache %s", path)
    return arrays


def load_synthetic(
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    render_size: int = 96,
    n_instances: int = 10,
    elevations: int = 4,
    azimuths: int = 12,
    lightings: int = 2,
    use_cache: bool = True,
) -> RetrievalData:
    """The built-in ``synthetic`` set with smallNORB's instance-disjoint protocol.

    Args:
        image_size: resize (INTER_AREA down) to (image_size, image_size); None keeps
            ``render_size``.
        channels: 'gray', 'rgb' or None (native: 1 channel).
        per_class: cap images per class in each split (seeded choice).
        seed: generator seed (shapes, views, backgrounds) and per-class choice seed.
        render_size, n_instances, elevations, azimuths, lightings: see :class:`SyntheticConfig`.
        use_cache: read / write ``cache_dir('synthetic')``.
    Returns:
        :class:`RetrievalData` named ``'synthetic'`` with ``5 * n_instances / 2 * views`` images
        per split (2,400 each by default), metadata ``instance``, ``elevation``, ``azimuth``,
        ``lighting`` (indices) and ``elevation_deg``, ``azimuth_deg``.
    """
    check_channels(channels)
    image_size = check_image_size(image_size)
    config = SyntheticConfig(
        seed, int(render_size), int(n_instances), int(elevations), int(azimuths), int(lightings)
    )
    data = generate_cached(config, use_cache)
    in_gallery = np.isin(data["instance"], gallery_instances(config.n_instances))
    gallery, queries = (
        _image_set(data, positions[cap_per_class(data["labels"][positions], per_class, seed,
                                                 side)], image_size, channels)
        for side, positions in (("gallery", np.flatnonzero(in_gallery)),
                                ("queries", np.flatnonzero(~in_gallery)))
    )
    return RetrievalData("synthetic", gallery, queries, list(CLASS_NAMES))


def load_synthetic_extra(
    extra_objects: int,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    render_size: int = 96,
    n_instances: int = 10,
    elevations: int = 4,
    azimuths: int = 12,
    lightings: int = 2,
    use_cache: bool = True,
) -> ImageSet:
    """Every view of ``extra_objects`` more objects per category of the built-in set.

    They are the instances ``n_instances .. n_instances + extra_objects - 1`` of the same
    generator: each object is drawn from its own (category, instance) seed stream, so the
    objects of :func:`load_synthetic` (same arguments) are unchanged and none of these is in
    its gallery or its queries. Meant for training (a restorer), never for searching.

    Args:
        extra_objects: objects per category (>= 1).
        image_size, channels, per_class, seed, render_size, n_instances, elevations,
            azimuths, lightings, use_cache: as for :func:`load_synthetic` (``per_class``
            caps the images per class here too).
    Returns:
        :class:`ImageSet` of ``5 * extra_objects * views`` images (N, C, H, W) float32 in
        [0, 1], metadata as for :func:`load_synthetic`.
    Raises:
        ValueError: ``extra_objects`` is not a positive integer.
    """
    if isinstance(extra_objects, bool) or not isinstance(extra_objects, int) or extra_objects < 1:
        raise ValueError(f"extra_objects must be a positive integer; got {extra_objects!r}")
    check_channels(channels)
    image_size = check_image_size(image_size)
    config = SyntheticConfig(seed, int(render_size), int(n_instances) + extra_objects,
                             int(elevations), int(azimuths), int(lightings))
    data = generate_cached(config, use_cache)
    positions = np.flatnonzero(data["instance"] >= int(n_instances))
    positions = positions[cap_per_class(data["labels"][positions], per_class, seed, "extra")]
    return _image_set(data, positions, image_size, channels)


def _image_set(data: dict[str, np.ndarray], positions: np.ndarray, image_size: int | None,
               channels: str | None) -> ImageSet:
    """The rendered images at ``positions`` (N,) as an :class:`ImageSet` with their metadata."""
    images = to_float_images(data["images"][positions], image_size, channels)
    metadata: dict[str, Tensor | list] = {
        k: torch.from_numpy(data[k][positions])
        for k in ("instance", "elevation", "azimuth", "lighting", "elevation_deg", "azimuth_deg")
    }
    return ImageSet(images, torch.from_numpy(data["labels"][positions]), list(CLASS_NAMES),
                    metadata)
