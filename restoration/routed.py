"""Estimate, then restore: blind all-in-one restoration routed by a degradation estimate.

Each image's degradation is estimated from the image alone (:mod:`restoration.estimate`: the
family, noise kind and level, line-blur displacement, Haar level); the image goes to the
restorer of its estimated family with the *estimated* parameters in place of the drawn ones,
and an image estimated clean is returned unchanged. Nothing the degradation drew is read, so
the result is what a real photo allows: its knowledge is ``estimated``
(:data:`restoration.base.KNOWLEDGE`), never ``oracle``. The approach of all-in-one restorers
that route by an estimate (AirNet, CVPR 2022), with classical experts by default.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from degradations.wild import WILD_FAMILIES, WILD_MEMBERS
from restoration.base import Identity, Restorer
from restoration.classical import WienerDeblur
from restoration.denoise import KindDenoiser
from restoration.estimate import (
    BLUR,
    CLEAN,
    FAMILIES,
    NOISE,
    EstimationRule,
    estimate_degradation,
)
from restoration.estimate_noise import SALT_PEPPER

#: each wild member's family, as the estimator names families
WILD_FAMILY_OF = {name: family for family, names in WILD_FAMILIES.items() for name in names}
#: ``member + 1`` -> the estimator's family code (index 0: a clean image, member -1)
WILD_FAMILY_CODES = torch.tensor([FAMILIES.index(family) for family in (
    "clean", *(WILD_FAMILY_OF[name] for name in WILD_MEMBERS))])
#: the families an estimate routes to a restorer (the others, ``clean``, pass unchanged)
ROUTED_FAMILIES = tuple(family for family in FAMILIES if family != "clean")


class EstimateThenRestore(Restorer):
    """Route each image to its estimated family's restorer, with estimated parameters.

    Args:
        noise: the restorer of images estimated noisy (default:
            :class:`~restoration.denoise.KindDenoiser` told the *estimated* noise kind: impulse
            noise by the switching median, Gaussian and speckle by total variation weighted by
            the image's MAD sigma; chosen over the 3x3 median by measurement, docs/results.md).
        blur: of images estimated blurred (default: the zero-phase Wiener filter with the
            estimated displacement, ``WienerDeblur(phase="zero", k=blur_k)``: the sign of a
            line blur is not observable, the estimate's is canonical, ``b >= 0``, and the
            study-phase filter given the wrong sign shifts the image by the whole blur, the
            zero-phase one by half of it whatever the sign; docs/estimation.md,
            docs/results.md).
        resolution: of images estimated low-resolution (default: ``identity``, the image
            as it is: bicubic re-upsampling by the estimated level cost retrieval accuracy on
            the built-in data, as it does with the drawn level; docs/restoration.md, "What
            each restorer knows").
        rule: the estimator's thresholds (default: :class:`EstimationRule`'s).
        min_noise_sigma: additive or multiplicative noise whose estimated MAD sigma is below
            this (1.5% of the range by default: sensor-level noise, as in the realistic blur,
            weaker than the study's mildest Gaussian noise, 0.05) is left alone, and the image
            passes unchanged (the realistic blur's sensor noise is not what the restorer
            should remove first). Impulse noise (its MAD sigma is 0) is always restored.
        min_blur_score: an image estimated blurred whose blur score (the spectrum's correlation
            with the best line-blur model, :func:`restoration.estimate_blur.estimate_motion_blur`)
            is below this passes unchanged: deconvolving with a wrong blur costs more than the
            blur (defocus, zoom and the realistic low resolution are read as weak line blurs;
            docs/results.md, "The blur route's gate").
        max_blur_length: so does one whose estimated blur is longer than this fraction of the
            larger image side (0.3125: 20 px of a 64 px image; the study's blur is shorter but
            for about 0.8% of its images at severity 5, whose length is Rayleigh with scale
            6.4 px at 64 px, while estimates near the search's ceiling, 0.4, are mostly other
            blurs).
    """

    knowledge: ClassVar[str] = "estimated"
    #: the default blur route's ``WienerDeblur`` phase: the estimate's sign is arbitrary
    blur_phase: ClassVar[str] = "zero"
    #: the default blur route's noise-to-signal ratio: the study's blur adds no noise, so a
    #: nearly inverse filter (chosen over ``WienerDeblur``'s 0.01 by measurement,
    #: docs/results.md); a noisy blurred photo is estimated noisy and goes to the noise route
    blur_k: ClassVar[float] = 0.001

    def __init__(self, noise: Restorer | None = None, blur: Restorer | None = None,
                 resolution: Restorer | None = None, rule: EstimationRule | None = None,
                 min_noise_sigma: float = 0.015, min_blur_score: float = 0.65,
                 max_blur_length: float = 0.3125) -> None:
        super().__init__()
        if not min_noise_sigma >= 0:
            raise ValueError(f"min_noise_sigma must be >= 0; got {min_noise_sigma!r}")
        if not -1 <= min_blur_score <= 1:
            raise ValueError(f"min_blur_score is a correlation, in [-1, 1]; got {min_blur_score!r}")
        if not max_blur_length > 0:
            raise ValueError("max_blur_length is a fraction of the larger image side, > 0; got "
                             f"{max_blur_length!r}")
        self.min_noise_sigma = float(min_noise_sigma)
        self.min_blur_score, self.max_blur_length = float(min_blur_score), float(max_blur_length)
        self.routes = nn.ModuleDict({
            "noise": noise if noise is not None else KindDenoiser(),
            "blur": blur if blur is not None else WienerDeblur(phase=self.blur_phase,
                                                               k=self.blur_k),
            "resolution": resolution if resolution is not None else Identity(),
        })
        self.rule = rule

    def reads_params(self) -> tuple[str, ...]:
        return ()  # the drawn parameters are never read: the estimate stands in for them

    def compute_dtype(self) -> torch.dtype | None:
        return torch.float32  # the estimator's statistics need float32 at least

    def restore_raw(self, images: Tensor) -> Tensor:
        """Restore ``images`` (B, C, H, W) in [0, 1]; returns the same shape, unclamped where a
        routed restorer is."""
        estimate = estimate_degradation(images, rule=self.rule)
        weak = ((estimate.family == NOISE) & (estimate.noise_kind != SALT_PEPPER)
                & (estimate.noise_sigma < self.min_noise_sigma))
        unsure = ((estimate.family == BLUR) & (
            (estimate.blur_score < self.min_blur_score)
            | (estimate.blur_length > self.max_blur_length * max(images.shape[-2:]))))
        family = torch.where(weak | unsure, CLEAN, estimate.family)
        return self.route(images, family, estimate.params())

    def route(self, images: Tensor, family: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Each image through the restorer of its family.

        Args:
            images: (B, C, H, W) in [0, 1].
            family: (B,) int64 codes into :data:`~restoration.estimate.FAMILIES` (``clean``
                passes unchanged).
            params: (B,) tensors the routed restorers read (``a``, ``b``, ``level``, ...).

        Returns:
            (B, C, H, W), unclamped where a routed restorer is.
        """
        out = images.clone()
        for name in ROUTED_FAMILIES:
            chosen = (family.to(images.device) == FAMILIES.index(name)).nonzero().flatten()
            if chosen.numel() == 0:
                continue
            part = {name: value[chosen] for name, value in params.items()}
            restorer = self.routes[name]
            out[chosen] = restorer.restore(images[chosen], part, clamp=False).to(out.dtype)
        return out


class OracleRoute(EstimateThenRestore):
    """The same routes told the truth: each image of the ``wild`` query set goes to the
    restorer of its *drawn* family (``member``, :data:`degradations.wild.WILD_MEMBERS`) with its
    drawn blur ``a``, ``b`` and ``level``. It reads what the degradation drew, so its knowledge
    is ``oracle``: the ceiling of :class:`EstimateThenRestore` with the same restorers, where
    the estimator is never wrong.

    Args:
        noise, blur, resolution: as :class:`EstimateThenRestore`.
    """

    knowledge: ClassVar[str] = "oracle"
    #: the drawn blur's sign is known: the study's transfer, linear phase included
    blur_phase: ClassVar[str] = "study"
    uses_params: ClassVar[tuple[str, ...]] = ("member", "a", "b", "level", "kind")
    #: ``kind``: the noise route (:class:`~restoration.denoise.KindDenoiser`) reads the drawn one
    requires_params: ClassVar[tuple[str, ...]] = ("member", "kind")

    def __init__(self, noise: Restorer | None = None, blur: Restorer | None = None,
                 resolution: Restorer | None = None) -> None:
        super().__init__(noise, blur, resolution)

    def reads_params(self) -> tuple[str, ...]:
        return self.uses_params

    def restore_raw(self, images: Tensor, member: Tensor | None = None, **params: Tensor
                    ) -> Tensor:
        """Restore ``images`` (B, C, H, W) routed by the drawn ``member`` (B,) int64 codes
        (-1: clean, passed unchanged) with the drawn ``params``."""
        if member is None:
            raise ValueError("oracle_route needs each image's drawn member (the wild query "
                             "set's parameters); use estimated where they are unknown")
        return self.route(images, WILD_FAMILY_CODES[member.cpu().long() + 1], params)
