"""Which degradation a batch of images carries, and its parameters, from the images alone.

:func:`estimate_degradation` runs three classical estimators and a fixed rule:

1. **resolution** (``restoration.estimate_resolution``): the study's Haar low resolution
   leaves exactly constant aligned ``2**level`` blocks; a level >= 1 decides the family;
2. **noise** (``restoration.estimate_noise``): otherwise, isolated exact 0/1 values over a
   noise-free rest (salt and pepper) or a fine-scale variation of more than 2% of the local
   brightness (Gaussian or speckle) decide it, with the kind and its parameter;
3. **blur** (``restoration.estimate_blur``): otherwise, a log spectrum that correlates with a
   line blur's zero lines (score >= ``min_blur_score``) decides it, with the displacement;
4. otherwise **clean**.

The result is a :class:`DegradationEstimate` of (B,) tensors; :meth:`DegradationEstimate.params`
gives the ``params`` dict the parameter-reading restorers take in place of the drawn one:
``a``, ``b`` (``WienerDeblur`` and the blur hybrid's Wiener front end), ``level``
(``BicubicUpsample``, the hybrid's ``level`` plane), ``kind`` (the hybrid's noise-kind planes) and
``severity`` (an estimate: the severity whose parameter best explains the estimated one; the
drawn severity is a property of the query set, not of one image). The blur's sign is not
observable (``restoration.estimate_blur``): a Wiener filter given the opposite sign returns the
sharp image translated by the blur's length.

Everything is batched (no loop over images) and stays on the images' device. The thresholds
(:class:`EstimationRule`) are round numbers read off the built-in data's feature distributions;
how they were chosen and the accuracy per family and severity are in docs/estimation.md.
These estimators read the study's synthetic fingerprints (exact block copies, exact 0/1
impulses, a noise-free circular blur); images degraded otherwise are not what they were built
for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum

import torch
from torch import Tensor

from degradations import SEVERITY, severity_params
from degradations.noise import MIXTURE_KINDS
from restoration.estimate_blur import estimate_motion_blur
from restoration.estimate_noise import (
    GAUSSIAN,
    NoiseFeatures,
    NoiseThresholds,
    is_noisy,
    noise_features,
    noise_kind,
    noise_level,
)
from restoration.estimate_resolution import estimate_haar_level
from robustret.core.checks import check_images


class Family(str, Enum):
    """The families an image is classified into; the value is ``degradations.family``'s name
    (``clean`` for none). The order is that of the (B,) ``family`` codes."""

    CLEAN = "clean"
    NOISE = "noise"
    BLUR = "blur"
    RESOLUTION = "resolution"


FAMILIES: tuple[str, ...] = tuple(member.value for member in Family)
"""Family names in code order: ``FAMILIES[estimate.family[i]]`` is image i's family."""
CLEAN, NOISE, BLUR, RESOLUTION = range(len(FAMILIES))
NOISE_KINDS: tuple[str, ...] = MIXTURE_KINDS
"""Noise kinds in code order (the noise mixture's ``kind``): gaussian_noise, salt_pepper,
speckle."""
_NOISE_PARAMETER = {"gaussian_noise": "sigma", "salt_pepper": "p", "speckle": "amplitude"}


@dataclass(frozen=True)
class EstimationRule:
    """Thresholds of :func:`estimate_degradation` (docs/estimation.md says how they were set).

    Attributes:
        noise: the noise rule (:class:`~restoration.estimate_noise.NoiseThresholds`).
        min_blur_score: spectrum-to-blur-model correlation above which an image is blurred.
        max_blur_length: longest blur searched, as a fraction of the larger side.
        block_tolerance: largest max - min of a block counted as constant.
        min_block_fraction: fraction of aligned blocks that must be constant.
        min_block_contrast: how many more aligned than shifted blocks must be constant.
    """

    noise: NoiseThresholds = field(default_factory=NoiseThresholds)
    min_blur_score: float = 0.55
    max_blur_length: float = 0.4
    block_tolerance: float = 1e-6
    min_block_fraction: float = 0.9
    min_block_contrast: float = 0.2


@dataclass(frozen=True)
class DegradationEstimate:
    """Per-image estimate; every field a (B,) tensor on the images' device.

    Fields that do not apply to an image's family hold neutral values: ``noise_kind`` 0 and
    ``noise_level`` 0 unless noisy, blur fields 0 unless the blur test ran (images already
    found noisy or low-resolution skip it), ``level`` 0 unless low-resolution.

    Attributes:
        family: int64 codes into :data:`FAMILIES`.
        noise_kind: int64 codes into :data:`NOISE_KINDS`.
        noise_level: float32, the kind's own parameter (sigma, p or amplitude).
        noise_sigma: float32, Donoho's MAD sigma of every image (any family).
        blur_a, blur_b: float32 displacement in image widths / heights (the study's ``a``,
            ``b``; sign canonical, ``b >= 0``).
        blur_length: float32, pixels.
        blur_angle: float32, degrees in [0, 180).
        blur_score: float32 correlation with the best blur model.
        level: int64 Haar level (0: not block-constant).
        severity: float32 1..5, the severity whose parameter best explains the estimate of the
            image's family; 0 for clean.
        noise_features: the statistics behind the noise decision.
    """

    family: Tensor
    noise_kind: Tensor
    noise_level: Tensor
    noise_sigma: Tensor
    blur_a: Tensor
    blur_b: Tensor
    blur_length: Tensor
    blur_angle: Tensor
    blur_score: Tensor
    level: Tensor
    severity: Tensor
    noise_features: NoiseFeatures

    def __len__(self) -> int:
        return self.family.shape[0]

    def family_names(self) -> list[str]:
        """Each image's family name (:data:`FAMILIES`)."""
        return [FAMILIES[code] for code in self.family.tolist()]

    def params(self, *, severity: bool = True) -> dict[str, Tensor]:
        """The ``params`` dict the parameter-reading restorers take, from the estimate.

        Args:
            severity: include the estimated ``severity`` (for restorers conditioned on it).

        Returns:
            ``{"a", "b": (B,) float32, "level", "kind": (B,) int64[, "severity": (B,)
            float32]}``: a blur of 0 (the Wiener filter then only divides by ``1 + k``), level 0
            (``BicubicUpsample`` is then the identity) and kind 0 where the family differs.
        """
        out = {"a": self.blur_a, "b": self.blur_b, "level": self.level, "kind": self.noise_kind}
        if severity:
            out[SEVERITY] = self.severity
        return out


def _nearest_severity(value: Tensor, table: Tensor) -> Tensor:
    """(B,) positive values -> (B,) float 1..5: the severity whose table entry (5,) is nearest
    in log scale."""
    distance = (torch.log(value.clamp(min=1e-6))[:, None] - torch.log(table)[None, :]).abs()
    return distance.argmin(dim=1).float() + 1


def _table(name: str, key: str, device: torch.device) -> Tensor:
    """(5,) float32: parameter ``key`` of ``name`` at severities 1..5."""
    return torch.tensor([float(severity_params(name, s)[key]) for s in range(1, 6)],
                        device=device)


def _blur_severity(a: Tensor, b: Tensor) -> Tensor:
    """The severity whose sigma makes ``|(a, b)|`` most likely (a, b ~ N(0, sigma) each, so the
    radius is Rayleigh: log-likelihood ``log r - 2 log sigma - r^2 / (2 sigma^2)``)."""
    sigma = _table("motion_blur", "sigma", a.device)
    radius = torch.hypot(a, b).clamp(min=1e-6)[:, None]
    loglik = torch.log(radius) - 2 * torch.log(sigma) - radius**2 / (2 * sigma**2)
    return loglik.argmax(dim=1).float() + 1


def _resolution_severity(level: Tensor) -> Tensor:
    """The severity most likely to draw ``level`` (a severity's ``levels`` v gives floor(v)
    with probability 1 - frac(v), else floor(v) + 1; ties go to the lower severity, a level no
    severity draws to the nearest expected level)."""
    expected = _table("lowres", "levels", level.device)  # (5,)
    low, frac = expected.floor(), expected - expected.floor()
    lv = level.float()[:, None]
    prob = torch.where(lv == low, 1 - frac, torch.where(lv == low + 1, frac, 0.0))
    score = prob - 1e-3 * (lv - expected).abs()
    return score.argmax(dim=1).float() + 1


def _noise_severity(kind: Tensor, level: Tensor) -> Tensor:
    """Nearest severity (log scale) of each image's kind parameter."""
    out = torch.zeros_like(level)
    for code, name in enumerate(NOISE_KINDS):
        table = _table(name, _NOISE_PARAMETER[name], level.device)
        out = torch.where(kind == code, _nearest_severity(level, table), out)
    return out


def _estimate_chunk(images: Tensor, rule: EstimationRule) -> DegradationEstimate:
    """:func:`estimate_degradation` on one chunk (already checked)."""
    batch, device = images.shape[0], images.device
    level = estimate_haar_level(images, tolerance=rule.block_tolerance,
                                min_fraction=rule.min_block_fraction,
                                min_contrast=rule.min_block_contrast)
    features = noise_features(images)
    noisy = is_noisy(features, rule.noise) & (level == 0)
    kind = torch.where(noisy, noise_kind(features, rule.noise), GAUSSIAN)
    amount = torch.where(noisy, noise_level(features, kind), 0.0)
    blur = [torch.zeros(batch, device=device) for _ in range(5)]  # a, b, length, angle, score
    rest = ((level == 0) & ~noisy).nonzero().flatten()
    if rest.numel():
        found = estimate_motion_blur(images.index_select(0, rest),
                                     max_length=rule.max_blur_length)
        for values, part in zip(blur, (found.a, found.b, found.length, found.angle,
                                       found.score)):
            values.index_copy_(0, rest, part)
    a, b, length, angle, score = blur
    blurred = (level == 0) & ~noisy & (score >= rule.min_blur_score)
    family = torch.full((batch,), CLEAN, dtype=torch.int64, device=device)
    family = torch.where(blurred, BLUR, torch.where(noisy, NOISE, family))
    family = torch.where(level > 0, RESOLUTION, family)
    a, b = torch.where(blurred, a, 0.0), torch.where(blurred, b, 0.0)
    severity = torch.where(noisy, _noise_severity(kind, amount), 0.0)
    severity = torch.where(blurred, _blur_severity(a, b), severity)
    severity = torch.where(level > 0, _resolution_severity(level), severity)
    return DegradationEstimate(
        family=family, noise_kind=kind, noise_level=amount, noise_sigma=features.sigma,
        blur_a=a, blur_b=b, blur_length=length, blur_angle=angle, blur_score=score,
        level=level, severity=severity, noise_features=features)


def _concat(parts: list[DegradationEstimate]) -> DegradationEstimate:
    """One estimate from the estimates of consecutive chunks."""
    if len(parts) == 1:
        return parts[0]
    noise = NoiseFeatures(**{f.name: torch.cat([getattr(p.noise_features, f.name) for p in parts])
                             for f in fields(NoiseFeatures)})
    values = {f.name: torch.cat([getattr(p, f.name) for p in parts])
              for f in fields(DegradationEstimate) if f.name != "noise_features"}
    return DegradationEstimate(**values, noise_features=noise)


def estimate_degradation(images: Tensor, *, rule: EstimationRule | None = None,
                         chunk_size: int = 256) -> DegradationEstimate:
    """Estimate each image's degradation family and parameters (module docstring).

    Args:
        images: (B, C, H, W) float in [0, 1], C in {1, 3}, H and W >= 8, any device.
        rule: thresholds; None: :class:`EstimationRule` defaults.
        chunk_size: images estimated at once (bounds the memory; the result does not depend on
            it).

    Returns:
        :class:`DegradationEstimate` of (B,) tensors on the images' device.

    Raises:
        TypeError, ValueError: ``images`` break the image contract or are smaller than 8 px;
            ``chunk_size`` < 1.
    """
    check_images(images, "images")
    if min(images.shape[-2:]) < 8:
        raise ValueError(f"degradation estimation needs images of at least 8 x 8 px; got shape "
                         f"{tuple(images.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    rule = rule or EstimationRule()
    with torch.no_grad():
        parts = [_estimate_chunk(images[start:start + chunk_size], rule)
                 for start in range(0, max(1, images.shape[0]), chunk_size)]
    return _concat(parts)


__all__ = [
    "BLUR", "CLEAN", "DegradationEstimate", "EstimationRule", "FAMILIES", "Family", "NOISE",
    "NOISE_KINDS", "RESOLUTION", "estimate_degradation",
]
