"""Train the learned family estimator (:class:`restoration.estimate_learned.FamilyNet`) on
degraded gallery images, the drawn family as the label.

Each step draws ``batch_size`` clean images from the training images (the caller passes the
gallery's training part, :func:`estimator_training_images`: the held-out tenth that restorers
validate on and the queries are never seen) and degrades them with the ``wild`` degradation
(:mod:`degradations.wild`): per image, clean with probability ``clean_fraction``, otherwise a
family uniformly, a member of it uniformly (the study's noises, motion blur and Haar
resolution loss, and with ``realistic`` the realistic motion blur and resolution loss), and a
severity uniformly in ``1..max_severity``. The labels are what that draw returns
(``return_params=True``): the member's family (:func:`degradations.family`, coded as
:data:`restoration.estimate.FAMILIES`) and, for a noise, its kind. Then, with probability
``sensor_fraction``, an image of any family gets faint Gaussian sensor noise (sigma uniform in
``[0, sensor_noise]``, below the study's mildest noise, sigma 0.05) and keeps its label (off by
default): the realistic motion blur carries sensor noise of 0.01, and without this a sharp
photo with such noise reads as blurred; with it, the faintest speckle reads as clean
(docs/estimation.md measures both). The loss is cross-entropy
on the family plus ``kind_weight`` times cross-entropy on the noise kind (noisy images only);
the optimiser Adam, its rate decayed from ``lr`` to 0 over the steps by a half cosine.

Seeds: the weights from stream ``estimator/init``, step ``t``'s images and degradations from
``estimator/batch`` (index ``t``) of ``config.seed`` (:func:`robustret.core.rng.stream_seed`);
the same seed and thread count give the same weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

import degradations
from restoration.estimate import FAMILIES
from restoration.estimate_learned import FamilyNet, build_family_net, check_estimator_input
from restoration.routed import WILD_FAMILY_CODES
from robustret.core.rng import check_seed, make_generator, stream_seed
from robustret.train.restorer_validation import split_gallery

log = logging.getLogger(__name__)

INIT_STREAM = "estimator/init"
"""Seed stream of the estimator's initial weights."""
BATCH_STREAM = "estimator/batch"
"""Seed stream of each step's images and degradations (index: the step)."""


@dataclass(frozen=True)
class EstimatorTrainConfig:
    """Settings of :func:`train_estimator`.

    Attributes:
        steps: optimiser steps (>= 1).
        batch_size: images per step (>= 2: batch norm needs two).
        lr: Adam's initial learning rate (> 0), decayed to 0 by a half cosine.
        clean_fraction: share of each batch left clean, in [0, 1].
        max_severity: severities drawn uniformly in 1..max_severity (1..5).
        realistic: also draw the realistic blur and resolution variants.
        kind_weight: weight of the noise-kind loss (>= 0; 0 leaves that head untrained).
        sensor_noise: largest sigma of the label-keeping sensor noise, in [0, 0.05) (0, the
            default: none).
        sensor_fraction: share of the images that get it, in [0, 1].
        width, depth: the network's (:class:`~restoration.estimate_learned.FamilyNet`).
        seed: the one seed of the weights and the batches.
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    clean_fraction: float = 0.25
    max_severity: int = 5
    realistic: bool = True
    kind_weight: float = 0.5
    sensor_noise: float = 0.0
    sensor_fraction: float = 0.5
    width: int = 16
    depth: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (("steps", self.steps >= 1, "an integer >= 1"),
                  ("batch_size", self.batch_size >= 2, "an integer >= 2"),
                  ("lr", self.lr > 0, "> 0"),
                  ("clean_fraction", 0 <= self.clean_fraction <= 1, "in [0, 1]"),
                  ("max_severity", self.max_severity in (1, 2, 3, 4, 5), "in 1..5"),
                  ("kind_weight", self.kind_weight >= 0, ">= 0"),
                  ("sensor_noise", 0 <= self.sensor_noise < 0.05, "in [0, 0.05)"),
                  ("sensor_fraction", 0 <= self.sensor_fraction <= 1, "in [0, 1]"))
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"EstimatorTrainConfig.{name} must be {expected}; got "
                                 f"{getattr(self, name)!r}")
        check_seed(self.seed)


@dataclass(frozen=True)
class EstimatorBatch:
    """One training batch.

    Attributes:
        images: (B, C, H, W) float in [0, 1], degraded (or clean).
        family: (B,) int64 codes into :data:`restoration.estimate.FAMILIES`.
        kind: (B,) int64 noise-kind codes (:data:`restoration.estimate.NOISE_KINDS`), -1
            where the image is not noisy.
    """

    images: Tensor
    family: Tensor
    kind: Tensor


@dataclass(frozen=True)
class TrainedEstimator:
    """What :func:`train_estimator` returns.

    Attributes:
        model: the trained network, in eval mode.
        losses: (steps,) float32, each step's total loss (before its update).
        config: the settings it was trained with.
    """

    model: FamilyNet
    losses: Tensor
    config: EstimatorTrainConfig


def estimator_training_images(gallery: Tensor, seed: int) -> Tensor:
    """The gallery's training part: all but the seeded held-out tenth that restorer training
    validates on (:func:`~robustret.train.restorer_validation.split_gallery`).

    Args:
        gallery: (N, C, H, W) float in [0, 1], the gallery images (never the queries).
        seed: the run's seed.
    Returns:
        (N - M, C, H, W), in gallery order.
    """
    return split_gallery(gallery, seed)[0]


def draw_batch(images: Tensor, config: EstimatorTrainConfig, step: int) -> EstimatorBatch:
    """Step ``step``'s batch: images drawn with replacement and degraded by ``wild``, from a
    generator of stream :data:`BATCH_STREAM` (index ``step``) of ``config.seed``.

    Args:
        images: (N, C, H, W) float in [0, 1], clean training images, sides >= 32.
        config: the settings (batch size, clean fraction, severities, variants).
        step: the step index (>= 0).
    Returns:
        :class:`EstimatorBatch` on ``images``' device.
    """
    generator = make_generator(stream_seed(config.seed, BATCH_STREAM, step))
    pick = torch.randint(0, images.shape[0], (config.batch_size,), generator=generator)
    wild = degradations.build_module("wild", config.max_severity,
                                     clean_fraction=config.clean_fraction,
                                     realistic=config.realistic)
    degraded, params = wild(images[pick.to(images.device)], generator, return_params=True)
    if config.sensor_noise > 0 and config.sensor_fraction > 0:
        degraded = add_sensor_noise(degraded, config, generator)
    member = params["member"].cpu().long()
    family = WILD_FAMILY_CODES[member + 1]
    kind = torch.where(family == FAMILIES.index("noise"), params["kind"].cpu().long(), -1)
    return EstimatorBatch(degraded, family.to(images.device), kind.to(images.device))


def add_sensor_noise(images: Tensor, config: EstimatorTrainConfig,
                     generator: torch.Generator) -> Tensor:
    """Each image, with probability ``config.sensor_fraction``, plus Gaussian noise of a
    sigma uniform in ``[0, config.sensor_noise]``, clipped to [0, 1].

    Args:
        images: (B, C, H, W) float in [0, 1].
        config: the settings.
        generator: CPU generator the draws come from (on the CPU, then moved).
    Returns:
        (B, C, H, W) float in [0, 1], ``images``' device and dtype.
    """
    count = images.shape[0]
    chosen = torch.rand(count, generator=generator) < config.sensor_fraction
    sigma = torch.rand(count, generator=generator) * config.sensor_noise * chosen
    noise = torch.randn(images.shape, generator=generator) * sigma.view(-1, 1, 1, 1)
    return (images + noise.to(images.device, images.dtype)).clamp(0.0, 1.0)


def estimator_loss(model: FamilyNet, batch: EstimatorBatch, kind_weight: float) -> Tensor:
    """Cross-entropy on the family plus ``kind_weight`` x cross-entropy on the noise kind of
    the noisy images (0 when the batch has none). Returns a scalar tensor."""
    family_logits, kind_logits = model(batch.images)
    loss = F.cross_entropy(family_logits, batch.family)
    noisy = batch.kind >= 0
    if kind_weight > 0 and bool(noisy.any()):
        loss = loss + kind_weight * F.cross_entropy(kind_logits[noisy], batch.kind[noisy])
    return loss


def train_estimator(images: Tensor, config: EstimatorTrainConfig | None = None, *,
                    device: str | torch.device = "cpu") -> TrainedEstimator:
    """Train a :class:`~restoration.estimate_learned.FamilyNet` from scratch.

    Args:
        images: (N, C, H, W) float in [0, 1], clean training images (the gallery's training
            part, :func:`estimator_training_images`), sides >= 32, N >= 1.
        config: settings (default :class:`EstimatorTrainConfig`).
        device: where the network trains (the batches are drawn on ``images``' device and
            moved there).
    Returns:
        :class:`TrainedEstimator`: the model in eval mode on ``device`` and the loss history.
    Raises:
        ValueError: bad images (see
            :func:`~restoration.estimate_learned.check_estimator_input`) or none.
    """
    config = config or EstimatorTrainConfig()
    images = check_estimator_input(images, "training images")
    if images.shape[0] < 1:
        raise ValueError("training images are empty; pass the gallery's training part")
    model = build_family_net(width=config.width, depth=config.depth,
                             generator=make_generator(stream_seed(config.seed, INIT_STREAM)))
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    losses = torch.zeros(config.steps)
    for step in range(config.steps):
        batch = draw_batch(images, config, step)
        batch = EstimatorBatch(batch.images.to(device), batch.family.to(device),
                               batch.kind.to(device))
        loss = estimator_loss(model, batch, config.kind_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses[step] = loss.detach().cpu()
        if (step + 1) % 100 == 0 or step + 1 == config.steps:
            recent = losses[max(0, step - 99):step + 1]
            log.info("estimator step %d/%d: loss %.4f (mean of the last 100 %.4f)", step + 1,
                     config.steps, float(losses[step]), float(recent.mean()))
    return TrainedEstimator(model.eval(), losses, config)
