"""Robust retriever: fine-tune a trained retriever on degraded images with stability training.

Starting from the experiment's trained (clean) retriever, each step takes a batch of clean
gallery images ``x`` (augmented as in retriever training), degrades the whole batch once,
``x' = d(x)`` (one degradation of ``degradations`` and one severity 1..5 drawn per batch), and
minimises (stability training, Zheng et al., CVPR 2016)::

    CE(f(x), y) + CE(f(x'), y) + consistency_weight * mse(e(x'), sg(e(x))) / mean(sg(e(x))^2)

with ``e`` the embedding, ``f`` the class head on it and ``sg`` stop-gradient: the degraded
embedding is pulled to the clean one, not the other way, so the gallery's space moves only by
what the clean cross-entropy asks. The consistency term is normalised by the clean embeddings'
mean square, so its weight does not depend on the embedding scale.

Randomness: every epoch's order, augmentation and degradation come from the named stream
``retriever/robust`` of the config's seed (index: the epoch), so resuming equals a straight run
(the loop of :func:`robustret.train.loop.train_loop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import degradations
from robustret.core.checks import ConfigError, check_images, check_labels
from robustret.core.distributed import data_parallel
from robustret.core.keys import fingerprint, source_hash
from robustret.core.rng import make_generator, stream_seed
from robustret.core.tracking import RunLogger
from robustret.models.retriever import Retriever
from robustret.train.augment import augment_batch
from robustret.train.loop import LoopSettings, TrainResult, step_decay, train_loop

ROBUST_STREAM = "retriever/robust"
"""Seed stream of each fine-tuning epoch (index: the epoch)."""
TRAINING_CODE = ("robustret.train.robust", "robustret.train.loop", "robustret.train.averaging",
                 "robustret.train.augment", "degradations")
"""Source that is part of the resume key."""


@dataclass(frozen=True)
class RobustTuneConfig:
    """How to fine-tune a retriever for degraded queries.

    Attributes:
        epochs: passes over the gallery (each image once, clean and degraded).
        batch_size: clean images per step (the step sees twice as many).
        lr: Adam learning rate (a tenth of training from scratch: the model is trained).
        lr_step: epochs between two halvings of the rate.
        consistency_weight: weight of the embedding consistency term (0: augmentation only).
        augment: flip + affine + brightness/contrast jitter before degrading.
        seed: the one seed of the fine-tuning's randomness.
    """

    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-4
    lr_step: int = 2
    consistency_weight: float = 1.0
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr_step", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"robust.{name} must be an integer; got {value!r}")
        for name in ("lr", "consistency_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"robust.{name} must be a number; got {value!r}")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"robust.augment must be true or false; got {self.augment!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr_step < 1:
            raise ConfigError(f"robust: epochs >= 0, batch_size >= 1 and lr_step >= 1 are "
                              f"needed; got {self}")
        if self.lr <= 0 or self.consistency_weight < 0:
            raise ConfigError(f"robust: lr > 0 and consistency_weight >= 0 are needed; "
                              f"got lr={self.lr}, consistency_weight={self.consistency_weight}")


class _EmbedAndClassify(torch.nn.Module):
    """``x -> (embedding, logits)`` as one ``forward``, which ``DistributedDataParallel`` can
    wrap (it averages the gradients of ``forward`` only)."""

    def __init__(self, model: Retriever) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        embeddings = self.model.embed(x)
        return embeddings, self.model.head(embeddings)


def consistency_loss(degraded: Tensor, clean: Tensor) -> Tensor:
    """``mse(degraded, sg(clean)) / mean(sg(clean)^2)``: a scalar >= 0.

    Args:
        degraded: (B, D) embeddings of the degraded images (gradients flow).
        clean: (B, D) embeddings of the clean images (detached here).
    """
    target = clean.detach()
    return F.mse_loss(degraded, target) / target.pow(2).mean().clamp_min(1e-12)


def degrade_batch(images: Tensor, names: Sequence[str],
                  generator: torch.Generator) -> Tensor:
    """Degrade a whole batch with one of ``names`` at one severity 1..5, both drawn from
    ``generator``.

    Args:
        images: (B, C, H, W) float in [0, 1].
        names: registered degradation names (at least one).
    Returns:
        (B, C, H, W) float in [0, 1].
    """
    pick = int(torch.randint(len(names), (1,), generator=generator))
    severity = int(torch.randint(1, 6, (1,), generator=generator))
    return degradations.apply(images, names[pick], severity, generator=generator)


def finetune_robust(model: Retriever, gallery: Any, degradations_seen: Sequence[str],
                    config: RobustTuneConfig, *, device: torch.device | str,
                    out_dir: Path | None = None, start_key: str = "",
                    logger: RunLogger | None = None, progress: bool | None = None,
                    tag: str = "train/robust") -> TrainResult:
    """Fine-tune ``model`` (already trained, on ``device``) in place; see the module text.

    Args:
        model: the trained retriever; its weights are the starting point.
        gallery: an ``ImageSet`` (``images`` (N, C, H, W) float in [0, 1], ``labels`` (N,)).
        degradations_seen: registered degradation names drawn in training (at least one).
        config: see :class:`RobustTuneConfig`.
        device: where training runs.
        out_dir: ``out_dir/last.pt`` is written each epoch and resumed from when its key
            (config, degradations, ``start_key``, code) matches.
        start_key: names the starting weights (their checkpoint's SHA-256).
        logger: receives ``{tag}/loss``, ``{tag}/consistency``, ``{tag}/accuracy_degraded``.
        progress: tqdm bar (None: only on a terminal).
    Returns:
        The loop's :class:`TrainResult`; the model is left in ``eval()`` mode.
    Raises:
        ConfigError: no degradation, or an unknown one.
    """
    names = list(degradations_seen)
    if not names:
        raise ConfigError("robust fine-tuning needs at least one degradation to train on")
    unknown = sorted(set(names) - set(degradations.available()))
    if unknown:
        raise ConfigError(f"unknown degradation(s) {', '.join(unknown)}; available: "
                          f"{', '.join(degradations.available())}")
    images = check_images(gallery.images, "gallery.images")
    labels = check_labels(gallery.labels, images.shape[0], "gallery.labels").long()
    device = torch.device(device)
    learned = {k: v for k, v in asdict(config).items() if k != "epochs"}  # more epochs resume
    resume_key = fingerprint("robust-retriever", learned, names, start_key,
                             source_hash(*TRAINING_CODE))
    net = data_parallel(_EmbedAndClassify(model), device)  # itself on one process
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = step_decay(optimizer, step_epochs=config.lr_step)

    def make_batches(epoch: int):
        generator = make_generator(stream_seed(config.seed, ROBUST_STREAM, epoch))
        order = torch.randperm(images.shape[0], generator=generator)
        for idx in order.split(config.batch_size):
            x = images[idx].to(device)
            if config.augment:
                x = augment_batch(x, generator)
            yield x, degrade_batch(x, names, generator), labels[idx].to(device)

    def step(batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        clean, degraded, y = batch
        embeddings, logits = net(torch.cat([clean, degraded]))
        clean_e, degraded_e = embeddings.chunk(2)
        clean_logits, degraded_logits = logits.chunk(2)
        consistency = consistency_loss(degraded_e, clean_e)
        loss = (F.cross_entropy(clean_logits, y) + F.cross_entropy(degraded_logits, y)
                + config.consistency_weight * consistency)
        hits = (degraded_logits.detach().argmax(1) == y).float().mean()
        return loss, {"consistency": float(consistency.detach()),
                      "accuracy_degraded": float(hits)}

    checkpoint = Path(out_dir) / "last.pt" if out_dir is not None else None
    result = train_loop(
        model=model, optimizer=optimizer, scheduler=scheduler, make_batches=make_batches,
        step=step, logger=logger,
        settings=LoopSettings(
            epochs=config.epochs, checkpoint=checkpoint, fingerprint=resume_key, tag=tag,
            progress=progress,
            extra_state={"arch": model.arch(), "robust": asdict(config), "degradations": names}),
    )
    model.eval()
    return result


__all__ = ["RobustTuneConfig", "consistency_loss", "degrade_batch", "finetune_robust"]
