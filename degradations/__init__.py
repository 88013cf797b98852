"""Batched, seeded image degradations: noise, Haar resolution reduction, motion blur.

Public contract::

    degradations.apply(images, name, severity=3, *, generator=None, **overrides) -> Tensor
    degradations.apply_indexed(images, name, severity=3, *, seed, indices) -> Tensor
    degradations.available() -> list[str]
    degradations.family(name) -> str               # "noise", "blur", "resolution", ...
    degradations.severity_params(name, severity) -> dict
    degradations.DEGRADATIONS          # registry; @DEGRADATIONS.register("name") on a class

A new degradation is one registered :class:`Degradation` subclass carrying its ``severities``
(five levels) and ``family``; see docs/degradations.md.

Layer 2, a leaf library. May import: ``robustret.core`` only.
"""

from __future__ import annotations

from .api import (
    SEVERITIES,
    SEVERITY,
    apply,
    apply_indexed,
    available,
    build_module,
    family,
    severity_params,
)
from .bridge import Degrade, apply_numpy, from_uint8, to_tensor
from .degradation import DEGRADATIONS, SEVERITY_LEVELS, Degradation, check_degradation_class
from .modules import (
    GaussianNoise,
    HaarLowres,
    MotionBlur,
    NoiseMixture,
    SaltPepperNoise,
    SpeckleNoise,
)
from .motion_blur import blur_from_length, motion_blur, motion_blur_transfer
from .noise import gaussian_noise, noise_mixture, salt_pepper_noise, speckle_noise
from .resolution import block_mean, haar_lowres

__all__ = [
    "DEGRADATIONS", "SEVERITIES", "SEVERITY", "SEVERITY_LEVELS", "Degradation", "Degrade",
    "GaussianNoise", "HaarLowres", "MotionBlur", "NoiseMixture", "SaltPepperNoise", "SpeckleNoise",
    "apply", "apply_indexed", "apply_numpy", "available", "blur_from_length", "block_mean",
    "build_module", "check_degradation_class", "family", "from_uint8", "gaussian_noise",
    "haar_lowres", "motion_blur", "motion_blur_transfer", "noise_mixture", "salt_pepper_noise",
    "severity_params", "speckle_noise", "to_tensor",
]
