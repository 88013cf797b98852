"""The ``Degradation`` base class and the ``DEGRADATIONS`` registry, which checks each class.

A degradation is one class: its constructor parameters, its five severity levels
(``severities``), its ``family`` and its ``core``. Registering it (``@DEGRADATIONS.register(
"name")``) is all it takes for ``degradations.apply``, the experiment CLI (``--degrade name``)
and the contract tests to know it.

Every module follows one pattern: ``sample_params(batch_size, generator)`` draws the random
parameters that mean something (blur a, b; lowres level; noise kind) as ``(B,)`` tensors, then a
deterministic per-chunk :meth:`Degradation.core` applies them (pixel noise comes from raw words
drawn after the parameters). ``forward(images, generator, return_params=True)`` hands the drawn
parameters back so runs can record them; ``forward_indexed`` makes image i depend only on
``(seed, indices[i])``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from robustret.core.checks import ConfigError
from robustret.core.registry import Registry
from robustret.core.rng import check_generator, draw_seed

from ._base import WordSource, check_batch, per_index_generators, run_chunked

Params = dict[str, Tensor]
#: the number of severity levels every degradation has; level 3 is the study's setting
SEVERITY_LEVELS = (1, 2, 3, 4, 5)
#: registry names are short lowercase words the CLI can show; the group names of
#: ``degradations.groups`` that are such words ("all": every one, "study": the study's six) are
#: reserved ("imagenet-c" and "held-out" cannot clash: no registry name has a hyphen)
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED = ("all", "study")


class Degradation(nn.Module):
    """Base: draws parameters, then applies them chunk by chunk.

    Class attributes a subclass sets:

    - ``severities``: five dicts of constructor parameters, severity 1..5 (mildest first; level 3
      is the study's setting); ``degradations.apply(x, name, severity)`` builds the module
      with ``severities[severity - 1]``. Checked when the class is registered.
    - ``family``: the family a restorer is chosen for (``"noise"``, ``"blur"``,
      ``"resolution"``, ...). None (the default) makes the registry name the family.
    - ``range_mode``: ``"clip"`` or ``"minmax"``, usually set from a constructor parameter.
    - ``gray_is_identity``: True for a family that by definition leaves one-channel images
      unchanged (``saturate``: gray has no saturation); the contract tests then check on RGB
      images that its damage grows with severity. False (the default) for every other family.

    and the methods :meth:`core` (required), :meth:`sample_params` and :meth:`words_per_image`
    (for random degradations), :attr:`output_in_range` (for averaging ones).
    """

    severities: ClassVar[tuple[dict[str, Any], ...]] = ()
    family: ClassVar[str | None] = None
    gray_is_identity: ClassVar[bool] = False
    range_mode: str = "clip"

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        """The random parameters of ``batch_size`` images as (B,) CPU tensors ({} if none).

        Args:
            batch_size: number of images B.
            generator: CPU ``torch.Generator``; None uses torch's global generator.
            size: ``(H, W)`` of the images, for parameters that depend on it.
        """
        return {}

    def words_per_image(self, pixels: int) -> int:
        """64-bit random words each image of ``pixels`` values needs (0: no pixel noise)."""
        return 0

    @property
    def output_in_range(self) -> bool:
        """True when :meth:`core` only averages input values (its output needs no clipping)."""
        return False

    def core(self, x: Tensor, words: np.ndarray | None, out: Tensor, **params: Tensor) -> Tensor:
        """Write the degraded chunk into ``out``.

        Args:
            x: (B', C, H, W) float chunk in [0, 1]; must not be modified.
            words: (B', k) uint64 random words, k = :meth:`words_per_image`, or None.
            out: (B', C, H, W) output buffer of ``x``'s dtype.
            **params: the chunk's slice of every (B,) parameter of :meth:`sample_params`.

        Returns:
            ``out``; any range (the base class clips or stretches it afterwards).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement core()")

    def apply_params(
        self, images: Tensor, params: Params, *, generator: torch.Generator | None = None,
    ) -> Tensor:
        """Apply given parameters (e.g. recorded ones); pixel noise, if any, from ``generator``.

        Args:
            images: (B, C, H, W) float in [0, 1], any device.
            params: (B,) tensors as :meth:`sample_params` returns them.
            generator: CPU ``torch.Generator`` for the pixel noise.

        Returns:
            (B, C, H, W) in [0, 1], same dtype and device as ``images``.

        Raises:
            TypeError: ``images`` is not a tensor or ``generator`` not a ``torch.Generator``.
            ValueError: bad images (shape, dtype, empty H or W, values outside [0, 1]).
        """
        check_batch(images)
        check_generator(generator)
        k = self.words_per_image(images[0].numel()) if images.shape[0] else 0
        source = WordSource.from_generator(generator) if k else None
        return run_chunked(images, self.core, params, k, source, self.range_mode,
                           self.output_in_range)

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None, *,
        return_params: bool = False,
    ) -> Tensor | tuple[Tensor, Params]:
        """Degrade a batch.

        Args:
            images: (B, C, H, W) float in [0, 1], any device.
            generator: CPU ``torch.Generator``; None uses torch's global generator.
            return_params: also return the drawn parameters.

        Returns:
            (B, C, H, W) in [0, 1] with the dtype and device of ``images``, and with
            ``return_params`` the dict of (B,) parameter tensors.

        Raises:
            TypeError: ``images`` is not a tensor or ``generator`` not a ``torch.Generator``.
            ValueError: bad images, or a parameter that does not fit the image size.
        """
        check_batch(images)
        check_generator(generator)
        params = self.sample_params(images.shape[0], generator, size=tuple(images.shape[-2:]))
        out = self.apply_params(images, params, generator=generator)
        return (out, params) if return_params else out

    def forward_indexed(
        self, images: Tensor, seed: int, indices: Sequence[int] | Tensor, *,
        return_params: bool = False,
    ) -> Tensor | tuple[Tensor, Params]:
        """Image i degraded as ``forward(images[i:i+1], generator)`` with its own generator.

        The generator of image i is ``make_generator(sample_seed(seed, indices[i]))``, so batch
        size and order change nothing: a batch of 4 equals four batches of 1.

        Args:
            images: (B, C, H, W) float in [0, 1], any device.
            seed: the query set's seed.
            indices: B item indices.
            return_params: also return the drawn parameters.

        Returns:
            As :meth:`forward`.

        Raises:
            ValueError: bad images, a negative ``seed`` or index, or ``indices`` of another
                length than the batch.
        """
        check_batch(images)
        if len(indices) != images.shape[0]:
            raise ValueError(f"indices has {len(indices)} entries for {images.shape[0]} images")
        size = tuple(images.shape[-2:])
        k = self.words_per_image(images[0].numel()) if images.shape[0] else 0
        per_image: list[Params] = []
        streams = []
        for gen in per_index_generators(seed, indices):
            per_image.append(self.sample_params(1, gen, size=size))
            if k:
                streams.append(np.random.SFC64(draw_seed(gen)))
        names = per_image[0].keys() if per_image else ()
        params = {name: torch.cat([p[name] for p in per_image]) for name in names}
        source = WordSource(streams) if k else None
        out = run_chunked(images, self.core, params, k, source, self.range_mode,
                          self.output_in_range)
        return (out, params) if return_params else out

    @classmethod
    def param_names(cls) -> list[str]:
        """Keyword parameters of ``__init__`` (the valid overrides), sorted."""
        signature = inspect.signature(cls.__init__)
        return sorted(
            name for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in self.param_names())


def check_degradation_class(name: str, cls: object) -> None:
    """Check that ``cls`` can be registered as degradation ``name``.

    Args:
        name: the registry name: a lowercase word (letters, digits, ``_``), not ``all`` or
            ``study`` (group names, :mod:`degradations.groups`).
        cls: the class to register.

    Raises:
        TypeError: ``cls`` is not a subclass of :class:`Degradation`.
        ValueError: a bad name, ``severities`` not five dicts of constructor parameters, or
            ``family`` not a non-empty string or None.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
        raise ValueError(
            f"degradation name must be a lowercase word (letters, digits, _) other than "
            f"{', '.join(_RESERVED)}; got {name!r}"
        )
    if not (isinstance(cls, type) and issubclass(cls, Degradation)):
        raise TypeError(
            f"degradation {name!r} must be a subclass of degradations.Degradation; got {cls!r}"
        )
    where = f"degradation {name!r} ({cls.__name__})"
    levels = cls.severities
    if (isinstance(levels, (str, Mapping)) or not isinstance(levels, Sequence)
            or len(levels) != len(SEVERITY_LEVELS)):
        raise ValueError(
            f"{where} needs a class attribute severities with {len(SEVERITY_LEVELS)} levels "
            "(dicts of constructor parameters, mildest first, level 3 the study's setting); "
            f"got {levels!r}"
        )
    valid = cls.param_names()
    for level, params in zip(SEVERITY_LEVELS, levels):
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}: severity {level} must be a dict of constructor "
                             f"parameters; got {params!r}")
        unknown = sorted(str(key) for key in params if key not in valid)
        if unknown:
            raise ValueError(
                f"{where}: severity {level} sets {', '.join(unknown)}, which "
                f"{cls.__name__}.__init__ does not take; valid: {', '.join(valid) or 'none'}"
            )
    family = cls.family
    if family is not None and (not isinstance(family, str) or not family):
        raise ValueError(f"{where}: family must be a non-empty string or None; got {family!r}")


class DegradationRegistry(Registry[Degradation]):
    """The registry of degradation classes; :meth:`register` checks each class first."""

    def register(self, name: str) -> Callable[[type[Degradation]], type[Degradation]]:
        """Class decorator registering a :class:`Degradation` subclass under ``name``.

        Raises:
            TypeError, ValueError: the class or name fails :func:`check_degradation_class`.
            KeyError: ``name`` is already registered.
        """
        register = super().register(name)

        def decorate(cls: type[Degradation]) -> type[Degradation]:
            check_degradation_class(name, cls)
            if name in self:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            cls.severities = tuple(dict(level) for level in cls.severities)
            return register(cls)  # type: ignore[return-value]

        return decorate


DEGRADATIONS: DegradationRegistry = DegradationRegistry("degradation")


def degradation_class(name: object) -> type[Degradation]:
    """The class registered as ``name``.

    Raises:
        ConfigError: unknown name; the message lists the registered ones.
    """
    if not isinstance(name, str) or name not in DEGRADATIONS:
        raise ConfigError(
            f"unknown degradation {name!r}; available: {', '.join(DEGRADATIONS.names())}"
        )
    return DEGRADATIONS.get(name)  # type: ignore[return-value]


def build(name: str, **params: Any) -> Degradation:
    """``DEGRADATIONS.build`` with clear errors for unknown names and parameters.

    Raises:
        ConfigError: unknown name or parameter (the message lists the valid ones).
        ValueError: a bad parameter value (from the class's constructor).
    """
    cls = degradation_class(name)
    valid = cls.param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for degradation {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    return cls(**params)
