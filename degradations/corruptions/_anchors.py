"""Size calibration of the corruption families, and the one runner of their chunk functions.

Hendrycks and Dietterich published each corruption's five levels three
times: ImageNet-C (224 px), Tiny-ImageNet-C (64 px) and CIFAR-10-C (32 px), hand-tuned per
size. A parameter here is either one number (used at every image size, as given) or a triple
``(at 32 px, at 64 px, at 224 px)`` of those tables' values (:data:`ANCHOR_SIDES`).
:func:`at_side` reads a triple at the side ``min(H, W)`` of the batch: exactly CIFAR-10-C's
value at 32 px, Tiny-ImageNet-C's at 64 and ImageNet-C's at 224, linear in ``log(side)``
between them; outside [32, 224] lengths in pixels scale with the side and other quantities
(amounts, factors, qualities) keep the end value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from robustret.core.rng import check_generator

from .._base import WordSource, check_batch, check_range_mode, run_chunked

ANCHOR_SIDES = (32, 64, 224)
#: one value for every size, or its values at the three :data:`ANCHOR_SIDES`
Anchored = float | tuple[float, float, float]


def check_anchored(
    name: str, value: object, *, low: float = 0.0, high: float = math.inf,
    positive: bool = False,
) -> Anchored:
    """``value`` as a float or a triple of floats, each finite and in ``[low, high]``.

    Args:
        name: the parameter's name, for the message.
        value: a real number, or a sequence of three (its values at 32, 64 and 224 px).
        low, high: the valid range.
        positive: exclude ``low`` itself.

    Returns:
        A float, or a tuple of three floats.

    Raises:
        ValueError: anything else; the message says what is expected.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values: tuple[float, ...] = (float(value),)
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        values = tuple(float(v) for v in value)
    else:
        raise ValueError(
            f"{name} must be a number or a sequence of 3 numbers (its values at "
            f"{', '.join(map(str, ANCHOR_SIDES))} px); got {value!r}")
    bound = f"in ({low}, {high}]" if positive else f"in [{low}, {high}]"
    for v in values:
        if not math.isfinite(v) or v < low or v > high or (positive and v == low):
            raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    return values[0] if len(values) == 1 else values  # type: ignore[return-value]


def anchor_blend(side: int) -> tuple[tuple[int, float, float], ...]:
    """How a batch of shorter side ``side`` px reads the anchors: ``(index, weight, scale)``
    triples, the weights summing to 1.

    Between two anchors the weight of the upper one is ``log(side / lower) / log(upper /
    lower)`` (scale 1); below 32 px or above 224 px the end anchor alone, with the scale
    ``side / anchor`` that lengths in pixels are multiplied by.
    """
    if side <= ANCHOR_SIDES[0]:
        return ((0, 1.0, side / ANCHOR_SIDES[0]),)
    if side >= ANCHOR_SIDES[-1]:
        last = len(ANCHOR_SIDES) - 1
        return ((last, 1.0, side / ANCHOR_SIDES[-1]),)
    upper = next(i for i, s in enumerate(ANCHOR_SIDES) if s > side)
    lo, hi = ANCHOR_SIDES[upper - 1], ANCHOR_SIDES[upper]
    t = math.log(side / lo) / math.log(hi / lo)
    if t == 0.0:  # exactly on the lower anchor
        return ((upper - 1, 1.0, 1.0),)
    return ((upper - 1, 1.0 - t, 1.0), (upper, t, 1.0))


def anchor_value(value: Anchored, index: int) -> float:
    """An anchored parameter's value at anchor ``index`` (a plain number: itself)."""
    return value[index] if isinstance(value, tuple) else float(value)


def at_side(value: Anchored, side: int, *, length: bool = False) -> float:
    """The value of an anchored parameter for images whose shorter side is ``side`` px.

    Args:
        value: a float (returned as it is) or ``(at 32, at 64, at 224)``.
        side: ``min(H, W)`` of the images, >= 1.
        length: the parameter is a length in pixels (it scales with ``side`` outside
            [32, 224]); otherwise it keeps the end value there.

    Returns:
        The interpolated value (linear in ``log(side)`` between the anchors, see
        :func:`anchor_blend`).
    """
    if not isinstance(value, tuple):
        return float(value)
    return sum(w * value[i] * (scale if length else 1.0) for i, w, scale in anchor_blend(side))


def anchor_max(value: Anchored) -> float:
    """The largest value an anchored parameter takes at any size (lengths aside)."""
    return max(value) if isinstance(value, tuple) else float(value)


def anchor_levels(
    names: Sequence[str], cifar: Sequence[Any], tiny: Sequence[Any], imagenet: Sequence[Any],
) -> tuple[dict[str, Anchored], ...]:
    """Five severity dicts ``{name: (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C)}``.

    Args:
        names: the parameters, in the order of each table entry.
        cifar, tiny, imagenet: five entries each (mildest first); an entry is a number (one
            parameter) or a tuple with one value per name.
    """
    def row(entry: Any) -> tuple[float, ...]:
        return tuple(entry) if isinstance(entry, tuple) else (entry,)

    levels = []
    for c, t, i in zip(cifar, tiny, imagenet, strict=True):
        rows = row(c), row(t), row(i)
        levels.append({n: tuple(float(r[k]) for r in rows) for k, n in enumerate(names)})
    return tuple(levels)  # type: ignore[return-value]


def image_side(x: Tensor) -> int:
    """``min(H, W)`` of a (B, C, H, W) batch."""
    return int(min(x.shape[-2:]))


def run_corruption(
    images: Tensor, core: Callable[..., Tensor], *, range_mode: str = "clip",
    words_per_image: Callable[[int], int] | None = None,
    generator: torch.Generator | None = None, params: dict[str, Tensor] | None = None,
    in_range: bool = False,
) -> Tensor:
    """The body of every public corruption function: check, then run ``core`` per chunk.

    ``core(x, words, out, **params)`` is the family's chunk function (as
    :meth:`degradations.Degradation.core`); ``words_per_image(pixels)`` (if given) says how
    many 64-bit words each image draws from one SFC64 stream seeded by ``generator``.
    """
    check_batch(images)
    check_generator(generator)
    check_range_mode(range_mode)
    k = words_per_image(images[0].numel()) if words_per_image and images.shape[0] else 0
    source = WordSource.from_generator(generator) if k else None
    return run_chunked(images, core, params or {}, k, source, range_mode, in_range)
