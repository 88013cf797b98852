"""Trained models and gallery embeddings, made once per key and reused from the model cache.

Each artefact lives in a folder of the model cache named by a
:func:`robustret.core.keys.fingerprint` of everything that decides it, including
:func:`robustret.core.keys.source_hash` of the code that computes it: the data's content, the
resolved training settings, the seed, the backbone and weights file, and for restorers the
degradation they learn. Gallery embeddings, and every finished condition after them, are keyed by
the SHA-256 of the checkpoint file they came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

import degradations
import restoration
from robustret.core.checks import ConfigError
from robustret.core.distributed import world_size
from robustret.core.io import CorruptFileError, checksum_path, file_digest
from robustret.core.keys import fingerprint, source_hash
from robustret.core.tracking import RunLogger
from robustret.data import ImageSet, RetrievalData, load_extra_objects
from robustret.experiment.policy import (
    BLIND,
    blind_mixture,
    hybrid_condition_for,
    hybrid_front_for,
)
from robustret.models import build_retriever
from robustret.retrieval import load_embeddings, write_embeddings
from robustret.train.classifier import settings_key, train_retriever
from robustret.train.metric_losses import RETRIEVER_LOSSES
from robustret.train.restorer import train_restorer
from robustret.train.restorer_batches import (
    DegradeFn,
    degrade_by_severity,
    draw_many,
    draw_one,
    severity_weights,
)
from robustret.train.restorer_config import TRAINING_CODE as RESTORER_TRAINING_CODE
from robustret.train.restorer_config import RestorerTrainConfig
from robustret.train.restorer_validation import RetrievalGuide, gallery_holdout
from robustret.train.robust import TRAINING_CODE, RobustTuneConfig, finetune_robust

log = logging.getLogger(__name__)

#: the code that decides a trained retriever / its embeddings / a trained restorer
RETRIEVER_CODE = ("robustret.models", "robustret.train.classifier", "robustret.train.loop",
                  "robustret.train.averaging", "robustret.train.augment")
EMBEDDING_CODE = ("robustret.models", "robustret.retrieval")
#: (the trainer's modules, the degradations, and this module: it builds a restorer's
#: degradation draw, training set and instance groups)
RESTORER_CODE = (*RESTORER_TRAINING_CODE, "degradations", "robustret.experiment.trained")
#: the gallery embeddings' file beside the retriever checkpoint, named by their key
GALLERY_FILE = "gallery_embeddings-{key}.npy"


def _world_salt() -> tuple[str, ...]:
    """Part of a trained model's cache key: the world size when several processes train it
    (they round and normalise differently, docs/distributed.md); nothing on one process, so
    one-process keys are those of a plain run."""
    return (f"world_size={world_size()}",) if world_size() > 1 else ()


def weights_key(model: nn.Module, checkpoint: Path) -> str:
    """What results computed with ``model`` are keyed by: the SHA-256 of its checkpoint file,
    or, where training wrote none (zero epochs), of its state dict's bytes."""
    if checkpoint.is_file():
        return file_digest(checkpoint)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def data_content_key(data: RetrievalData) -> str:
    """A key of the data's content: both splits' images and labels, bytes and shapes."""
    return images_key(data.gallery.images, data.gallery.labels, data.queries.images,
                      data.queries.labels)


def images_key(*tensors: Tensor) -> str:
    """A key of the tensors' content: their bytes, shapes and dtypes, in order."""
    digest = hashlib.sha256()
    for part in tensors:
        tensor = part.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def restorer_extra_objects(config, extra_objects: int) -> ImageSet | None:
    """``extra_objects`` more objects per class of the experiment's data set, loaded as the
    runner loads the data set itself (:func:`robustret.data.load_extra_objects`); None where
    the data set cannot make more (only the built-in ``synthetic`` renders them)."""
    return load_extra_objects(config.dataset, extra_objects, image_size=config.image_size,
                              per_class=config.per_class, seed=config.seed,
                              **config.dataset_options)


def joined(first: ImageSet, second: ImageSet) -> ImageSet:
    """``first``'s images followed by ``second``'s (same image shape and classes), with the
    metadata columns both have."""
    if first.class_names != second.class_names:
        raise ValueError(f"cannot join image sets of different classes: {first.class_names} "
                         f"and {second.class_names}")
    metadata: dict[str, Tensor | list] = {}
    for key in first.metadata.keys() & second.metadata.keys():
        a, b = first.metadata[key], second.metadata[key]
        metadata[key] = (torch.cat([a, b]) if isinstance(a, Tensor) and isinstance(b, Tensor)
                         else list(a) + list(b))
    return ImageSet(torch.cat([first.images, second.images]),
                    torch.cat([first.labels, second.labels]), list(first.class_names), metadata)


@dataclass(frozen=True)
class TrainedModel:
    """A ready model and the keys that name it.

    Attributes:
        model: the module, in ``eval()`` mode on the run's device.
        key: the cache key it was trained (or built) under.
        checkpoint: its ``last.pt`` (None for a restorer without weights).
        content_key: what results computed with it are keyed by: its checkpoint's SHA-256
            (:func:`weights_key`), or for a filter without weights a fingerprint of its name,
            options and code.
    """

    model: nn.Module
    key: str
    checkpoint: Path | None
    content_key: str


def retriever_key(config, data_key: str) -> str:
    """The cache key of the retriever a resolved ``config`` trains on data ``data_key``: the
    backbone, weights file, training settings (the metric-learning ones when not at their
    defaults), train degradations, code, the pooling when not ``avg``, the world size when
    above 1. At the defaults it has the parts of earlier releases."""
    weights_file = file_digest(config.weights)[:16] if config.weights is not None else None
    code = source_hash(*RETRIEVER_CODE, *(("degradations",) if config.train_degrade else ()))
    return fingerprint("retriever", data_key, config.backbone, weights_file,
                       settings_key(config.retriever), list(config.train_degrade), code,
                       *config.descriptor.pooling_key, *_world_salt())


def trained_retriever(config, data: RetrievalData, data_key: str, device: torch.device,
                      models_dir: Path, logger: RunLogger | None) -> TrainedModel:
    """Train the retriever of a resolved ``config``, or resume/reuse it from the cache."""
    descriptor = config.descriptor
    key = retriever_key(config, data_key)
    try:
        model = build_retriever(config.backbone, num_classes=len(data.class_names),
                                in_channels=data.gallery.images.shape[1], weights=config.weights,
                                pooling=descriptor.pooling, gem_p=descriptor.gem_p,
                                gem_learn=descriptor.gem_learn)
    except ValueError as exc:  # --weights that do not fit, or GeM without a feature map
        if config.weights is None:
            raise ConfigError(f"--backbone {config.backbone}: {exc}") from exc
        raise ConfigError(f"--weights: {exc}; pass a state_dict (.pth) of "
                          f"{config.backbone} or leave --weights out") from exc
    if descriptor.dim is not None and descriptor.dim > model.embedding_dim:
        raise ConfigError(f"--dim {descriptor.dim} exceeds the {model.embedding_dim}-d "
                          f"embeddings of {config.backbone}; pass --dim <= "
                          f"{model.embedding_dim} (PCA can only reduce)")
    model = model.to(device)
    train_degrade = None
    if config.train_degrade:
        names = list(config.train_degrade)

        def train_degrade(images: Tensor, generator: torch.Generator) -> Tensor:
            pick = int(torch.randint(len(names), (1,), generator=generator))
            severity = int(torch.randint(1, 6, (1,), generator=generator))
            return degradations.apply(images, names[pick], severity, generator=generator)

    folder = models_dir / f"retriever-{key}"
    train_retriever(model, data.gallery, config.retriever, device=device, out_dir=folder,
                    logger=logger, train_degrade=train_degrade)
    model.eval()
    checkpoint = folder / "last.pt"
    return TrainedModel(model, key, checkpoint, weights_key(model, checkpoint))


def robust_retriever(config, data: RetrievalData, start: TrainedModel, device: torch.device,
                     models_dir: Path, logger: RunLogger | None) -> TrainedModel:
    """``start`` (the trained retriever) fine-tuned on ``config.robust_train`` with the
    consistency term of :mod:`robustret.train.robust`, or reused from the cache; its key names
    the starting weights, the degradations and the settings."""
    tune = RobustTuneConfig(epochs=config.robust_epochs,
                            consistency_weight=float(config.robust_consistency),
                            seed=config.seed)
    names = sorted(config.robust_train)
    key = fingerprint("robust-retriever", start.content_key, names, dataclasses.asdict(tune),
                      source_hash(*TRAINING_CODE))
    folder = models_dir / f"retriever-robust-{key}"
    finetune_robust(start.model, data.gallery, names, tune, device=device, out_dir=folder,
                    start_key=start.content_key, logger=logger)
    checkpoint = folder / "last.pt"
    return TrainedModel(start.model.eval(), key, checkpoint, weights_key(start.model, checkpoint))


def gallery_embeddings(
    retriever: TrainedModel, images: Tensor | DataLoader, device: torch.device
) -> tuple[Tensor, str]:
    """Gallery embeddings (N, D) float32, cached beside the retriever's checkpoint.

    The cache file ``gallery_embeddings-KEY.npy`` is keyed by the checkpoint's SHA-256, the
    gallery's shape and the embedding code; it is written in shards as the batches come
    (:func:`robustret.retrieval.write_embeddings`, memory for one batch) with a ``.sha256``
    sidecar, and older gallery files beside it are removed. A file that does not match its
    sidecar, that numpy cannot map, or that holds no finite (N, D) float32 rows is reported in
    one warning and recomputed.

    Args:
        retriever: the trained retriever (with a checkpoint path).
        images: (N, C, H, W) float in [0, 1], or a DataLoader of ``(images, labels)`` batches
            in gallery order over a dataset with ``image_shape`` (C, H, W), e.g.
            :func:`robustret.data.lazy.folder_loader`; both give the same key and rows.
        device: where the forward passes run.
    Returns:
        ``(embeddings, key)``: (N, D) float32 memory-mapped from the cache file (copy-on-write:
        the file is never changed through it); ``key`` names them in the conditions' keys.
    """
    assert retriever.checkpoint is not None
    shape = _gallery_shape(images)
    key = fingerprint("gallery", retriever.content_key, shape, source_hash(*EMBEDDING_CODE))
    folder = retriever.checkpoint.parent
    path = folder / GALLERY_FILE.format(key=key)
    if path.is_file():
        try:
            return _checked_embeddings(load_embeddings(path, count=shape[0]), path), key
        except CorruptFileError as exc:
            log.warning("gallery embeddings %s; recomputing them", exc)
    elif any(_old_gallery_files(folder, path)):
        log.info("gallery embeddings in %s are stale; recomputing", folder)
    embeddings = write_embeddings(retriever.model, images, path, count=shape[0], device=device)
    for old in _old_gallery_files(folder, path):
        try:
            old.unlink(missing_ok=True)
        except OSError as exc:  # e.g. still mapped by another process on Windows
            log.info("could not remove the stale gallery embeddings %s (%s)", old, exc)
    return _checked_embeddings(embeddings, path), key


def _gallery_shape(images: Tensor | DataLoader) -> tuple[int, ...]:
    if isinstance(images, Tensor):
        return tuple(images.shape)
    dataset = getattr(images, "dataset", None)
    if not hasattr(dataset, "image_shape"):
        raise TypeError("gallery images must be a (N, C, H, W) tensor or a DataLoader over a "
                        f"dataset with image_shape; got {type(images).__name__}")
    return (len(dataset), *dataset.image_shape)


def _old_gallery_files(folder: Path, keep: Path) -> list[Path]:
    """Earlier gallery embedding files in ``folder`` (and their sidecars), not ``keep``'s."""
    if not folder.is_dir():
        return []
    names = {keep.name, checksum_path(keep).name}
    return [p for p in folder.iterdir() if p.name.startswith("gallery_embeddings")
            and not p.name.startswith(".") and p.name not in names]


def _checked_embeddings(embeddings: Tensor, path: Path) -> Tensor:
    """``embeddings`` if all are finite (checked in blocks), else :class:`CorruptFileError`."""
    for block in embeddings.split(1 << 14):
        if not bool(torch.isfinite(block).all()):
            raise CorruptFileError(path, "its embeddings are not all finite")
    return embeddings


def instance_groups(images: ImageSet) -> Tensor | None:
    """(N,) int64 group of each image: one per (class, object instance), from the set's
    ``instance`` metadata (instance ids may repeat across classes); None where the set does
    not know its instances."""
    column = images.metadata.get("instance")
    if column is None:
        return None
    ids = column.tolist() if isinstance(column, Tensor) else list(column)
    codes: dict[tuple[int, object], int] = {}
    return torch.tensor([codes.setdefault((label, ident), len(codes))
                         for label, ident in zip(images.labels.tolist(), ids)], dtype=torch.int64)


def trained_restorer(name: str, training_degradation: str, severities: list[int], config,
                     data: RetrievalData, data_key: str, device: torch.device,
                     models_dir: Path, retriever: TrainedModel,
                     gallery: Tensor) -> TrainedModel:
    """A ready restorer: a filter is built; a recipe's network is trained or reused.

    A network learns ``training_degradation`` on the clean gallery (less a held-out tenth,
    :func:`robustret.train.restorer_validation.gallery_holdout`, that validates it) degraded
    on the fly at the experiment's ``severities`` (one drawn per batch when there are several,
    or one per image with ``severity_per_image``, weighted by the section's
    ``severity_bias``), with the settings of ``config.restorers[name]``. Recipes with a
    feature term train through ``retriever``, and its weights are part of their key;
    ``gallery`` (G, D) are the gallery embeddings the validation searches. A ``hybrid`` gets
    the front end and the conditioning of the degradation's family
    (:func:`robustret.experiment.policy.hybrid_front_for`,
    :func:`robustret.experiment.policy.hybrid_condition_for`) unless its options name them.
    """
    if name not in config.restorers:
        model = restoration.build(name).to(device).eval()
        options = restoration.checkpoint_meta(model)
        content = fingerprint("filter", options, source_hash("restoration"))
        return TrainedModel(model, name, None, content)

    severities = sorted(set(severities))
    section = config.restorers[name]
    if section.class_weight > 0 and RETRIEVER_LOSSES[config.retriever.loss].pairs:
        raise ConfigError(f"restorer {name}: its task term (class_weight "
                          f"{section.class_weight}) reads the retriever's class head, which a "
                          f"{config.retriever.loss} retriever leaves untrained; use "
                          "--retriever-loss classifier or arcface, or class_weight = 0")
    options = dict(section.model_options)
    if section.model == "hybrid":
        options.setdefault("front", hybrid_front_for(training_degradation))
        options.setdefault("condition", list(hybrid_condition_for(training_degradation)))
    # a blind recipe draws one degradation of the mixture per batch
    targets = blind_mixture() if training_degradation == BLIND else [training_degradation]
    train_config = dataclasses.replace(section, degrade=targets[0],
                                       severity=severities[len(severities) // 2],
                                       device=str(device), model_options=options)
    degrade = severity_degrade(targets, severities, train_config)

    train_part, held = gallery_holdout(len(data.gallery), config.seed)
    groups = instance_groups(data.gallery)
    training, train_config = _restorer_training_set(name, config, data.gallery.subset(train_part),
                                                    train_config)
    guide = RetrievalGuide(retriever.model, retriever.content_key, gallery[train_part],
                           data.gallery.labels[train_part], data.gallery.labels[held],
                           train_labels=training.labels, train_groups=instance_groups(training),
                           gallery_groups=None if groups is None else groups[train_part],
                           val_groups=None if groups is None else groups[held])
    steering = retriever.content_key if train_config.through_retriever else None
    extra_key = (images_key(training.images[len(train_part):])
                 if train_config.extra_objects else None)
    key = fingerprint("restorer", data_key, severities, targets, train_config.fingerprint(),
                      train_config.epochs, steering, extra_key, source_hash(*RESTORER_CODE),
                      *_world_salt())
    folder = models_dir / f"{name}-{training_degradation}-{key}"
    result = train_restorer(train_config, folder, train_images=training.images,
                            val_images=data.gallery.images[held], degrade=degrade,
                            tensorboard=config.tensorboard, guide=guide)
    return TrainedModel(result.model.eval(), f"{name}-{training_degradation}-{key}",
                        result.checkpoint, weights_key(result.model, result.checkpoint))


def severity_degrade(targets: list[str], severities: list[int],
                     train_config: RestorerTrainConfig) -> DegradeFn:
    """The experiment's degradation of a restorer's training batch: one of ``targets`` drawn
    per batch (:func:`robustret.train.restorer_batches.draw_one`), then one of
    ``severities`` per batch, or one per image with ``train_config.severity_per_image``,
    weighted by ``train_config.severity_bias``; all from the batch's generator, in that order.

    Returns:
        ``(images (B, C, H, W) in [0, 1], generator) -> (degraded (B, C, H, W) in [0, 1],
        params)``, the drawn parameters a hybrid's front end needs.
    """
    weights = severity_weights(severities, train_config.severity_bias)

    def degrade(images: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        target = draw_one(targets, generator)

        def at(part: Tensor, severity: int) -> tuple[Tensor, dict[str, Tensor]]:
            return degradations.apply(part, target, severity, generator=generator,
                                      return_params=True)  # a hybrid's front end needs them

        if train_config.severity_per_image:
            return degrade_by_severity(images, draw_many(severities, len(images), generator,
                                                         weights), at)
        return at(images, draw_one(severities, generator, weights))

    return degrade


def _restorer_training_set(name: str, config, training: ImageSet,
                           train_config: RestorerTrainConfig
                           ) -> tuple[ImageSet, RestorerTrainConfig]:
    """``training`` (the gallery less its held-out tenth) followed by the section's
    ``extra_objects`` rendered objects (:func:`restorer_extra_objects`); where the data set
    cannot render them, ``training`` alone (a warning says so) and a ``train_config`` with
    ``extra_objects`` 0."""
    if not train_config.extra_objects:
        return training, train_config
    extra = restorer_extra_objects(config, train_config.extra_objects)
    if extra is None:
        log.warning("restorer %s: extra_objects = %d needs the built-in synthetic data "
                    "(it renders them); %s has no more objects, so it trains on the "
                    "gallery only", name, train_config.extra_objects, config.dataset)
        return training, dataclasses.replace(train_config, extra_objects=0)
    return joined(training, extra), train_config
