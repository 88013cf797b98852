"""The objects of the ``synthetic`` set: five categories built from ellipsoids and boxes.

:func:`build_object` draws one instance of a category (proportions, part angles, albedo and
surface markings) from its generator; :mod:`robustret.data.synthetic_render` renders it.
"""

from __future__ import annotations

import math

import numpy as np

ELLIPSOID, BOX = 0, 1
"""Primitive kinds: an ellipsoid (size = radii) or a box (size = half sizes)."""


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
