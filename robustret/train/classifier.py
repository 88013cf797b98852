"""Train the retriever on the gallery, on the shared loop: as a classifier (the study's
recipe) or with a metric-learning loss (``loss``: :data:`RETRIEVER_LOSSES`, triplet,
contrastive or ArcFace, :mod:`robustret.train.metric_losses`).

Threads: torch's intra-op thread setting is left as the caller set it (call
``torch.set_num_threads`` before training to change it); this module never changes it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustret.core.checks import ConfigError, check_images, check_labels
from robustret.core.distributed import data_parallel, setup
from robustret.core.keys import fingerprint, source_hash
from robustret.core.rng import make_generator, stream_seed
from robustret.core.tracking import RunLogger
from robustret.models.retriever import Retriever, init_retriever, load_retriever
from robustret.train.augment import augment_batch
from robustret.train.class_batches import class_balanced_batches
from robustret.train.loop import LoopSettings, TrainResult, step_decay, train_loop
from robustret.train.metric_losses import (
    RETRIEVER_LOSSES,
    arcface_loss,
    contrastive_loss,
    triplet_loss,
)

log = logging.getLogger(__name__)

DegradeFn = Callable[[Tensor, torch.Generator], Tensor]

INIT_STREAM = "retriever/init"
"""Seed stream of the weight initialisation (:func:`robustret.core.rng.stream_seed`)."""
EPOCH_STREAM = "retriever/epoch"
"""Seed stream of each epoch's shuffling, augmentation and degradation (index: the epoch)."""
TRAINING_CODE = ("robustret.models", "robustret.train.classifier", "robustret.train.loop",
                 "robustret.train.averaging", "robustret.train.augment")
#: the settings of the metric-learning losses, left out of :func:`settings_key` at their
#: defaults (a classifier's key is then that of earlier releases)
METRIC_SETTINGS = {"loss": "classifier", "margin": None, "images_per_class": 4}
"""Modules whose source is part of the resume key: editing them starts training afresh."""

__all__ = ["RetrieverTrainConfig", "TrainResult", "load_retriever", "train_retriever"]


@dataclass(frozen=True)
class RetrieverTrainConfig:
    """Retriever training settings.

    Attributes:
        epochs: passes over the gallery.
        batch_size: images per step.
        lr: Adam learning rate (default betas).
        lr_step: epochs between two halvings of the learning rate (real epochs of this run;
            the study halves every 40 of its 200), see :func:`robustret.train.loop.step_decay`.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        augment: flip + affine (5 deg, 5 px) + brightness/contrast jitter.
        seed: seeds the model initialisation and every epoch's shuffling/augmentation.
        channels_last: train in the channels_last memory format (same results, another
            memory layout; see docs/benchmarks.md for its speed).
        max_images: train on the first this many gallery images (None: all).
        loss: ``classifier`` (cross-entropy, the study), ``triplet`` (batch-hard),
            ``contrastive`` or ``arcface`` (:data:`RETRIEVER_LOSSES`). The pair losses
            (triplet, contrastive) train on the L2-normalised pooled features and leave the
            class head untrained; ArcFace uses the head's weights as class centres.
        margin: the loss's margin (None: its default, :data:`RETRIEVER_LOSSES`); not for the
            classifier.
        images_per_class: images of one class side by side in a pair loss's batch (>= 2).
    """

    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    lr_step: int = 40
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    channels_last: bool = True
    max_images: int | None = None
    loss: str = "classifier"
    margin: float | None = None
    images_per_class: int = 4

    def __post_init__(self) -> None:
        # types first, so that a TOML value of the wrong kind is named (not a TypeError later)
        for name, kind in (("epochs", "int"), ("batch_size", "int"), ("lr_step", "int"),
                           ("seed", "int"), ("max_images", "int?"), ("lr", "number"),
                           ("margin", "number?"), ("images_per_class", "int"),
                           ("label_smoothing", "number"), ("augment", "bool"),
                           ("channels_last", "bool")):
            value = getattr(self, name)
            if kind.endswith("?") and value is None:
                continue
            base = kind.rstrip("?")
            ok = (isinstance(value, bool) if base == "bool" else not isinstance(value, bool)
                  and isinstance(value, int if base == "int" else (int, float)))
            if not ok:
                words = {"int": "an integer", "number": "a number", "bool": "true or false"}
                raise ConfigError(f"{name} must be {words[base]}"
                                  f"{' or None' if kind.endswith('?') else ''}; got {value!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.lr_step < 1:
            raise ValueError(f"invalid RetrieverTrainConfig: {self}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1 or None, got {self.max_images}")
        if self.loss not in RETRIEVER_LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(RETRIEVER_LOSSES)}; "
                              f"got {self.loss!r}")
        if self.margin is not None and (self.loss == "classifier"
                                        or not 0 <= self.margin < float("inf")):
            raise ConfigError(f"margin is a setting of the metric losses ("
                              f"{', '.join(n for n in RETRIEVER_LOSSES if n != 'classifier')})"
                              f", >= 0; got {self.margin!r} with loss {self.loss}")
        if self.images_per_class < 2 or self.images_per_class > self.batch_size:
            raise ConfigError(f"images_per_class must be in 2..batch_size "
                              f"({self.batch_size}); got {self.images_per_class}")

    @property
    def margin_value(self) -> float | None:
        """The margin the loss uses: ``margin``, else the loss's default."""
        return self.margin if self.margin is not None else RETRIEVER_LOSSES[self.loss].margin

    @classmethod
    def paper(cls, **overrides: Any) -> RetrieverTrainConfig:
        """The study: 200 epochs, batch 64, Adam 1e-3 halved every 40 epochs."""
        return cls(**{"epochs": 200, "lr_step": 40, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> RetrieverTrainConfig:
        """A short run: 10 epochs, batch 64, Adam 1e-3 halved every 4 epochs.

        Meant for the quick profile's data (a ~2,400-image gallery resized to 64x64); why the
        rate halves every 4 epochs rather than at the study's ratio is in docs/benchmarks.md
        ("Retriever training").
        """
        return cls(**{"epochs": 10, "lr_step": 4, **overrides})


def settings_key(config: RetrieverTrainConfig) -> dict[str, Any]:
    """The settings as they enter cache keys: :func:`dataclasses.asdict`, less the
    metric-learning settings that hold their defaults (:data:`METRIC_SETTINGS`)."""
    return {name: value for name, value in asdict(config).items()
            if not (name in METRIC_SETTINGS and value == METRIC_SETTINGS[name])}


def data_identity(images: Tensor, labels: Tensor) -> str:
    """A short SHA-1 of the training images and labels (shape, dtype and bytes)."""
    digest = hashlib.sha1()
    for tensor in (images, labels):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def train_retriever(
    model: Retriever,
    gallery: Any,
    config: RetrieverTrainConfig,
    *,
    device: torch.device | str,
    out_dir: Path | None = None,
    logger: RunLogger | None = None,
    progress: bool | None = None,
    train_degrade: DegradeFn | None = None,
    tag: str = "train/retriever",
) -> TrainResult:
    """Train ``model`` with ``config.loss`` (cross-entropy by default) and Adam on the gallery
    images.

    Args:
        model: from :func:`robustret.models.build_retriever`; re-initialised from a generator
            seeded by ``config.seed`` (trunk kept when it holds weights loaded from a file,
            ``model.weights_file``), then moved to ``device``.
        gallery: an ``ImageSet`` (``images`` (N, C, H, W) float in [0, 1], ``labels`` (N,) int64).
        config: see :class:`RetrieverTrainConfig`.
        device: where training runs (CUDA when given a CUDA device). Under torchrun the
            ranks train together (:mod:`robustret.core.distributed`; a CUDA device becomes
            ``cuda:LOCAL_RANK``) and only rank 0 writes ``last.pt`` and logs.
        out_dir: ``out_dir/last.pt`` is written atomically each epoch and resumed from when
            its key (config, data identity, architecture, whether ``train_degrade`` is set, and
            the source of :data:`TRAINING_CODE`) matches.
        logger: receives ``{tag}/loss``, ``{tag}/accuracy``, ``{tag}/lr`` per epoch.
        progress: tqdm bar (None: only on a terminal).
        train_degrade: ``(images, generator) -> images`` applied to a random half of each
            batch (degradation-aware training), after augmentation.
    Returns:
        The loop's :class:`TrainResult`; the model is left in ``eval()`` mode.
    """
    device = setup(torch.device(device))  # under torchrun: this rank's device
    images = check_images(gallery.images, "gallery.images")
    labels = check_labels(gallery.labels, images.shape[0], "gallery.labels").long()
    if config.max_images is not None:
        images, labels = images[: config.max_images], labels[: config.max_images]
    if int(labels.max()) >= model.num_classes or int(labels.min()) < 0:
        raise ValueError(
            f"labels must be in [0, {model.num_classes}); got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    resume_key = fingerprint(
        "retriever", settings_key(config), data_identity(images, labels), model.arch(),
        train_degrade is not None, source_hash(*TRAINING_CODE),
    )

    _seeded_init(model, config.seed)
    model.to(device)
    if config.channels_last:
        model.channels_last = True
        model.to(memory_format=torch.channels_last)
    loss = RETRIEVER_LOSSES[config.loss]
    if loss.pairs:  # the head reads nothing a pair loss trains: left as initialised
        model.head.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = step_decay(optimizer, step_epochs=config.lr_step)
    if config.loss == "classifier":
        net = data_parallel(model, device)  # model itself on one process
        step = partial(_classifier_step, net, config.label_smoothing)
    else:
        step = partial(_metric_step, data_parallel(_MetricForward(model, config), device))
    checkpoint = Path(out_dir) / "last.pt" if out_dir is not None else None
    return train_loop(
        model=model, optimizer=optimizer, scheduler=scheduler,
        make_batches=partial(_epoch_batches, images, labels, config, device, train_degrade),
        step=step,
        settings=LoopSettings(epochs=config.epochs, checkpoint=checkpoint,
                              fingerprint=resume_key, tag=tag, progress=progress,
                              extra_state={"arch": model.arch(), "config": asdict(config)}),
        logger=logger,
    )


def _epoch_batches(images: Tensor, labels: Tensor, config: RetrieverTrainConfig,
                   device: torch.device, train_degrade: DegradeFn | None,
                   epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The batches of ``epoch``, made lazily: shuffled, augmented and (a random half of each,
    with ``train_degrade``) degraded with one generator of :data:`EPOCH_STREAM`.

    Args:
        images: (N, C, H, W) float in [0, 1], the training images.
        labels: (N,) int64 their classes.
        config: batch size, augmentation, seed.
        device: where the batches go.
        train_degrade: ``(images, generator) -> images``; None: no degradation.
        epoch: the epoch (1..).
    Yields:
        ``(images (B, C, H, W), labels (B,))`` on ``device``.
    """
    generator = make_generator(stream_seed(config.seed, EPOCH_STREAM, epoch))
    if RETRIEVER_LOSSES[config.loss].pairs:  # several images of a class in each batch
        batches = class_balanced_batches(labels, config.batch_size, config.images_per_class,
                                         generator)
    else:
        batches = torch.randperm(images.shape[0], generator=generator).split(config.batch_size)
    for idx in batches:
        x = images[idx].to(device, non_blocking=True)
        if config.augment:
            x = augment_batch(x, generator)
        if train_degrade is not None:
            half = torch.rand(x.shape[0], generator=generator) < 0.5
            if bool(half.any()):
                x = x.clone()
                x[half.to(device)] = train_degrade(x[half.to(device)], generator)
        yield x, labels[idx].to(device, non_blocking=True)


def _classifier_step(net: torch.nn.Module, label_smoothing: float,
                     batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy (with ``label_smoothing``) of ``net`` on ``(images, labels)``, and the
    batch's accuracy in [0, 1]."""
    x, y = batch
    logits = net(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return loss, {"accuracy": float((logits.detach().argmax(1) == y).float().mean())}


class _MetricForward(torch.nn.Module):
    """``(images, labels) -> (loss, metric)`` of a metric-learning loss as one ``forward``,
    which ``DistributedDataParallel`` can wrap (it averages the gradients of ``forward``
    only); the metric is the triplets' / negative pairs' active share, or ArcFace's accuracy."""

    def __init__(self, model: Retriever, config: RetrieverTrainConfig) -> None:
        super().__init__()
        self.model, self.loss, self.margin = model, config.loss, config.margin_value

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        pooled = self.model.pooled(x)
        if self.loss == "arcface":
            loss, metric = arcface_loss(pooled, self.model.head.weight, y, margin=self.margin)
        elif self.loss == "triplet":
            loss, metric = triplet_loss(pooled, y, margin=self.margin)
        else:
            loss, metric = contrastive_loss(pooled, y, margin=self.margin)
        return loss, torch.tensor(metric)


def _metric_step(net: torch.nn.Module, batch: tuple[Tensor, Tensor]
                 ) -> tuple[Tensor, dict[str, float]]:
    """A metric-learning loss of ``net`` (a :class:`_MetricForward`) on ``(images, labels)``,
    and its metric (``accuracy`` for ArcFace, else ``active``)."""
    x, y = batch
    loss, metric = net(x, y)
    name = "accuracy" if getattr(net, "module", net).loss == "arcface" else "active"
    return loss, {name: float(metric)}


def _seeded_init(model: Retriever, seed: int) -> None:
    """Re-draw ``model``'s weights from a generator of the ``"retriever/init"`` seed stream.

    Uses :func:`robustret.models.init_retriever` (torchvision's initialisation drawn from a
    ``torch.Generator``; torch's global RNG is never touched). A trunk holding weights loaded
    from a file (``model.weights_file``) keeps them; only the stem and head are re-drawn then.
    """
    init_retriever(model, make_generator(stream_seed(seed, INIT_STREAM)),
                   trunk=getattr(model, "weights_file", None) is None)
