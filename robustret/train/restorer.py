"""Train a restorer on (degraded, clean) pairs made on the fly from clean gallery images.

This module owns the trainer, :func:`train_restorer`, and its training step
(:class:`RestorerStep`); the rest is split by job: the settings and their resume key in
:mod:`robustret.train.restorer_config`, the batches and degradation draws in
:mod:`robustret.train.restorer_batches`, the retrieval-aware loss terms in
:mod:`robustret.train.restorer_losses`, the held-out validation in
:mod:`robustret.train.restorer_validation`, the epoch loop in :mod:`robustret.train.loop`.

Everything random is seeded from named streams of the config's one seed
(:func:`robustret.core.rng.stream_seed`): epoch ``e`` shuffles with stream ``restorer/epoch``
(index ``e``), batch ``b`` of it is degraded with a generator from ``restorer/batch``
(``e, b``) (then, with ``crop_size``, cropped at offsets drawn from the same generator, *after*
degrading the full image so that the degradation sees the whole picture), the validation
subset is a fixed draw from ``restorer/validation`` degraded once, and the weights are
initialised from ``restorer/init``. The epoch loop, checkpointing (``DIR/last.pt`` every epoch)
and resume are :func:`robustret.train.loop.train_loop`'s: re-running the same command continues
after the last finished epoch, and a longer ``epochs`` extends the run.

The loss is a pixel term (``pixel_loss``: MSE or L1 against the clean image), plus, with
``feature_weight`` lambda > 0, a retrieval-aware term through the frozen retriever of the
experiment (a :class:`~robustret.train.restorer_validation.RetrievalGuide`): for each of
``feature_layers``, ``mse(f(restored), f(clean)) / mean(f(clean) ** 2)``, the retriever kept
in ``eval()`` mode and never updated. The clean images' features ``f(clean)`` are computed once
per run (:func:`~robustret.train.restorer_losses.clean_features`) and looked up by image in
every step, not recomputed each time the image is drawn; with ``crop_size`` (each step sees a
new window) or when they would take more than
:data:`~robustret.train.restorer_losses.FEATURE_CACHE_BYTES`, each step computes its own.

Validation (a fixed subset of ``val_images``, a held-out tenth of the gallery split,
:func:`~robustret.train.restorer_validation.gallery_holdout`, never the queries, for the
experiment and ``python -m restoration.train`` alike) reports PSNR and SSIM, and with a guide
the embedding cosine to the clean image and the top-1 hit rate of the restored images against
the rest of the gallery (less the images of their own object instance, where the data knows
instances, as for the queries).

The learning-rate schedule halves the rate every ``lr_step`` epochs
(:func:`robustret.train.loop.step_decay`), fixed by the config rather than derived from
``epochs``, so "2 epochs" equals "1 epoch, resume, 1 more" exactly.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import restoration
from restoration.base import init_weights
from robustret import data as rdata
from robustret.core.checks import ConfigError, check_images, check_labels
from robustret.core.device import resolve_device
from robustret.core.distributed import data_parallel, is_main, setup, world_size
from robustret.core.io import atomic_write_json
from robustret.core.keys import fingerprint
from robustret.core.rng import make_generator, stream_seed
from robustret.core.tracking import RunLogger
from robustret.train.loop import LoopSettings, TrainResult, step_decay, train_loop
from robustret.train.restorer_batches import (
    Batch,
    DegradeFn,
    EpochBatches,
    Params,
    default_degrade,
    with_estimated_params,
)
from robustret.train.restorer_config import RestorerTrainConfig
from robustret.train.restorer_losses import (
    class_loss,
    clean_features,
    feature_loss,
    mean_pair_distance,
    neighbour_loss,
)
from robustret.train.restorer_validation import (
    RestorerValidation,
    RetrievalCheck,
    RetrievalGuide,
    ValidationSet,
    split_gallery,
)

log = logging.getLogger(__name__)

INIT_STREAM = "restorer/init"
"""Seed stream of the weight initialisation."""


@dataclass(frozen=True)
class RestorerTrainResult:
    """Outcome of :func:`train_restorer`.

    Attributes:
        model: the trained restorer (eval mode).
        history: per-epoch records (``loss``, ``lr``, ``val_psnr``, ``val_ssim``, ...).
        resumed_from: last epoch found in the checkpoint (0: fresh start).
        degraded_psnr: mean validation PSNR of the degraded input (dB).
        degraded_ssim: mean validation SSIM of the degraded input.
        checkpoint: path of ``last.pt``.
    """

    model: restoration.Restorer
    history: list[dict[str, float]]
    resumed_from: int
    degraded_psnr: float
    degraded_ssim: float
    checkpoint: Path

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's record."""
        return self.history[-1] if self.history else {}



class _Unclamped(torch.nn.Module):
    """``restorer.restore(images, clamp=False)`` as a module's ``forward``: the training
    forward, which ``DistributedDataParallel`` can wrap (it hooks ``forward`` only)."""

    def __init__(self, restorer: restoration.Restorer) -> None:
        super().__init__()
        self.restorer = restorer

    def forward(self, images: Tensor, params: Params | None = None) -> Tensor:
        return self.restorer.restore(images, params, clamp=False)


class _Frozen:
    """Keeps a module in eval mode with gradients off for its parameters until released."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.was_training = module, module.training
        self.flags = [p.requires_grad for p in module.parameters()]
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)

    def release(self) -> None:
        for p, flag in zip(self.module.parameters(), self.flags):
            p.requires_grad_(flag)
        self.module.train(self.was_training)



@dataclass(frozen=True)
class TrainingLabels:
    """What the task and neighbour terms know of the training images, on the device.

    Attributes:
        labels: (N,) int64 class of each training image (``guide.train_labels``).
        groups: (N,) int64 group (object instance) of each; each image its own group where
            the guide knows none.
    """

    labels: Tensor
    groups: Tensor


@dataclass(frozen=True)
class NeighbourBank:
    """The candidates of the neighbour term: the clean training images' embeddings.

    Attributes:
        embeddings: (N, D) float, on the device, one row per training image (not the mirrored
            rows of ``hflip``).
        scale: the softmax temperature in squared-distance units: ``neighbour_temperature``
            times the mean squared distance of two rows (> 0).
    """

    embeddings: Tensor
    scale: float


class RestorerStep:
    """One training step (``step`` of the epoch loop): restore a :data:`Batch`, return the
    loss ``pixel + feature_weight * feature + class_weight * class + neighbour_weight *
    neighbour`` and the terms logged (none for the pixel term alone).

    Args:
        net: the restorer's unclamped forward ``(degraded, params) -> restored`` (wrapped
            for several ranks).
        config: the run's settings (which terms, their weights and layers).
        retriever: the guide's frozen retriever; None without a guide (pixels only).
        labels: the training images' classes and groups (task and neighbour terms).
        neighbours: the neighbour term's candidates.
    """

    def __init__(self, net: torch.nn.Module, config: RestorerTrainConfig,
                 retriever: torch.nn.Module | None, labels: TrainingLabels | None,
                 neighbours: NeighbourBank | None) -> None:
        self.net, self.config, self.retriever = net, config, retriever
        self.labels, self.neighbours = labels, neighbours
        self.pixel = F.mse_loss if config.pixel_loss == "mse" else F.l1_loss
        # the retriever's activations a step needs: the feature term's, the embedding for the
        # task and neighbour terms
        self.through = tuple(dict.fromkeys((
            *(config.feature_layers if config.feature_weight > 0 else ()),
            *(("embedding",) if config.needs_labels else ()))))

    def __call__(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        config = self.config
        degraded, clean, params, targets, index = batch
        restored = self.net(degraded, params)
        loss = self.pixel(restored, clean)
        if not config.through_retriever:
            return loss, {}
        assert self.retriever is not None
        outputs = self.retriever.features(restored, self.through)
        total, logged = loss, {"pixel_loss": float(loss.detach())}
        if config.feature_weight > 0:
            features = feature_loss(self.retriever, restored, clean, config.feature_layers,
                                    targets, outputs=outputs)
            total = total + config.feature_weight * features
            logged["feature_loss"] = float(features.detach())
        if config.class_weight > 0:
            assert self.labels is not None
            task = class_loss(self.retriever, outputs["embedding"], self.labels.labels[index])
            total = total + config.class_weight * task
            logged["class_loss"] = float(task.detach())
        if config.neighbour_weight > 0:
            assert self.labels is not None and self.neighbours is not None
            groups = self.labels.groups
            excluded = groups[index][:, None] == groups[None, :]
            near = neighbour_loss(outputs["embedding"], self.labels.labels[index],
                                  self.neighbours.embeddings, self.labels.labels, excluded,
                                  self.neighbours.scale)
            total = total + config.neighbour_weight * near
            logged["neighbour_loss"] = float(near.detach())
        return total, logged


def _training_images(config: RestorerTrainConfig, train_images: Tensor | None,
                     val_images: Tensor | None) -> tuple[Tensor, Tensor]:
    """The (training, validation) images: those given, else the gallery split of
    ``config.dataset`` less its held-out tenth and that tenth
    (:func:`~robustret.train.restorer_validation.split_gallery` of ``config.seed``)."""
    if train_images is None or val_images is None:
        bundle = rdata.load(config.dataset, image_size=config.image_size, seed=config.seed)
        kept, held = split_gallery(bundle.gallery.images, config.seed)
        train_images = kept if train_images is None else train_images
        val_images = held if val_images is None else val_images
    check_images(train_images, "train_images")
    check_images(val_images, "val_images")
    return train_images, val_images


def _checked_guide(config: RestorerTrainConfig, guide: RetrievalGuide | None,
                   train_images: Tensor, val_images: Tensor,
                   device: torch.device) -> TrainingLabels | None:
    """Check that the terms of ``config`` have the guide and labels they need, and that the
    guide fits the images; the training labels (on ``device``) where a term needs them."""
    if config.through_retriever and guide is None:
        raise ConfigError(f"{config.model}: a feature, task or neighbour term (feature_weight "
                          f"{config.feature_weight}, class_weight {config.class_weight}, "
                          f"neighbour_weight {config.neighbour_weight}) needs the experiment's "
                          "retriever (a RetrievalGuide)")
    if guide is None:
        return None
    labels = None
    if config.needs_labels:
        term = (f"class_weight {config.class_weight}" if config.class_weight > 0
                else f"neighbour_weight {config.neighbour_weight}")
        if guide.train_labels is None:
            raise ValueError(f"{term} needs one label per training image in guide.train_labels "
                             f"({train_images.shape[0]}); got None")
        train_labels = check_labels(guide.train_labels, train_images.shape[0],
                                    "guide.train_labels")
        classes = guide.retriever.head.out_features
        if config.class_weight > 0 and (int(train_labels.min()) < 0
                                        or int(train_labels.max()) >= classes):
            raise ValueError(f"guide.train_labels must lie in [0, {classes}) (the retriever's "
                             f"classes); got {int(train_labels.min())}..{int(train_labels.max())}")
        train_groups = (torch.arange(train_images.shape[0]) if guide.train_groups is None else
                        check_labels(guide.train_groups, train_images.shape[0],
                                     "guide.train_groups"))
        labels = TrainingLabels(train_labels.to(device), train_groups.to(device))
    unknown = sorted(set(config.feature_layers) - set(guide.retriever.feature_layers()))
    if unknown:
        raise ConfigError(f"unknown feature layer(s) {', '.join(unknown)}; the retriever has "
                          f"{', '.join(guide.retriever.feature_layers())}")
    if guide.val_labels.shape[0] != val_images.shape[0]:
        raise ValueError(f"guide.val_labels has {guide.val_labels.shape[0]} labels for "
                         f"{val_images.shape[0]} validation images")
    return labels


def _cached_features(config: RestorerTrainConfig, guide: RetrievalGuide | None,
                     train_images: Tensor, device: torch.device) -> dict[str, Tensor] | None:
    """The feature term's clean features of the training images, computed once (None: no
    feature term, crops, or too large: each step computes its own); with ``hflip`` rows
    N..2N-1 are the mirrored images'."""
    if guide is None or not config.feature_weight > 0 or config.crop_size is not None:
        return None
    # with hflip, rows N..2N-1 are the mirrored images (one call: one size check for all)
    cached = torch.cat([train_images, train_images.flip(-1)]) if config.hflip else train_images
    return clean_features(guide.retriever, cached, config.feature_layers,
                          batch_size=config.batch_size, device=device)


def _neighbour_bank(config: RestorerTrainConfig, guide: RetrievalGuide | None,
                    train_images: Tensor, features: dict[str, Tensor] | None,
                    device: torch.device) -> NeighbourBank | None:
    """The neighbour term's clean training embeddings (taken from ``features`` where they
    hold them) and temperature; None without the term."""
    if guide is None or not config.neighbour_weight > 0:
        return None
    neighbours = (features["embedding"][:len(train_images)]  # not hflip's mirrored rows
                  if features and "embedding" in features else
                  clean_features(guide.retriever, train_images, ("embedding",),
                                 batch_size=config.batch_size, device=device)["embedding"])
    neighbours = neighbours.to(device)
    scale = config.neighbour_temperature * float(mean_pair_distance(neighbours).clamp_min(
        1e-12))
    return NeighbourBank(neighbours, scale)


def _seeded_model(config: RestorerTrainConfig, channels: int,
                  device: torch.device) -> tuple[restoration.Restorer, dict]:
    """The restorer of ``config`` for ``channels``-channel images, its weights drawn from
    :data:`INIT_STREAM`, on ``device``; and its resolved constructor options."""
    options = {"channels": channels, **config.model_options}
    model = restoration.build(config.model, **options)
    init_weights(model, make_generator(stream_seed(config.seed, INIT_STREAM))).to(device)
    return model, options


def train_restorer(
    config: RestorerTrainConfig,
    out_dir: str | Path,
    *,
    train_images: Tensor | None = None,
    val_images: Tensor | None = None,
    degrade: DegradeFn | None = None,
    progress: bool | None = None,
    tensorboard: bool = True,
    guide: RetrievalGuide | None = None,
) -> RestorerTrainResult:
    """Train (or resume training) a restorer; checkpoints go to ``out_dir/last.pt``.

    Args:
        config: what to train and how.
        out_dir: run folder: ``last.pt``, ``config.json``, ``summary.json``, ``logs/``
            (TensorBoard scalars ``train/<model>/...`` and image grids clean | degraded |
            restored, plus ``metrics.jsonl``); ``config.json`` and ``summary.json`` record
            ``world_size``, ``config.json`` also torch's intra-op thread count (the weights
            depend on it: float sums in another order). Under torchrun the ranks train together
            (:mod:`robustret.core.distributed`) and only rank 0 writes this folder.
        train_images: (N, C, H, W) float in [0, 1] clean training images; None loads the
            gallery split of ``config.dataset`` less its held-out tenth
            (:func:`~robustret.train.restorer_validation.gallery_holdout` of ``config.seed``).
        val_images: (M, C, H, W) clean validation images; None uses that held-out tenth of
            the gallery (never the queries).
        degrade: :data:`~robustret.train.restorer_batches.DegradeFn`; None uses
            ``degradations.apply(config.degrade, config.severity)``. With
            ``config.params_from == "estimated"`` its drawn parameters are replaced by the
            estimate's, for the training batches and the validation subset alike.
        progress: tqdm bar (None: only on a terminal).
        tensorboard: write TensorBoard event files (``metrics.jsonl`` is always written).
        guide: the frozen retriever of the feature term and the retrieval validation;
            required when ``config.feature_weight`` > 0.
    Returns:
        A :class:`RestorerTrainResult`.
    Raises:
        ConfigError: a feature term without a guide, or an unknown feature layer.
        ValueError: bad images, or a checkpoint in ``out_dir`` from another configuration.
    """
    out_dir = Path(out_dir)
    device = setup(resolve_device(config.device))  # under torchrun: this rank's device
    train_images, val_images = _training_images(config, train_images, val_images)
    degrade = degrade or default_degrade(config.degrade, config.severity)
    if config.params_from == "estimated":
        degrade = with_estimated_params(degrade)
    labels = _checked_guide(config, guide, train_images, val_images, device)

    validation = ValidationSet.draw(val_images, degrade, config.seed, config.val_images)
    retrieval_check = (RetrievalCheck(guide, validation.clean, validation.pick, device)
                       if guide else None)
    log.info("validation: %d images, degraded PSNR %.2f dB, SSIM %.4f", len(validation.pick),
             validation.degraded_psnr, validation.degraded_ssim)

    model, options = _seeded_model(config, int(train_images.shape[1]), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = step_decay(optimizer, step_epochs=config.lr_step)
    resume_key = _resume_key(config, guide)

    tag = f"train/{config.model}"
    logger = RunLogger(out_dir / "logs", tensorboard=tensorboard) if is_main() else None
    if is_main():  # only rank 0 writes files; the others train their slices
        _write_config(out_dir, config, resume_key, options)
    net = data_parallel(_Unclamped(model), device)
    frozen = _Frozen(guide.retriever) if guide is not None else None
    features = _cached_features(config, guide, train_images, device)
    step = RestorerStep(net, config, guide.retriever if guide is not None else None, labels,
                        _neighbour_bank(config, guide, train_images, features, device))
    try:
        result: TrainResult = train_loop(
            model=model, optimizer=optimizer, scheduler=scheduler,
            make_batches=lambda epoch: EpochBatches(train_images, config, epoch, degrade, device,
                                                    features),
            step=step, logger=logger,
            settings=_loop_settings(config, out_dir, model, resume_key, progress),
            evaluate=RestorerValidation(model, validation, retrieval_check, logger, tag,
                                        batch_size=config.batch_size, device=device),
        )
    finally:
        if logger is not None:
            logger.close()
        if frozen is not None:
            frozen.release()
    return _finished(config, out_dir, model, result, validation)


def _resume_key(config: RestorerTrainConfig, guide: RetrievalGuide | None) -> str:
    """The key a checkpoint must carry to be resumed: the config's fingerprint and, where the
    retriever decides what is learned (a feature, task or neighbour term), the guide's key."""
    steering = guide.key if guide is not None and config.through_retriever else None
    return fingerprint(config.fingerprint(), steering)


def _write_config(out_dir: Path, config: RestorerTrainConfig, resume_key: str,
                  options: dict) -> None:
    """Write ``config.json``: the settings, the resume key, the model's resolved options, the
    world size and torch's intra-op thread count (the weights depend on both)."""
    atomic_write_json(out_dir / "config.json", {**asdict(config), "fingerprint": resume_key,
                                                 "model_options_resolved": options,
                                                 "world_size": world_size(),
                                                 "threads": torch.get_num_threads()})


def _loop_settings(config: RestorerTrainConfig, out_dir: Path, model: restoration.Restorer,
                   resume_key: str, progress: bool | None) -> LoopSettings:
    """How the epoch loop runs a restorer: ``out_dir/last.pt`` keyed by ``resume_key``, with
    the restorer's metadata, config, degradation and severity beside the training state."""
    return LoopSettings(
        epochs=config.epochs, checkpoint=out_dir / "last.pt", fingerprint=resume_key,
        evaluate_every=config.val_every, tag=f"train/{config.model}", progress=progress,
        extra_state={"restorer": restoration.checkpoint_meta(model), "config": asdict(config),
                     "degradation": config.degrade, "severity": config.severity},
        average_decay=config.ema_decay)


def _finished(config: RestorerTrainConfig, out_dir: Path, model: restoration.Restorer,
              result: TrainResult, validation: ValidationSet) -> RestorerTrainResult:
    """Write ``summary.json`` (rank 0) and wrap up the run's :class:`RestorerTrainResult`."""
    final = {f"final_{k}": v for k, v in result.final.items()}
    summary = {"model": config.model, "degradation": config.degrade,
               "epochs": len(result.history), "degraded_psnr": validation.degraded_psnr,
               "degraded_ssim": validation.degraded_ssim, "world_size": world_size(), **final}
    if is_main():
        atomic_write_json(out_dir / "summary.json", summary)
    return RestorerTrainResult(model=model.eval(), history=result.history,
                               resumed_from=result.resumed_from,
                               degraded_psnr=validation.degraded_psnr,
                               degraded_ssim=validation.degraded_ssim,
                               checkpoint=out_dir / "last.pt")


__all__ = ["INIT_STREAM", "NeighbourBank", "RestorerStep", "RestorerTrainResult",
           "TrainingLabels", "train_restorer"]
