"""The renderer of the ``synthetic`` set: orthographic ray casting, z-buffer, Lambert shading.

:func:`render_views` casts one object (the primitives of
:func:`robustret.data.synthetic_shapes.build_object`) under V views at once; every per-pixel
quantity is a (V, P) tensor and every per-view constant a (V, 1) column. :func:`backgrounds`
draws the cluttered backgrounds behind it and :func:`lights` the lighting conditions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.data.synthetic_shapes import ELLIPSOID


def view_rotations(elevation: Tensor, azimuth: Tensor) -> Tensor:
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
        parts: primitives from :func:`robustret.data.synthetic_shapes.build_object`.
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
        q, center, radii, tex = _place(part, rotations, scale, offset)
        index, px, py = _window(part["kind"], center, radii, coords, size)
        if part["kind"] == ELLIPSOID:
            hit, pz, lambert = _ellipsoid_surface(q, radii, px, py, light)
        else:
            hit, pz, lambert = _box_surface(q, radii, center[:, 2:3], px, py, light)
        texture = tex[:, 0] * px + tex[:, 1] * py + tex[:, 2] * pz
        _draw(part, center[:, 2:3] + pz, hit, texture, lambert, ambient, index, depth, shade)
    mask = torch.isfinite(depth)
    return shade.view(v, size, size), mask.view(v, size, size)


def _place(part: dict, rotations: Tensor, scale: Tensor,
           offset: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A part in camera space: ``(q, center, radii, tex)``, its (V, 3, 3) part->camera rotation,
    (V, 3) center and radii in image units, and (V, 3, 1) texture direction over the radii."""
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
    return q, center, radii, tex


def _window(kind: int, center: Tensor, radii: Tensor, coords: Tensor,
            size: int) -> tuple[Tensor, Tensor, Tensor]:
    """The pixels cast for a part: ``(index, px, py)``, (V, W) flat pixel positions and their
    x and y (up) relative to the part center.

    Only a window around the part's bounding circle is cast, of the same side in all views.
    """
    v = center.shape[0]
    bound = radii.max(1).values if kind == ELLIPSOID else radii.norm(dim=1)  # (V,)
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
    return index, px, py


def _ellipsoid_surface(q: Tensor, radii: Tensor, px: Tensor, py: Tensor,
                       light: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(hit, pz, lambert)`` of an ellipsoid: coverage, front-surface z relative to the center
    and the cosine of the light on the surface, each (V, W)."""
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
    return hit, pz, lambert


def _box_surface(q: Tensor, radii: Tensor, cz: Tensor, px: Tensor, py: Tensor,
                 light: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(hit, pz, lambert)`` of a box (slab test), as for :func:`_ellipsoid_surface`; ``cz``
    is the (V, 1) camera-space z of the box center."""
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
    return hit, pz, lambert


def _draw(part: dict, z: Tensor, hit: Tensor, texture: Tensor, lambert: Tensor, ambient: Tensor,
          index: Tensor, depth: Tensor, shade: Tensor) -> None:
    """Shade a part's (V, W) pixels at ``index`` into ``shade`` where it is in front (``z``
    above ``depth``), updating ``depth``; both (V, size * size), in place."""
    current = depth.gather(1, index)
    closer = hit & (z > current)
    pattern = torch.sin(part["tex_freq"] * texture + part["tex_phase"])
    albedo = part["albedo"] * (1 + part["tex_amp"] * torch.sign(pattern))
    value = albedo * (ambient[:, None] + (1 - ambient[:, None]) * lambert.clamp_min(0))
    depth.scatter_(1, index, torch.where(closer, z, current))
    shade.scatter_(1, index, torch.where(closer, value, shade.gather(1, index)))


def backgrounds(rng: np.random.Generator, v: int, size: int) -> Tensor:
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


def lights(lightings: int) -> tuple[Tensor, Tensor]:
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
