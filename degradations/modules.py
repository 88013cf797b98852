"""Thin ``nn.Module`` wrappers, the ``DEGRADATIONS`` registry and the study's noise mixture.

Every module follows one pattern: ``sample_params(batch_size, generator)`` draws the random
parameters that mean something (blur a, b; lowres level; noise kind) as ``(B,)`` tensors, then a
deterministic per-chunk core applies them (pixel noise comes from raw words drawn after the
parameters). ``forward(images, generator, return_params=True)`` hands the drawn parameters back so
runs can record them; ``forward_indexed`` makes image i depend only on ``(seed, indices[i])``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustret.checks import check_choice, check_images
from robustret.registry import Registry
from robustret.rng import draw_seed

from ._base import WordSource, check_range_mode, per_index_generators, run_chunked
from .motion_blur import METHODS, blur_from_length, motion_blur_core
from .noise import (
    _check_amount,
    gaussian_core,
    int16_words,
    normal_words,
    salt_pepper_core,
    speckle_core,
)
from .resolution import BLOCK_COPY_UPSAMPLE, check_upsample, levels_from_uniform, lowres_core

DEGRADATIONS: Registry[Degradation] = Registry("degradation")

Params = dict[str, Tensor]


class Degradation(nn.Module):
    """Base: draws parameters, then applies them chunk by chunk. Subclasses set ``range_mode``."""

    range_mode: str = "clip"

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        """The random parameters of ``batch_size`` images as (B,) CPU tensors ({} if none)."""
        return {}

    def words_per_image(self, pixels: int) -> int:
        """64-bit random words each image of ``pixels`` values needs (0: no pixel noise)."""
        return 0

    @property
    def output_in_range(self) -> bool:
        """True when :meth:`core` only averages input values (its output needs no clipping)."""
        return False

    def core(self, x: Tensor, words: np.ndarray | None, out: Tensor, **params: Tensor) -> Tensor:
        """Write the degraded chunk ``x`` into ``out`` (see :func:`degradations._base.run_chunked`)."""
        raise NotImplementedError

    def apply_params(
        self, images: Tensor, params: Params, *, generator: torch.Generator | None = None,
    ) -> Tensor:
        """Apply given parameters (e.g. recorded ones); pixel noise, if any, from ``generator``."""
        check_images(images, "images", check_values=False)
        k = self.words_per_image(images[0].numel()) if images.shape[0] else 0
        source = WordSource.from_generator(generator) if k else None
        return run_chunked(images, self.core, params, k, source, self.range_mode, self.output_in_range)

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None, *, return_params: bool = False,
    ) -> Tensor | tuple[Tensor, Params]:
        """Degrade a batch.

        Args:
            images: (B, C, H, W) float in [0, 1], any device.
            generator: CPU ``torch.Generator``; None uses torch's global generator.
            return_params: also return the drawn parameters.

        Returns:
            (B, C, H, W) in [0, 1] with the dtype and device of ``images``, and with
            ``return_params`` the dict of (B,) parameter tensors.
        """
        check_images(images, "images", check_values=False)
        params = self.sample_params(images.shape[0], generator, size=tuple(images.shape[-2:]))
        out = self.apply_params(images, params, generator=generator)
        return (out, params) if return_params else out

    def forward_indexed(
        self, images: Tensor, seed: int, indices: Sequence[int] | Tensor, *, return_params: bool = False,
    ) -> Tensor | tuple[Tensor, Params]:
        """Image i degraded as ``forward(images[i:i+1], make_generator(sample_seed(seed, indices[i])))``.

        Batch size and order change nothing: a batch of 4 equals four batches of 1.
        """
        check_images(images, "images", check_values=False)
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
        out = run_chunked(images, self.core, params, k, WordSource(streams) if k else None, self.range_mode,
                          self.output_in_range)
        return (out, params) if return_params else out

    @classmethod
    def param_names(cls) -> list[str]:
        """Keyword parameters of ``__init__`` (the valid overrides), sorted."""
        return sorted(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def extra_repr(self) -> str:
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in self.param_names())


@DEGRADATIONS.register("gaussian_noise")
class GaussianNoise(Degradation):
    """g = f + N(0, sigma) per value; see :func:`degradations.noise.gaussian_noise`."""

    def __init__(self, sigma: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.sigma, self.range_mode = _check_amount("sigma", sigma), check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return normal_words(pixels)

    def core(self, x, words, out, **params):  # type: ignore[no-untyped-def]
        return gaussian_core(x, words, out, self.sigma)


@DEGRADATIONS.register("salt_pepper")
class SaltPepperNoise(Degradation):
    """A fraction ``p`` of values set to 0 or 1; see :func:`degradations.noise.salt_pepper_noise`."""

    def __init__(self, p: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.p, self.range_mode = _check_amount("p", p, 1.0), check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return int16_words(pixels)

    def core(self, x, words, out, **params):  # type: ignore[no-untyped-def]
        return salt_pepper_core(x, words, out, self.p)


@DEGRADATIONS.register("speckle")
class SpeckleNoise(Degradation):
    """g = f + f U(-amplitude, amplitude); see :func:`degradations.noise.speckle_noise`."""

    def __init__(self, amplitude: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.amplitude = _check_amount("amplitude", amplitude)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return int16_words(pixels)

    def core(self, x, words, out, **params):  # type: ignore[no-untyped-def]
        return speckle_core(x, words, out, self.amplitude)


@DEGRADATIONS.register("noise")
class NoiseMixture(Degradation):
    """The study's mixed noise: each image gets Gaussian, salt-and-pepper or speckle (prob 1/3).

    Drawn parameter ``kind`` (B,) int64: 0 = gaussian_noise, 1 = salt_pepper, 2 = speckle.
    """

    KINDS = ("gaussian_noise", "salt_pepper", "speckle")

    def __init__(
        self, sigma: float = 0.1, p: float = 0.1, amplitude: float = 0.1, range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.sigma = _check_amount("sigma", sigma)
        self.p = _check_amount("p", p, 1.0)
        self.amplitude = _check_amount("amplitude", amplitude)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(self, batch_size, generator=None, *, size=None):  # type: ignore[no-untyped-def]
        return {"kind": torch.randint(0, 3, (batch_size,), generator=generator)}

    def words_per_image(self, pixels: int) -> int:
        return max(normal_words(pixels), int16_words(pixels))

    def core(self, x, words, out, kind):  # type: ignore[no-untyped-def]
        kinds = kind.tolist()
        for value in sorted(set(kinds)):
            rows = [i for i, v in enumerate(kinds) if v == value]
            sub_words = words[rows]
            index = torch.tensor(rows, device=x.device)
            sub_x = x.index_select(0, index)
            sub_out = torch.empty_like(sub_x)
            if value == 0:
                gaussian_core(sub_x, sub_words, sub_out, self.sigma)
            elif value == 1:
                salt_pepper_core(sub_x, sub_words, sub_out, self.p)
            else:
                speckle_core(sub_x, sub_words, sub_out, self.amplitude)
            out.index_copy_(0, index, sub_out)
        return out


@DEGRADATIONS.register("lowres")
class HaarLowres(Degradation):
    """Haar approximation band of 1, 2, ... levels, back to full size.

    ``levels`` is the expected number of levels: image i gets ``floor(levels + u_i)``, u_i ~ U[0, 1)
    (integer ``levels``: all images get it; 1.5: 1 or 2 with probability 1/2, the study).
    Drawn parameter ``level`` (B,) int64.
    """

    def __init__(self, levels: float = 1.5, upsample: str = "nearest", range_mode: str = "clip") -> None:
        super().__init__()
        self.levels = _check_amount("levels", levels)
        self.upsample = check_upsample(upsample)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(self, batch_size, generator=None, *, size=None):  # type: ignore[no-untyped-def]
        u = torch.rand(batch_size, generator=generator)
        return {"level": levels_from_uniform(self.levels, u)}

    @property
    def output_in_range(self) -> bool:
        return self.upsample in BLOCK_COPY_UPSAMPLE

    def core(self, x, words, out, level):  # type: ignore[no-untyped-def]
        return lowres_core(x, words, out, level, self.upsample)


@DEGRADATIONS.register("motion_blur")
class MotionBlur(Degradation):
    """The study's frequency-domain motion blur H(u, v; a, b, T).

    By default a, b ~ N(0, sigma) per image (the study: sigma 0.05, T 1). Giving ``length``
    (pixels) fixes the blur for every image at ``angle`` degrees instead
    (a = length cos(angle) / W, b = length sin(angle) / H). Drawn parameters ``a``, ``b`` (B,).
    """

    def __init__(
        self, sigma: float = 0.05, t: float = 1.0, length: float | None = None, angle: float = 0.0,
        method: str = "rfft", range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.sigma = _check_amount("sigma", sigma)
        if not math.isfinite(float(t)):
            raise ValueError(f"t must be finite; got {t}")
        if length is not None and not math.isfinite(float(length)):
            raise ValueError(f"length must be finite or None; got {length}")
        self.t, self.length, self.angle = float(t), length, float(angle)
        self.method = check_choice(method, METHODS, "method")
        self.range_mode = check_range_mode(range_mode)

    def sample_params(self, batch_size, generator=None, *, size=None):  # type: ignore[no-untyped-def]
        if self.length is not None:
            if size is None:
                raise ValueError("motion blur with a fixed length needs size=(H, W) to compute a, b")
            a, b = blur_from_length(float(self.length), self.angle, size)
            return {"a": torch.full((batch_size,), a), "b": torch.full((batch_size,), b)}
        ab = torch.randn(2, batch_size, generator=generator) * self.sigma
        return {"a": ab[0], "b": ab[1]}

    def core(self, x, words, out, a, b):  # type: ignore[no-untyped-def]
        return motion_blur_core(x, words, out, a, b, self.t, self.method)


def build(name: str, **params: Any) -> Degradation:
    """``DEGRADATIONS.build`` with a ValueError for unknown names and parameters."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; available: {', '.join(DEGRADATIONS.names())}")
    cls = DEGRADATIONS.get(name)
    valid = cls.param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for degradation {name!r}; valid: {', '.join(valid)}"
        )
    return DEGRADATIONS.build(name, **params)
