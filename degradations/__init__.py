"""Batched, seeded image degradations: the study's six (noise, Haar resolution reduction,
motion blur) and ImageNet-C-style corruptions (``degradations.corruptions``).

Importing the package registers every family: the study's six (``modules.py``) and the
sixteen corruption families of ``corruptions/`` (``noise_blur``: shot_noise, impulse_noise,
gaussian_blur, defocus_blur, zoom_blur, glass_blur, line_motion_blur; ``digital``: pixelate,
jpeg, contrast, brightness, saturate; ``weather``: fog, snow; ``spatter`` (family ``weather``);
``geometric``: elastic_transform), and the realistic variants of the study's blur and resolution
loss (``realistic.py``: realistic_motion_blur, realistic_lowres: the study's draws without its
synthetic fingerprints), and ``wild`` (``wild.py``: each image clean or a random family,
variant and severity, the protocol of a folder of real photos). Named groups of them
(``study``, ``imagenet-c``, ``held-out``, ``all``) are in :mod:`degradations.groups`.

Public contract::

    degradations.apply(images, name, severity=3, *, generator=None, **overrides) -> Tensor
    degradations.apply_indexed(images, name, severity=3, *, seed, indices) -> Tensor
    degradations.available() -> list[str]
    degradations.family(name) -> str               # "noise", "blur", "resolution", ...
    degradations.drawn_params(name) -> tuple       # what return_params=True hands back
    degradations.severity_params(name, severity) -> dict
    degradations.DEGRADATIONS          # registry; @DEGRADATIONS.register("name") on a class
    degradations.GROUPS                # group -> names; expand(["study", "fog"]) -> names

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
    drawn_params,
    family,
    severity_params,
)
from .bridge import Degrade, apply_numpy, from_uint8, to_tensor
from .corruptions.digital import Brightness, Contrast, Jpeg, Pixelate, Saturate
from .corruptions.geometric import ElasticTransform
from .corruptions.noise_blur import (
    DefocusBlur,
    GaussianBlur,
    GlassBlur,
    ImpulseNoise,
    LineMotionBlur,
    ShotNoise,
    ZoomBlur,
)
from .corruptions.spatter import Spatter
from .corruptions.weather import Fog, Snow
from .degradation import DEGRADATIONS, SEVERITY_LEVELS, Degradation, check_degradation_class
from .groups import GROUPS, expand, group_names, groups_of
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
from .realistic import RealisticLowres, RealisticMotionBlur
from .resolution import block_mean, haar_lowres
from .wild import WILD_FAMILIES, WILD_MEMBERS, Wild

__all__ = [
    "DEGRADATIONS", "GROUPS", "SEVERITIES", "SEVERITY", "SEVERITY_LEVELS", "Degradation",
    "Degrade",
    # the study's six
    "GaussianNoise", "HaarLowres", "MotionBlur", "NoiseMixture", "SaltPepperNoise", "SpeckleNoise",
    # their realistic variants
    "RealisticLowres", "RealisticMotionBlur",
    # the wild query set: each image clean or a random family, variant and severity
    "WILD_FAMILIES", "WILD_MEMBERS", "Wild",
    # the corruption suite (functions: degradations.corruptions.noise_blur.shot_noise, ...)
    "Brightness", "Contrast", "DefocusBlur", "ElasticTransform", "Fog", "GaussianBlur",
    "GlassBlur", "ImpulseNoise", "Jpeg", "LineMotionBlur", "Pixelate", "Saturate", "ShotNoise",
    "Snow", "Spatter", "ZoomBlur",
    "apply", "apply_indexed", "apply_numpy", "available", "blur_from_length", "block_mean",
    "build_module", "check_degradation_class", "drawn_params", "expand", "family", "from_uint8",
    "gaussian_noise", "group_names", "groups_of", "haar_lowres", "motion_blur",
    "motion_blur_transfer", "noise_mixture", "salt_pepper_noise", "severity_params",
    "speckle_noise", "to_tensor",
]
