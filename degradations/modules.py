"""The six built-in degradations, each one registered class.

Each class carries its five severity levels (``severities``, level 3 = the study's exact
setting) and its ``family``; see :mod:`degradations.degradation` for the pattern and
docs/degradations.md for the table and its anchors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustret.core.checks import check_choice

from ._base import check_range_mode
from .degradation import DEGRADATIONS, Degradation, Params, build
from .motion_blur import METHODS, blur_from_length, motion_blur_core
from .noise import (
    MIXTURE_KINDS,
    _check_amount,
    gaussian_core,
    int16_words,
    mixture_core,
    mixture_words,
    normal_words,
    salt_pepper_core,
    speckle_core,
)
from .resolution import (
    BLOCK_COPY_UPSAMPLE,
    check_level,
    check_upsample,
    levels_from_uniform,
    lowres_core,
)

__all__ = [
    "DEGRADATIONS", "Degradation", "GaussianNoise", "HaarLowres", "MotionBlur", "NoiseMixture",
    "SaltPepperNoise", "SpeckleNoise", "build",
]

#: severity 1..5 of each noise amount (level 3 = the study's 0.1); the mixture uses all three
_SIGMAS = (0.05, 0.075, 0.10, 0.15, 0.22)
_FRACTIONS = (0.02, 0.05, 0.10, 0.17, 0.27)
_AMPLITUDES = (0.05, 0.075, 0.10, 0.25, 0.45)


@DEGRADATIONS.register("gaussian_noise")
class GaussianNoise(Degradation):
    """g = f + N(0, sigma) per value; see :func:`degradations.noise.gaussian_noise`."""

    severities = tuple({"sigma": s} for s in _SIGMAS)
    family = "noise"

    def __init__(self, sigma: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.sigma, self.range_mode = _check_amount("sigma", sigma), check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return normal_words(pixels)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return gaussian_core(x, words, out, self.sigma)


@DEGRADATIONS.register("salt_pepper")
class SaltPepperNoise(Degradation):
    """A fraction ``p`` of values set to 0 or 1; see :func:`degradations.salt_pepper_noise`."""

    severities = tuple({"p": p} for p in _FRACTIONS)
    family = "noise"

    def __init__(self, p: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.p, self.range_mode = _check_amount("p", p, 1.0), check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return int16_words(pixels)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return salt_pepper_core(x, words, out, self.p)


@DEGRADATIONS.register("speckle")
class SpeckleNoise(Degradation):
    """g = f + f U(-amplitude, amplitude); see :func:`degradations.noise.speckle_noise`."""

    severities = tuple({"amplitude": a} for a in _AMPLITUDES)
    family = "noise"

    def __init__(self, amplitude: float = 0.1, range_mode: str = "clip") -> None:
        super().__init__()
        self.amplitude = _check_amount("amplitude", amplitude)
        self.range_mode = check_range_mode(range_mode)

    def words_per_image(self, pixels: int) -> int:
        return int16_words(pixels)

    def core(self, x: Tensor, words: object, out: Tensor, **params: Tensor) -> Tensor:
        return speckle_core(x, words, out, self.amplitude)


@DEGRADATIONS.register("noise")
class NoiseMixture(Degradation):
    """The study's mixed noise: each image gets Gaussian, salt-and-pepper or speckle (prob 1/3).

    Drawn parameter ``kind`` (B,) int64: 0 = gaussian_noise, 1 = salt_pepper, 2 = speckle; see
    :func:`degradations.noise.noise_mixture`.
    """

    KINDS = MIXTURE_KINDS
    severities = tuple(
        {"sigma": s, "p": p, "amplitude": a} for s, p, a in zip(_SIGMAS, _FRACTIONS, _AMPLITUDES)
    )
    family = "noise"

    def __init__(
        self, sigma: float = 0.1, p: float = 0.1, amplitude: float = 0.1,
        range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.sigma = _check_amount("sigma", sigma)
        self.p = _check_amount("p", p, 1.0)
        self.amplitude = _check_amount("amplitude", amplitude)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        return {"kind": torch.randint(0, 3, (batch_size,), generator=generator)}

    def words_per_image(self, pixels: int) -> int:
        return mixture_words(pixels)

    def core(self, x: Tensor, words: object, out: Tensor, kind: Tensor) -> Tensor:
        return mixture_core(x, words, out, kind, self.sigma, self.p, self.amplitude)


@DEGRADATIONS.register("lowres")
class HaarLowres(Degradation):
    """Haar approximation band of 1, 2, ... levels, back to full size.

    ``levels`` is the expected number of levels: image i gets ``floor(levels + u_i)``,
    u_i ~ U[0, 1) (integer ``levels``: all images get it; 1.5: 1 or 2 with probability 1/2, the
    study). Drawn parameter ``level`` (B,) int64; see :func:`degradations.haar_lowres`.
    """

    severities = tuple({"levels": v} for v in (1.0, 1.25, 1.5, 2.0, 3.0))
    family = "resolution"

    def __init__(
        self, levels: float = 1.5, upsample: str = "nearest", range_mode: str = "clip",
    ) -> None:
        super().__init__()
        self.levels = _check_amount("levels", levels)
        self.upsample = check_upsample(upsample)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        if size is not None:  # the most levels a draw can give must fit the images
            check_level(math.ceil(self.levels), size, "levels")
        u = torch.rand(batch_size, generator=generator)
        return {"level": levels_from_uniform(self.levels, u)}

    @property
    def output_in_range(self) -> bool:
        return self.upsample in BLOCK_COPY_UPSAMPLE

    def core(self, x: Tensor, words: object, out: Tensor, level: Tensor) -> Tensor:
        return lowres_core(x, words, out, level, self.upsample)


@DEGRADATIONS.register("motion_blur")
class MotionBlur(Degradation):
    """The study's frequency-domain motion blur H(u, v; a, b, T).

    By default a, b ~ N(0, sigma) per image (the study: sigma 0.05, T 1). Giving ``length``
    (pixels) fixes the blur for every image at ``angle`` degrees instead
    (a = length cos(angle) / W, b = length sin(angle) / H). Drawn parameters ``a``, ``b`` (B,);
    see :func:`degradations.motion_blur`.
    """

    severities = tuple({"sigma": s, "t": 1.0} for s in (0.02, 0.035, 0.05, 0.075, 0.10))
    family = "blur"

    def __init__(
        self, sigma: float = 0.05, t: float = 1.0, length: float | None = None,
        angle: float = 0.0, method: str = "rfft", range_mode: str = "clip",
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

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        if self.length is not None:
            if size is None:
                raise ValueError(
                    "motion blur with a fixed length needs size=(H, W) to compute a, b"
                )
            a, b = blur_from_length(float(self.length), self.angle, size)
            return {"a": torch.full((batch_size,), a), "b": torch.full((batch_size,), b)}
        ab = torch.randn(2, batch_size, generator=generator) * self.sigma
        return {"a": ab[0], "b": ab[1]}

    def core(self, x: Tensor, words: object, out: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return motion_blur_core(x, words, out, a, b, self.t, self.method)
