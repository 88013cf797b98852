"""The public entry points: ``apply``, ``apply_indexed``, ``available``, severities, families.

Everything here reads the registered classes: a degradation's severity table and family are
class attributes (see :class:`degradations.Degradation`), so registering one class is enough.
Level 3 is the study's exact setting for every built-in family; see docs/degradations.md for
the table and how it sits against the ImageNet-C / Tiny-ImageNet-C anchors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from robustret.core.checks import ConfigError

from .degradation import DEGRADATIONS, SEVERITY_LEVELS, Degradation, build, degradation_class
from .noise import MIXTURE_KINDS


def available() -> list[str]:
    """Registered degradation names, sorted."""
    return DEGRADATIONS.names()


def _check_severity(severity: object) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int) or (
            severity not in SEVERITY_LEVELS):
        raise ConfigError(f"severity must be an integer in 1..5; got {severity!r}")
    return severity


def severity_params(name: str, severity: int = 3) -> dict[str, Any]:
    """The parameters severity ``severity`` (1..5) of ``name`` stands for (a fresh dict).

    Read from the class's ``severities`` table.

    Raises:
        ConfigError: unknown name (the message lists them) or severity outside 1..5.
    """
    cls = degradation_class(name)
    return dict(cls.severities[_check_severity(severity) - 1])


def family(name: str) -> str:
    """The family of degradation ``name`` (``"noise"``, ``"blur"``, ``"resolution"``, ...).

    The class's ``family`` attribute; a class that sets none is its own family (its registry
    name). Restorer policies pair restorers with families, not with single names.

    Raises:
        ConfigError: unknown name (the message lists them).
    """
    cls = degradation_class(name)
    return cls.family if cls.family is not None else name


class SeverityTable(Mapping[str, tuple[dict[str, Any], ...]]):
    """Read-only view ``name -> five parameter dicts`` over the registered classes.

    Kept so ``degradations.SEVERITIES[name]`` still works; the levels live on each class
    (``severities``), so there is nothing to assign here.
    """

    def __getitem__(self, name: str) -> tuple[dict[str, Any], ...]:
        if name not in DEGRADATIONS:
            raise KeyError(name)
        return tuple(dict(level) for level in degradation_class(name).severities)

    def __iter__(self) -> Iterator[str]:
        return iter(available())

    def __len__(self) -> int:
        return len(DEGRADATIONS)

    def __setitem__(self, name: str, value: object) -> None:
        raise TypeError(
            "SEVERITIES is derived from the registered classes; set the class attribute "
            f"severities on the degradation class instead of SEVERITIES[{name!r}]"
        )


#: ``name -> severities`` of every registered class (read-only, always current)
SEVERITIES = SeverityTable()


def build_module(name: str, severity: int = 3, **overrides: Any) -> Degradation:
    """The module for ``name`` at ``severity``, with ``overrides`` replacing any parameter.

    Raises:
        ConfigError: unknown name, severity or parameter (the message lists valid values).
        ValueError: a bad parameter value.
    """
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
        generator: CPU ``torch.Generator``; same state, same output bytes. None: torch's
            global one.
        return_params: also return the drawn (B,) parameters (blur ``a``/``b``, lowres
            ``level``, mixture ``kind``, which a single noise of the mixture reports as its
            own code), plus :data:`SEVERITY` (B,) float, the severity the parameters came
            from (left out where ``overrides`` replace a parameter of the level).
        **overrides: replace parameters of the level (``levels=2``, ``length=7, angle=30``,
            ``range_mode="minmax"``, ...).

    Returns:
        (B, C, H, W) in [0, 1], same dtype and device (and the params with ``return_params``).

    Raises:
        ValueError: bad images, unknown name, severity or override (messages list valid
            values).
    """
    module = build_module(name, severity, **overrides)
    out = module(images, generator, return_params=return_params)
    return _known_params(out, name, severity, overrides) if return_params else out


def apply_indexed(
    images: Tensor, name: str, severity: int = 3, *, seed: int, indices: Sequence[int] | Tensor,
    return_params: bool = False, **overrides: Any,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Like :func:`apply`, but image i's randomness depends only on ``(seed, indices[i])``.

    Image i equals ``apply(images[i:i+1], name, severity,
    generator=make_generator(sample_seed(seed, indices[i])))``, so a batch of 4 gives the same
    images as four batches of 1 (for the query set of an experiment).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        name, severity, return_params, overrides: as :func:`apply`.
        seed: the query set's seed.
        indices: B item indices.

    Returns:
        As :func:`apply`.
    """
    module = build_module(name, severity, **overrides)
    out = module.forward_indexed(images, seed, indices, return_params=return_params)
    return _known_params(out, name, severity, overrides) if return_params else out


SEVERITY = "severity"
"""The entry of a returned params dict holding each image's severity (1..5, float): a
restorer conditioned on the severity reads it, as a Wiener front end reads the drawn blur."""


def drawn_params(name: str) -> tuple[str, ...]:
    """The names of the parameters ``apply(images, name, severity, return_params=True)``
    returns, sorted: what a restorer can be told about an image degraded by ``name``.

    The class's drawn parameters (its ``sample_params``, read at severity 3 on a 64 px
    image), the noise mixture's ``kind`` for one of its noises, and :data:`SEVERITY`.
    ``motion_blur`` gives ``a``, ``b``; ``lowres`` its ``level``; the corruption suite's
    families mostly nothing but the severity (restorer policies read this).

    Raises:
        ConfigError: unknown name (the message lists them).
    """
    module = build_module(name)
    generator = torch.Generator().manual_seed(0)
    names = {*module.sample_params(1, generator, size=(64, 64)), SEVERITY}
    if name in MIXTURE_KINDS:
        names.add("kind")
    return tuple(sorted(names))


def _known_params(out: tuple[Tensor, dict[str, Tensor]], name: str, severity: int,
                   overrides: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
    """Add what is known without drawing: :data:`SEVERITY` (unless ``overrides`` replaced the
    level's parameters) and, for one part of the noise mixture alone, the mixture's ``kind``
    code of that part (so a restorer trained on the mixture reads the same parameter)."""
    images, params = out
    batch = images.shape[0]
    if name in MIXTURE_KINDS and "kind" not in params:
        params = {**params, "kind": torch.full((batch,), MIXTURE_KINDS.index(name),
                                               dtype=torch.int64, device=images.device)}
    if overrides or SEVERITY in params:  # the level's parameters were replaced (the severity no
        return images, params  # longer names them), or each image drew its own (``wild``)
    drawn = torch.full((batch,), float(severity), device=images.device)
    return images, {**params, SEVERITY: drawn}
