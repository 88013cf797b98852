"""The public entry points: severity levels 1..5, ``apply``, ``apply_indexed``, ``available``.

Level 3 is the study's exact setting for every family; see docs/degradations.md for the table
and how it sits against the ImageNet-C / Tiny-ImageNet-C anchors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .modules import DEGRADATIONS, build

SEVERITIES: dict[str, tuple[dict[str, float], ...]] = {
    "gaussian_noise": tuple({"sigma": s} for s in (0.05, 0.075, 0.10, 0.15, 0.22)),
    "salt_pepper": tuple({"p": p} for p in (0.02, 0.05, 0.10, 0.17, 0.27)),
    "speckle": tuple({"amplitude": a} for a in (0.05, 0.075, 0.10, 0.25, 0.45)),
    "lowres": tuple({"levels": v} for v in (1.0, 1.25, 1.5, 2.0, 3.0)),
    "motion_blur": tuple({"sigma": s, "t": 1.0} for s in (0.02, 0.035, 0.05, 0.075, 0.10)),
    "noise": tuple(
        {"sigma": s, "p": p, "amplitude": a}
        for s, p, a in zip((0.05, 0.075, 0.10, 0.15, 0.22), (0.02, 0.05, 0.10, 0.17, 0.27),
                           (0.05, 0.075, 0.10, 0.25, 0.45))
    ),
}
SEVERITY_LEVELS = (1, 2, 3, 4, 5)


def available() -> list[str]:
    """Registered degradation names, sorted."""
    return DEGRADATIONS.names()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; available: {', '.join(available())}")
    return name


def severity_params(name: str, severity: int = 3) -> dict[str, Any]:
    """The parameters severity ``severity`` (1..5) of ``name`` stands for (a fresh dict).

    Raises:
        ValueError: unknown name (the message lists them) or severity outside 1..5.
    """
    _check_name(name)
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITY_LEVELS:
        raise ValueError(f"severity must be an integer in 1..5; got {severity!r}")
    return dict(SEVERITIES[name][severity - 1])


def build_module(name: str, severity: int = 3, **overrides: Any) -> torch.nn.Module:
    """The module for ``name`` at ``severity``, with ``overrides`` replacing any parameter."""
    return build(name, **{**severity_params(name, severity), **overrides})


def apply(
    images: Tensor, name: str, severity: int = 3, *, generator: torch.Generator | None = None,
    return_params: bool = False, **overrides: Any,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Degrade a batch with ``name`` at ``severity``.

    Args:
        images: (B, C, H, W) float in [0, 1], C in {1, 3}, any device.
        name: one of :func:`available`.
        severity: 1..5; 3 is the study's setting.
        generator: CPU ``torch.Generator``; same state, same output bytes. None: torch's global one.
        return_params: also return the drawn (B,) parameters (blur ``a``/``b``, lowres ``level``,
            mixture ``kind``; {} for the plain noises).
        **overrides: replace parameters of the level (``levels=2``, ``length=7, angle=30``,
            ``range_mode="minmax"``, ...).

    Returns:
        (B, C, H, W) in [0, 1], same dtype and device (and the params with ``return_params``).

    Raises:
        ValueError: bad images, unknown name, severity or override (messages list valid values).
    """
    module = build_module(name, severity, **overrides)
    return module(images, generator, return_params=return_params)


def apply_indexed(
    images: Tensor, name: str, severity: int = 3, *, seed: int, indices: Sequence[int] | Tensor,
    return_params: bool = False, **overrides: Any,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Like :func:`apply`, but image i's randomness depends only on ``(seed, indices[i])``.

    Image i equals ``apply(images[i:i+1], name, severity,
    generator=make_generator(sample_seed(seed, indices[i])))``, so a batch of 4 gives the same
    images as four batches of 1 (for the query set of an experiment).
    """
    module = build_module(name, severity, **overrides)
    return module.forward_indexed(images, seed, indices, return_params=return_params)
