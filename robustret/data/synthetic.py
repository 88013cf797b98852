"""Built-in multi-view data set ``synthetic``: procedural 3D toys rendered like smallNORB.

Five categories (the smallNORB names) built from ellipsoids and boxes, ``n_instances``
objects per category whose proportions, part angles, albedo and surface markings are drawn
per instance. Each object is rendered (orthographic ray casting, z-buffer, Lambert shading)
at every (elevation, azimuth, lighting) with a per-view random scale, offset, background
level and background clutter, to ``render_size`` x ``render_size`` grayscale.

Protocol as in smallNORB: with 10 instances the gallery holds instances 4, 6, 7, 8, 9 of each
category and the queries 0, 1, 2, 3, 5, so no object is on both sides. Every image depends on
``seed`` and the parameters only; the result is cached under ``cache_dir('synthetic')``.
"""

from __future__ import annotations

import io
import logging
import math
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.core.io import CorruptFileError, atomic_write_bytes, read_verified
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

logger = logging.getLogger(__name__)

CLASS_NAMES = ["animal", "human", "airplane", "truck", "car"]
SMALLNORB_GALLERY_INSTANCES = (4, 6, 7, 8, 9)
ELLIPSOID, BOX = 0, 1
SHAPE_STREAM = "data/synthetic/shape"
"""Seed stream of an object's primitives (index: category, instance)."""
VIEW_STREAM = "data/synthetic/views"
"""Seed stream of an object's view jitter, scale, offset and backgrounds (same index)."""
RENDER_CODE = ("robustret.data.synthetic", "robustret.core.rng")
"""Modules whose source is part of the rendered-set cache key."""


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


# ---------------------------------------------------------------- shapes


def _rot(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Rotation Ry(yaw) @ Rx(pitch) @ Rz(roll), radians."""
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


class _Shape:
    """Primitives of one object: kind, center, rotation, size (radii / half sizes), albedo,
    texture."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.parts: list[dict] = []
        self.albedo = rng.uniform(0.35, 0.95)

    def add(
        self,
        kind: int,
        center,
        size,
        rotation: np.ndarray | None = None,
        shade: float | None = None,
    ) -> None:
        rng = self.rng
        direction = rng.normal(size=3)
        self.parts.append(
            {
                "kind": kind,
                "center": np.asarray(center, dtype=np.float64),
                "size": np.maximum(np.asarray(size, dtype=np.float64), 1e-3),
                "rotation": np.eye(3) if rotation is None else rotation,
                "albedo": float(
                    np.clip(
                        (self.albedo if shade is None else shade) + rng.normal(0, 0.08), 0.15, 1.0
                    )
                ),
                "tex_dir": direction / np.linalg.norm(direction),
                "tex_freq": rng.uniform(2.0, 9.0),
                "tex_phase": rng.uniform(0, 2 * math.pi),
                "tex_amp": rng.uniform(0.0, 0.35) * (rng.random() < 0.7),
            }
        )

    def wheels(self, xs, radius: float, track: float, width: float) -> None:
        shade = self.rng.uniform(0.1, 0.3)
        for x in xs:
            for z in (-track, track):
                self.add(ELLIPSOID, (x, radius, z), (radius, radius, width), shade=shade)


def _animal(s: _Shape, r: np.random.Generator) -> None:
    length, height, width = r.uniform(0.45, 0.85), r.uniform(0.18, 0.32), r.uniform(0.16, 0.3)
    leg = r.uniform(0.2, 0.55)
    y = leg + height * 0.6
    s.add(ELLIPSOID, (0, y, 0), (length, height, width), _rot(roll=r.uniform(-0.15, 0.15)))
    head = r.uniform(0.12, 0.24)
    s.add(
        ELLIPSOID,
        (length * 0.95, y + r.uniform(0.05, 0.4), 0),
        (head * r.uniform(1, 1.6), head, head * 0.8),
        _rot(roll=r.uniform(-0.6, 0.3)),
    )
    thick = r.uniform(0.04, 0.09)
    for x in (-0.6 * length, 0.6 * length):
        for z in (-0.55 * width, 0.55 * width):
            s.add(
                ELLIPSOID,
                (x, leg / 2 + 0.02, z),
                (thick, leg / 2 + 0.05, thick),
                _rot(roll=r.uniform(-0.3, 0.3)),
            )
    if r.random() < 0.8:
        tail = r.uniform(0.15, 0.45)
        s.add(ELLIPSOID, (-length - tail * 0.5, y + r.uniform(-0.1, 0.2), 0), (tail, 0.04, 0.04),
              _rot(roll=r.uniform(-0.9, 0.9)))


def _human(s: _Shape, r: np.random.Generator) -> None:
    leg, torso, shoulders = r.uniform(0.6, 0.9), r.uniform(0.35, 0.5), r.uniform(0.18, 0.3)
    stance = r.uniform(0.0, 0.35)
    for side in (-1, 1):
        s.add(
            ELLIPSOID,
            (0, leg / 2, side * 0.1),
            (0.08, leg / 2 + 0.03, 0.08),
            _rot(pitch=side * stance),
        )
    kind = BOX if r.random() < 0.5 else ELLIPSOID
    s.add(kind, (0, leg + torso * 0.9, 0), (0.12, torso, shoulders))
    s.add(ELLIPSOID, (0, leg + 2 * torso + 0.15, 0), (0.13, r.uniform(0.13, 0.19), 0.12))
    arm = r.uniform(0.3, 0.45)
    for side in (-1, 1):
        angle = r.uniform(0.1, 1.6)
        s.add(
            ELLIPSOID,
            (
                r.uniform(-0.1, 0.15),
                leg + 2 * torso - arm * 0.8 * math.cos(angle) * 0.6,
                side * (shoulders + arm * 0.5 * math.sin(angle)),
            ),
            (0.06, arm, 0.06),
            _rot(pitch=side * angle, roll=r.uniform(-0.5, 0.5)),
        )


def _airplane(s: _Shape, r: np.random.Generator) -> None:
    length, radius = r.uniform(0.8, 1.2), r.uniform(0.08, 0.17)
    y = r.uniform(0.3, 0.5)
    s.add(ELLIPSOID, (0, y, 0), (length, radius, radius))
    span, chord, sweep = r.uniform(0.5, 1.1), r.uniform(0.12, 0.3), r.uniform(-0.2, 0.7)
    wing_x = r.uniform(-0.2, 0.25)
    for side in (-1, 1):
        s.add(BOX, (wing_x, y + r.uniform(-0.05, 0.05), side * span / 2), (chord, 0.02, span / 2),
              _rot(yaw=side * sweep, pitch=side * r.uniform(-0.1, 0.15)))
    s.add(
        BOX,
        (-length * 0.85, y + r.uniform(0.12, 0.25), 0),
        (r.uniform(0.08, 0.18), r.uniform(0.1, 0.22), 0.015),
        _rot(roll=r.uniform(-0.5, 0.0)),
    )
    s.add(BOX, (-length * 0.85, y + 0.03, 0), (r.uniform(0.06, 0.12), 0.015, r.uniform(0.15, 0.35)))
    if r.random() < 0.5:  # engines
        for side in (-1, 1):
            s.add(ELLIPSOID, (wing_x + 0.1, y - 0.08, side * span * 0.35), (0.16, 0.05, 0.05))


def _vehicle(s: _Shape, r: np.random.Generator, truck: bool) -> None:
    wheel = r.uniform(0.1, 0.2)
    if truck:
        length, width = r.uniform(0.75, 1.1), r.uniform(0.3, 0.45)
        cab_len, cab_h = r.uniform(0.18, 0.3), r.uniform(0.22, 0.38)
        cargo_h = r.uniform(0.15, 0.5)
        base = wheel + 0.04
        s.add(BOX, (length - cab_len, base + cab_h, 0), (cab_len, cab_h, width * 0.95))
        cargo_len = length - cab_len - 0.04
        kind = BOX if r.random() < 0.8 else ELLIPSOID
        s.add(kind, (-cab_len, base + cargo_h, 0), (cargo_len, cargo_h, width))
        s.add(BOX, (0, base - 0.01, 0), (length, 0.04, width * 0.8), shade=0.3)
        axles = [length - cab_len, -length * 0.6] + ([-length * 0.25] if r.random() < 0.5 else [])
        s.wheels(axles, wheel, width * 0.9, r.uniform(0.05, 0.09))
    else:
        length, width = r.uniform(0.65, 1.0), r.uniform(0.3, 0.42)
        body_h = r.uniform(0.1, 0.2)
        base = wheel + 0.02
        s.add(
            BOX, (0, base + body_h, 0), (length, body_h, width), _rot(roll=r.uniform(-0.05, 0.05))
        )
        cabin_len, cabin_h = length * r.uniform(0.35, 0.75), r.uniform(0.1, 0.3)
        kind = ELLIPSOID if r.random() < 0.6 else BOX
        s.add(
            kind,
            (
                r.uniform(-0.25, 0.15) * length,
                base + 2 * body_h + cabin_h * (0.45 if kind == ELLIPSOID else 1.0),
                0,
            ),
            (cabin_len, cabin_h, width * 0.9),
        )
        if r.random() < 0.3:  # spoiler / roof box
            s.add(BOX, (-length * 0.9, base + 2 * body_h + 0.05, 0), (0.06, 0.03, width))
        s.wheels([length * 0.62, -length * 0.62], wheel, width * 0.95, r.uniform(0.05, 0.09))


def build_object(category: int, rng: np.random.Generator) -> list[dict]:
    """The primitives of one instance of ``category`` (0..4), centred and scaled to radius ~1."""
    shape = _Shape(rng)
    builders = [
        _animal,
        _human,
        _airplane,
        lambda s, r: _vehicle(s, r, True),
        lambda s, r: _vehicle(s, r, False),
    ]
    builders[category](shape, rng)
    centers = np.stack([p["center"] for p in shape.parts])
    extents = np.stack([np.abs(p["rotation"]) @ p["size"] for p in shape.parts])
    low, high = (centers - extents).min(0), (centers + extents).max(0)
    middle = (low + high) / 2
    radius = float(
        np.max(np.linalg.norm(np.maximum(np.abs(centers - middle) + extents, 0), axis=1))
    )
    for part in shape.parts:
        part["center"] = (part["center"] - middle) / radius
        part["size"] = part["size"] / radius
    return shape.parts


# ---------------------------------------------------------------- renderer


def _view_rotations(elevation: Tensor, azimuth: Tensor) -> Tensor:
    """(V, 3, 3) object->camera rotations Rx(elevation) @ Ry(azimuth), radians.

    The camera looks along -z.
    """
    ce, se, ca, sa = elevation.cos(), elevation.sin(), azimuth.cos(), azimuth.sin()
    zero, one = torch.zeros_like(ce), torch.ones_like(ce)
    ry = torch.stack([ca, zero, sa, zero, one, zero, -sa, zero, ca], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, ce, -se, zero, se, ce], -1).view(-1, 3, 3)
    return rx @ ry


def render_views(parts: list[dict], rotations: Tensor, scale: Tensor, offset: Tensor, light: Tensor,
                 ambient: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Ray-cast one object under V views.

    Args:
        parts: primitives from :func:`build_object`.
        rotations: (V, 3, 3) object->camera rotations.
        scale: (V,) object scale in image units (image spans [-1, 1]).
        offset: (V, 2) image-plane shift (x right, y up) in image units.
        light: (V, 3) unit light directions in the camera frame.
        ambient: (V,) ambient light level.
        size: image side in pixels.
    Returns:
        ``(shade, mask)``: (V, size, size) float32 intensity and bool coverage.
    """
    v = rotations.shape[0]
    coords = (
        torch.arange(size, dtype=torch.float32) + 0.5
    ) / size * 2 - 1  # pixel centers in [-1, 1]
    depth = torch.full((v, size * size), -float("inf"))
    shade = torch.zeros(v, size * size)
    for part in parts:
        q = rotations @ torch.as_tensor(
            part["rotation"], dtype=torch.float32
        )  # (V, 3, 3) part->camera
        center = scale[:, None] * (
            rotations @ torch.as_tensor(part["center"], dtype=torch.float32)
        )  # (V, 3)
        center[:, :2] += offset
        radii = scale[:, None] * torch.as_tensor(part["size"], dtype=torch.float32)  # (V, 3)
        tex = (
            q @ (torch.as_tensor(part["tex_dir"], dtype=torch.float32) / radii)[:, :, None]
        )  # (V, 3, 1)
        # only a window around the part's bounding circle is cast: same side for all views
        bound = radii.max(1).values if part["kind"] == ELLIPSOID else radii.norm(dim=1)  # (V,)
        side = min(size, int(math.ceil(float(bound.max()) * size)) + 3)
        col0 = (
            ((center[:, 0] + 1) / 2 * size - side / 2).round().long().clamp(0, size - side)
        )  # (V,)
        row0 = ((1 - center[:, 1]) / 2 * size - side / 2).round().long().clamp(0, size - side)
        grid = torch.arange(side)
        cols = (col0[:, None, None] + grid[None, None, :]).expand(v, side, side)
        rows = (row0[:, None, None] + grid[None, :, None]).expand(v, side, side)
        index = (rows * size + cols).reshape(v, -1)  # (V, W) flat pixel positions
        px = coords[cols.reshape(v, -1)] - center[:, :1]  # (V, W) x relative to the part center
        py = (
            -coords[rows.reshape(v, -1)] - center[:, 1:2]
        )  # (V, W) y (up) relative to the part center
        # every per-pixel quantity is a (V, P) tensor; per-view constants are (V, 1) columns
        if part["kind"] == ELLIPSOID:
            a = q @ torch.diag_embed(radii.reciprocal().square()) @ q.transpose(1, 2)  # (V, 3, 3)
            a00, a01, a02 = a[:, 0, 0, None], a[:, 0, 1, None], a[:, 0, 2, None]
            a11, a12, a22 = a[:, 1, 1, None], a[:, 1, 2, None], a[:, 2, 2, None]
            b = a02 * px + a12 * py
            c = (a00 * px + 2 * a01 * py) * px + a11 * py * py - 1
            disc = b * b - a22 * c
            hit = disc >= 0
            pz = (
                disc.clamp_min(0).sqrt() - b
            ) / a22  # front (largest z) root, relative to the center
            nx, ny, nz = (
                a[:, k, 0, None] * px + a[:, k, 1, None] * py + a[:, k, 2, None] * pz
                for k in range(3)
            )
            norm = (nx * nx + ny * ny + nz * nz).sqrt().clamp_min(1e-12)
            lambert = (nx * light[:, 0:1] + ny * light[:, 1:2] + nz * light[:, 2:3]) / norm
            texture = tex[:, 0] * px + tex[:, 1] * py + tex[:, 2] * pz
        else:
            cz = center[:, 2:3]
            d = -q[:, 2, :]  # (V, 3) part-frame direction of the camera ray (0, 0, -1)
            d = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
            tnear = tfar = None
            axis = torch.zeros_like(px, dtype=torch.int64)
            for k in range(3):
                o = (
                    q[:, 0, k, None] * px + q[:, 1, k, None] * py - q[:, 2, k, None] * cz
                )  # origin (z = 0), part frame
                t1 = (-radii[:, k, None] - o) / d[:, k, None]
                t2 = (radii[:, k, None] - o) / d[:, k, None]
                lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
                if tnear is None:
                    tnear, tfar = lo, hi
                else:
                    axis = torch.where(lo > tnear, k, axis)
                    tnear, tfar = torch.maximum(tnear, lo), torch.minimum(tfar, hi)
            hit = tnear <= tfar
            pz = -tnear - cz
            # entry face normal opposes the ray: camera normal = -sign(d_k) q[:, :, k]
            face = -torch.sign(d)[:, None, :] * q  # (V, 3, 3), column k = normal of face k
            face_light = (face * light[:, :, None]).sum(1)  # (V, 3)
            lambert = torch.where(
                axis == 0,
                face_light[:, 0:1],
                torch.where(axis == 1, face_light[:, 1:2], face_light[:, 2:3]),
            )
            texture = tex[:, 0] * px + tex[:, 1] * py + tex[:, 2] * pz
        z = center[:, 2:3] + pz
        current = depth.gather(1, index)
        closer = hit & (z > current)
        pattern = torch.sin(part["tex_freq"] * texture + part["tex_phase"])
        albedo = part["albedo"] * (1 + part["tex_amp"] * torch.sign(pattern))
        value = albedo * (ambient[:, None] + (1 - ambient[:, None]) * lambert.clamp_min(0))
        depth.scatter_(1, index, torch.where(closer, z, current))
        shade.scatter_(1, index, torch.where(closer, value, shade.gather(1, index)))
    mask = torch.isfinite(depth)
    return shade.view(v, size, size), mask.view(v, size, size)


def _backgrounds(rng: np.random.Generator, v: int, size: int) -> Tensor:
    """(V, size, size) backgrounds: a level, a smooth gradient-like texture and a few blobs."""
    level = torch.from_numpy(rng.uniform(0.05, 0.55, size=(v, 1, 1, 1)).astype(np.float32))
    coarse = torch.from_numpy(rng.normal(0, 0.08, size=(v, 1, 5, 5)).astype(np.float32))
    image = level + F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    for _ in range(3):  # clutter: soft elliptic blobs, present in ~half the views each
        cx, cy = (
            torch.from_numpy(rng.uniform(-1.1, 1.1, size=(v, 1, 1)).astype(np.float32))
            for _ in range(2)
        )
        rx, ry = (
            torch.from_numpy(rng.uniform(0.08, 0.35, size=(v, 1, 1)).astype(np.float32))
            for _ in range(2)
        )
        amp = torch.from_numpy(
            (rng.uniform(-0.3, 0.3, size=(v, 1, 1)) * (rng.random((v, 1, 1)) < 0.5)).astype(
                np.float32
            )
        )
        blob = torch.sigmoid((1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2) * 6)
        image = image + (amp * blob)[:, None]
    return image[:, 0]


def _lights(lightings: int) -> tuple[Tensor, Tensor]:
    """(L, 3) camera-frame light directions and (L,) ambient levels."""
    directions, ambient = [], []
    for index in range(lightings):
        angle = (
            math.radians(-50 + 100 * index / max(lightings - 1, 1))
            if lightings > 1
            else math.radians(-30)
        )
        elevation = math.radians(35 + 20 * (index % 2))
        directions.append(
            [
                math.sin(angle) * math.cos(elevation),
                math.sin(elevation),
                math.cos(angle) * math.cos(elevation),
            ]
        )
        ambient.append(0.2 + 0.15 * ((index * 7) % 3) / 2)
    return torch.tensor(directions, dtype=torch.float32), torch.tensor(ambient, dtype=torch.float32)


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
    light_dirs, ambients = _lights(cfg.lightings)
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
            rotations = _view_rotations(
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
            image = torch.where(mask, shade, _backgrounds(rng, v, cfg.render_size))
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
        atomic_write_bytes(path, buffer.getvalue(), checksum=True)
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
