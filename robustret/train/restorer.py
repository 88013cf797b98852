"""Train a restorer on (degraded, clean) pairs made on the fly from clean gallery images.

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
experiment (a :class:`RetrievalGuide`): for each of ``feature_layers``,
``mse(f(restored), f(clean)) / mean(f(clean) ** 2)``, the retriever kept in ``eval()`` mode
and never updated. The clean images' features ``f(clean)`` are computed once per run
(:func:`clean_features`) and looked up by image in every step, not recomputed each time the
image is drawn; with ``crop_size`` (each step sees a new window) or when they would take more
than :data:`FEATURE_CACHE_BYTES`, each step computes its own.

Validation (a fixed subset of ``val_images``, which the runner takes from a held-out part of
the gallery split, never from the queries) reports PSNR and SSIM, and with a guide the
embedding cosine to the clean image and the top-1 hit rate of the restored images against the
rest of the gallery (less the images of their own object instance, where the data knows
instances, as for the queries).

The learning-rate schedule halves the rate every ``lr_step`` epochs
(:func:`robustret.train.loop.step_decay`), fixed by the config rather than derived from
``epochs``, so "2 epochs" equals "1 epoch, resume, 1 more" exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import degradations
import restoration
from restoration.base import init_weights
from robustret import data as rdata
from robustret.core.batching import map_batches
from robustret.core.checks import ConfigError, check_images, check_labels
from robustret.core.device import resolve_device
from robustret.core.distributed import data_parallel, is_main, setup, world_size
from robustret.core.io import atomic_write_json
from robustret.core.keys import fingerprint, source_hash
from robustret.core.quality import psnr, ssim
from robustret.core.rng import make_generator, stream_seed
from robustret.core.tracking import RunLogger
from robustret.train.averaging import check_decay
from robustret.train.loop import TrainResult, step_decay, train_loop

log = logging.getLogger(__name__)

Params = dict[str, Tensor]
"""A degradation's drawn per-image parameters, each (B,) (blur ``a``/``b``, lowres ``level``)."""
DegradeFn = Callable[[Tensor, torch.Generator], "Tensor | tuple[Tensor, Params]"]
"""``(clean (B, C, H, W) in [0, 1], generator) -> degraded (B, C, H, W) in [0, 1]``, or
``(degraded, params)``: the parameters the degradation drew, which a restorer that
``uses_params`` (a hybrid's Wiener front end) is given in training as at evaluation."""

EPOCH_STREAM = "restorer/epoch"
"""Seed stream of each epoch's image order (index: the epoch)."""
BATCH_STREAM = "restorer/batch"
"""Seed stream of each batch's degradation and crops (index: epoch, batch)."""
VALIDATION_STREAM = "restorer/validation"
"""Seed stream of the validation subset and its degradation."""
INIT_STREAM = "restorer/init"
"""Seed stream of the weight initialisation."""
FLIP_STREAM = "restorer/flip"
"""Seed stream of which images of a batch are mirrored with ``hflip`` (index: epoch, batch)."""
TRAINING_CODE = ("restoration", "robustret.train.restorer", "robustret.train.loop",
                 "robustret.train.averaging")
"""Packages whose source is part of the resume key: editing them starts training afresh."""

_NOT_LEARNED = ("epochs", "device", "val_every")
PIXEL_LOSSES = ("mse", "l1")
"""Settings that do not change what is learned; left out of the resume fingerprint."""

_QUICK: dict[str, dict[str, Any]] = {
    "dae": dict(epochs=15, batch_size=32, lr=1e-3, lr_step=6, samples_per_epoch=1024,
                crop_size=None, val_images=128, model_options={"skips": True}),
    "srcnn": dict(epochs=10, batch_size=32, lr=1e-3, lr_step=4, samples_per_epoch=1024,
                  crop_size=33, val_images=64, model_options={"residual": True}),
}
"""The quick profile per network; another trainable restorer gets :data:`_QUICK_DEFAULT`."""
_QUICK_DEFAULT: dict[str, Any] = dict(epochs=10, batch_size=32, lr=1e-3, lr_step=4,
                                      samples_per_epoch=1024, val_images=64)


@dataclass(frozen=True)
class RestorerTrainConfig:
    """How to train one restorer.

    Attributes:
        model: restorer name, one of ``restoration.networks()``.
        model_options: constructor options of the model (widths, residual, ...).
        degrade: degradation name (``degradations.available()``).
        severity: degradation severity (3 = the study's parameters).
        dataset: ``robustret.data.load`` spec of the clean images: ``synthetic``,
            ``smallnorb:PATH`` or ``folder:PATH``.
        image_size: resize the data set to this side (None: native).
        epochs: epochs to reach (a re-run with more extends the run).
        batch_size: images (or crops) per step.
        lr: Adam learning rate.
        lr_step: halve the learning rate every ``lr_step`` epochs (the study: 40).
        samples_per_epoch: gallery images drawn (without replacement) per epoch; None = all.
        crop_size: train on random ``crop x crop`` crops of the degraded/clean pair; None = full.
        val_images: size of the fixed validation subset (query split).
        val_every: validate after every this many epochs (and after the last); it does not
            change what is learned, so it is left out of the resume key.
        seed: the one seed everything derives from.
        device: ``auto``, ``cpu``, ``cuda[:n]``.
        pixel_loss: ``mse`` or ``l1`` against the clean image.
        feature_weight: lambda of the retrieval-aware feature term (0: pixels only, the study).
        feature_layers: retriever activations compared (``Retriever.feature_layers()``:
            ``embedding``, ``layer1`` .. ``layer4`` for ResNets).
        severity_bias: when one model learns several severities (``--severity all``), each
            batch's severity ``s`` is drawn with probability proportional to
            ``s ** severity_bias`` (:func:`severity_weights`): 0 draws them uniformly, 2 draws
            severity 5 25 times as often as severity 1 (where most accuracy is lost).
        class_weight: weight of the task term, the cross-entropy of the frozen retriever's
            classification head on the restored images against their class labels
            (:func:`class_loss`; 0: none). Needs the guide's ``train_labels``.
        neighbour_weight: weight of the neighbour term, a soft nearest-neighbour loss of the
            restored images' embeddings against the clean training images' embeddings, the
            image's own group (instance) left out (:func:`neighbour_loss`; 0: none): the L2
            search the experiment scores, made differentiable. Needs the guide's
            ``train_labels`` (and ``train_groups``, where the data knows instances).
        neighbour_temperature: its softmax temperature, in units of the mean squared distance
            between two clean training embeddings (> 0; small: the nearest neighbour decides).
        hflip: mirror each training image left-right with probability 1/2 before it is
            degraded (drawn per image from its own stream, so the degradations drawn are those
            without it): the restorer also sees the mirrored objects, as it will see objects
            of the query split that it never trained on. The clean features are then cached
            for both orientations.
        ema_decay: > 0 validates, saves and returns an exponential moving average of the
            weights over the steps (:mod:`robustret.train.averaging`; about
            ``1 / (1 - ema_decay)`` steps long) instead of the last step's weights; the raw
            weights are saved beside it for resuming. 0: the last weights, no average.
        severity_per_image: when one model learns several severities, draw each image's
            severity (with ``severity_bias``'s weights) instead of one per batch, so that every
            step mixes them (:func:`draw_many`, :func:`degrade_by_severity`).
        extra_objects: objects per category beyond the data set's own that the experiment
            renders and adds to the training images
            (:func:`robustret.experiment.trained.trained_restorer`,
            built-in ``synthetic`` data only: other data sets train without them and a warning
            says so). They are never searched nor queried; 0: the gallery's images only. The
            trainer itself (:func:`train_restorer`) trains on the images it is given.
    """

    model: str = "dae"
    model_options: dict[str, Any] = field(default_factory=dict)
    degrade: str = "noise"
    severity: int = 3
    dataset: str = "synthetic"
    image_size: int | None = None
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    lr_step: int = 40
    samples_per_epoch: int | None = None
    crop_size: int | None = None
    val_images: int = 256
    val_every: int = 1
    seed: int = 0
    device: str = "auto"
    pixel_loss: str = "mse"
    feature_weight: float = 0.0
    feature_layers: tuple[str, ...] = ("embedding",)
    severity_bias: float = 0.0
    class_weight: float = 0.0
    neighbour_weight: float = 0.0
    neighbour_temperature: float = 0.1
    hflip: bool = False
    ema_decay: float = 0.0
    severity_per_image: bool = False
    extra_objects: int = 0

    def __post_init__(self) -> None:
        # types first, so that a TOML value of the wrong kind is named (not a TypeError later)
        for name, kind in (("model", "str"), ("degrade", "str"), ("dataset", "str"),
                           ("device", "str"), ("pixel_loss", "str"), ("severity", "int"),
                           ("epochs", "int"), ("batch_size", "int"), ("lr_step", "int"),
                           ("val_images", "int"), ("val_every", "int"), ("seed", "int"),
                           ("image_size", "int?"), ("samples_per_epoch", "int?"),
                           ("crop_size", "int?"),
                           ("lr", "number"), ("feature_weight", "number"),
                           ("severity_bias", "number"), ("class_weight", "number"),
                           ("neighbour_weight", "number"), ("neighbour_temperature", "number"),
                           ("hflip", "bool"), ("ema_decay", "number"),
                           ("severity_per_image", "bool"), ("extra_objects", "int")):
            value = getattr(self, name, None)
            if kind.endswith("?") and value is None:
                continue
            expected = {"str": str, "int": int, "number": (int, float),
                        "bool": bool}[kind.rstrip("?")]
            if (isinstance(value, bool) and kind != "bool") or not isinstance(value, expected):
                words = {"str": "a string", "int": "an integer", "number": "a number",
                         "bool": "true or false"}
                raise ConfigError(f"{name} must be {words[kind.rstrip('?')]}"
                                  f"{' or None' if kind.endswith('?') else ''}; got {value!r}")
        if not isinstance(self.model_options, Mapping):
            raise ConfigError(f"model_options must be a table of constructor options; got "
                              f"{self.model_options!r}")

        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}; "
                              f"got {self.pixel_loss!r}")
        for name, zero in (("feature_weight", "pixels only"),
                           ("severity_bias", "severities drawn uniformly"),
                           ("class_weight", "no task term"),
                           ("neighbour_weight", "no neighbour term")):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0: {zero}); got {getattr(self, name)!r}")
        try:
            check_decay(self.ema_decay)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.neighbour_temperature <= 0:
            raise ConfigError(f"neighbour_temperature must be > 0; got "
                              f"{self.neighbour_temperature!r}")
        layers = (
            (self.feature_layers,) if isinstance(self.feature_layers, str) else self.feature_layers
        )
        if not isinstance(layers, (list, tuple)) or not layers or not all(
                isinstance(name, str) for name in layers):
            raise ConfigError(f"feature_layers must be a list of layer names; "
                              f"got {self.feature_layers!r}")
        object.__setattr__(self, "feature_layers", tuple(layers))

        trainable = restoration.networks()
        if self.model not in trainable:
            raise ConfigError(f"unknown restorer network {self.model!r}: only trainable "
                              f"restorers can be trained; choose one of {', '.join(trainable)}")
        if self.degrade not in degradations.DEGRADATIONS:
            raise ConfigError(f"unknown degradation {self.degrade!r}; available: "
                              f"{', '.join(degradations.available())}")
        for name in ("epochs", "batch_size", "lr_step", "val_images", "val_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ConfigError(
                    f"{name} must be a positive int (epochs may be 0), got {value!r}")
        if self.extra_objects < 0:
            raise ConfigError(f"extra_objects must be >= 0 (0: the data set's images only); "
                              f"got {self.extra_objects!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ConfigError(
                f"samples_per_epoch must be >= 1 or None, got {self.samples_per_epoch}")
        if self.crop_size is not None and self.crop_size < 1:
            raise ConfigError(f"crop_size must be >= 1 or None, got {self.crop_size}")

    @classmethod
    def paper(cls, model: str = "dae", degrade: str = "noise",
              **overrides: Any) -> RestorerTrainConfig:
        """The study's schedule: 200 epochs over all gallery images, batch 64, Adam lr 1e-3
        halved every 40 epochs, full images (times in docs/restoration.md)."""
        base: dict[str, Any] = dict(model=model, degrade=degrade, epochs=200, batch_size=64,
                                    lr=1e-3, lr_step=40, samples_per_epoch=None, crop_size=None,
                                    val_images=512)
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, model: str = "dae", degrade: str = "noise",
              **overrides: Any) -> RestorerTrainConfig:
        """A few CPU minutes per restorer (see docs/restoration.md for the measured times).

        DAE: 15 epochs of 1,024 full images, with symmetric skip connections (the plain
        bottleneck blurs the queries so much in that budget that retrieval gets worse).
        SRCNN: 10 epochs of 1,024 random 33x33 crops (the original SRCNN's sub-image size)
        with lr 1e-3, halved every 4 epochs, residual (the plain stack cannot learn the
        identity in that budget; see docs/restoration.md).
        """
        base = _QUICK.get(model, _QUICK_DEFAULT)
        return cls(**{"model": model, "degrade": degrade, **base, **overrides})

    @property
    def through_retriever(self) -> bool:
        """Whether the retriever decides what is learned (a feature, task or neighbour term),
        so that its key belongs in the restorer's cache and resume keys."""
        return self.feature_weight > 0 or self.class_weight > 0 or self.neighbour_weight > 0

    @property
    def needs_labels(self) -> bool:
        """Whether a term needs the training images' classes (the task, neighbour terms)."""
        return self.class_weight > 0 or self.neighbour_weight > 0

    def fingerprint(self) -> str:
        """Resume key: every setting that changes what is learned (not ``epochs`` nor
        ``device``) and the source of the training code (:data:`TRAINING_CODE`)."""
        learned = {k: v for k, v in asdict(self).items() if k not in _NOT_LEARNED}
        return fingerprint("restorer", learned, source_hash(*TRAINING_CODE))


@dataclass(frozen=True)
class RetrievalGuide:
    """The frozen retriever a restorer is trained through and validated against.

    Attributes:
        retriever: the experiment's retriever (``features``/``embed``); kept in eval mode,
            its weights never change.
        key: a key of its weights (part of the restorer's cache and resume keys).
        gallery_embeddings: (G, D) float, the gallery images the validation searches.
        gallery_labels: (G,) int64 labels of those.
        val_labels: (M,) int64 labels of the validation images given to the trainer.
        train_labels: (N,) int64 labels of the training images given to the trainer, in
            the head's classes (the task and neighbour terms); None: not known.
        train_groups: (N,) int64 group of each training image (its object instance): images
            of one group are never each other's neighbours in the neighbour term, as a query
            never finds its own instance in the gallery; None: each image its own group.
        gallery_groups: (G,) int64 groups of the gallery images, and ``val_groups`` (M,) of
            the validation images, in one numbering: the validation search leaves out the
            gallery images of a validation image's own group (its instance), as the queries'
            search does; None (either): the whole gallery is searched.
    """

    retriever: torch.nn.Module
    key: str
    gallery_embeddings: Tensor
    gallery_labels: Tensor
    val_labels: Tensor
    train_labels: Tensor | None = None
    train_groups: Tensor | None = None
    gallery_groups: Tensor | None = None
    val_groups: Tensor | None = None


FEATURE_CACHE_BYTES = 2 << 30
"""The most memory :func:`clean_features` of a training set may take (else steps compute them)."""


def clean_features(retriever: torch.nn.Module, images: Tensor, layers: tuple[str, ...], *,
                   batch_size: int, device: torch.device) -> dict[str, Tensor] | None:
    """``retriever.features(images, layers)`` without gradients, batch by batch, on the CPU.

    Args:
        retriever: frozen, in eval mode.
        images: (N, C, H, W) float in [0, 1], the clean training images.
        layers: names of ``retriever.features``.
        batch_size: images per forward pass.
        device: where the forward passes run.
    Returns:
        ``{layer: (N, ...) float tensor}``, or None where they would take more than
        :data:`FEATURE_CACHE_BYTES` (judged from the first batch).
    """
    def batch(start: int) -> dict[str, Tensor]:
        return {name: value.cpu() for name, value in
                retriever.features(images[start:start + batch_size].to(device), layers).items()}

    with torch.no_grad():
        first = batch(0)
        per_image = sum(value[:1].numel() * value.element_size() for value in first.values())
        if per_image * images.shape[0] > FEATURE_CACHE_BYTES:
            return None
        parts = [first, *(batch(i) for i in range(batch_size, images.shape[0], batch_size))]
    return {name: torch.cat([part[name] for part in parts]) for name in layers}


def feature_loss(retriever: torch.nn.Module, restored: Tensor, clean: Tensor,
                 layers: tuple[str, ...], targets: Mapping[str, Tensor] | None = None,
                 outputs: Mapping[str, Tensor] | None = None) -> Tensor:
    """Sum over ``layers`` of ``mse(f(restored), f(clean)) / mean(f(clean) ** 2)``.

    Args:
        retriever: frozen, in eval mode; gradients flow to ``restored`` only.
        restored: (B, C, H, W) restorer output (unclamped is fine).
        clean: (B, C, H, W) float in [0, 1].
        layers: names of ``retriever.features``.
        targets: ``f(clean)`` already computed (:func:`clean_features` of these images), one
            (B, ...) tensor per layer; None or empty: computed here.
        outputs: ``f(restored)`` already computed (with gradients), holding at least
            ``layers``; None: computed here.
    Returns:
        A scalar tensor.
    """
    if not targets:
        with torch.no_grad():
            targets = retriever.features(clean, layers)
    if outputs is None:
        outputs = retriever.features(restored, layers)
    total = restored.new_zeros(())
    for name in layers:
        target = targets[name]
        total = total + F.mse_loss(outputs[name], target) / target.pow(2).mean().clamp_min(1e-12)
    return total


def class_loss(retriever: torch.nn.Module, embedding: Tensor, labels: Tensor) -> Tensor:
    """The task term: cross-entropy of ``retriever.head`` (its classification layer) on the
    embeddings of restored images against their classes.

    Args:
        retriever: frozen, in eval mode, with a ``head`` from embeddings to class logits.
        embedding: (B, D) ``retriever.features(restored)["embedding"]``, with gradients.
        labels: (B,) int64 classes in ``[0, head.out_features)``.
    Returns:
        A scalar tensor.
    """
    return F.cross_entropy(retriever.head(embedding), labels)


def mean_pair_distance(embeddings: Tensor) -> Tensor:
    """Mean squared L2 distance over all ordered pairs (i, j) of rows, i == j included:
    ``2 * (mean ||g||^2 - ||mean g||^2)``, exact, without the (N, N) matrix.

    Args:
        embeddings: (N, D) float, N >= 1.
    Returns:
        A scalar tensor >= 0.
    """
    rows = embeddings.double()
    spread = rows.pow(2).sum(dim=1).mean() - rows.mean(dim=0).pow(2).sum()
    return (2 * spread).clamp_min(0).to(embeddings.dtype)


def neighbour_loss(embedding: Tensor, labels: Tensor, gallery: Tensor, gallery_labels: Tensor,
                   excluded: Tensor, temperature: float | Tensor) -> Tensor:
    """Soft nearest-neighbour loss: ``-log`` of the softmax mass that each embedding puts on
    the gallery rows of its own class, over ``-||embedding - g||^2 / temperature``, the
    ``excluded`` pairs (its own image, its instance) left out of the softmax.

    Rows with no admissible row of their class in the gallery add nothing; where no row has
    one the loss is zero (with a gradient of zeros).

    Args:
        embedding: (B, D) embeddings of restored images, with gradients.
        labels: (B,) int64 their classes.
        gallery: (N, D) clean embeddings searched (no gradients needed).
        gallery_labels: (N,) int64 their classes.
        excluded: (B, N) bool, True where row ``j`` of the gallery is not a neighbour of ``i``.
        temperature: > 0, in squared-distance units.
    Returns:
        A scalar tensor.
    """
    squared = (embedding.pow(2).sum(dim=1, keepdim=True) + gallery.pow(2).sum(dim=1)
               - 2 * embedding @ gallery.T).clamp_min(0)
    logits = (-squared / temperature).masked_fill(excluded, float("-inf"))
    same = (labels[:, None] == gallery_labels[None, :]) & ~excluded
    usable = same.any(dim=1) & (~excluded).any(dim=1)
    if not bool(usable.any()):
        return embedding.sum() * 0
    logits, same = logits[usable], same[usable]
    total = torch.logsumexp(logits, dim=1)
    hits = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
    return (total - hits).mean()


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


def default_degrade(name: str, severity: int) -> DegradeFn:
    """``degradations.apply`` with ``name`` and ``severity`` as a :data:`DegradeFn` (with the
    drawn parameters)."""
    def degrade(images: Tensor, generator: torch.Generator) -> tuple[Tensor, Params]:
        return degradations.apply(images, name, severity, generator=generator,
                                  return_params=True)

    return degrade


def severity_weights(severities: Sequence[int], bias: float) -> list[float] | None:
    """``severity ** bias`` per severity, the draw's weights (:func:`draw_one`); None for
    ``bias`` 0, the uniform draw."""
    return None if bias == 0 else [float(s) ** bias for s in severities]


def draw_one(choices: Sequence[Any], generator: torch.Generator,
             weights: Sequence[float] | None = None) -> Any:
    """One of ``choices``, drawn with probability proportional to ``weights`` (None: uniform,
    one ``randint`` of ``generator``); a single choice is returned without drawing."""
    if len(choices) == 1:
        return choices[0]
    if weights is None:
        return choices[int(torch.randint(len(choices), (1,), generator=generator))]
    chances = torch.tensor(list(weights), dtype=torch.float64)
    return choices[int(torch.multinomial(chances, 1, generator=generator))]


def draw_many(choices: Sequence[Any], count: int, generator: torch.Generator,
               weights: Sequence[float] | None = None) -> list[Any]:
    """``count`` independent draws of :func:`draw_one`'s distribution, in one call of
    ``generator`` (a single choice is returned ``count`` times without drawing)."""
    if len(choices) == 1:
        return [choices[0]] * count
    chances = torch.ones(len(choices), dtype=torch.float64) if weights is None else \
        torch.tensor(list(weights), dtype=torch.float64)
    picks = torch.multinomial(chances, count, replacement=True, generator=generator)
    return [choices[int(i)] for i in picks]


def degrade_by_severity(images: Tensor, severities: Sequence[int],
                        degrade: Callable[[Tensor, int], tuple[Tensor, Params]]
                        ) -> tuple[Tensor, Params]:
    """Degrade each image at its own severity: ``degrade(part, s)`` once per distinct ``s``
    (ascending) on the images drawn at ``s``, the results put back in the images' order.

    Args:
        images: (B, C, H, W).
        severities: B severities, one per image.
        degrade: ``(part, s) -> (degraded part, params)``, params (b,) tensors per name; every
            call must return the same names.
    Returns:
        (B, C, H, W) degraded images and their (B,) parameters.
    Raises:
        ValueError: ``severities`` does not have one entry per image, or the calls return
            different parameter names.
    """
    if len(severities) != images.shape[0]:
        raise ValueError(f"severities: one per image needed ({images.shape[0]}); "
                         f"got {len(severities)}")
    drawn = torch.tensor(list(severities))
    out, params = torch.empty_like(images), {}
    for severity in sorted(set(severities)):
        index = torch.nonzero(drawn == severity).squeeze(1)
        part, found = degrade(images.index_select(0, index), severity)
        if params and set(found) != set(params):
            raise ValueError(f"degrade returned parameters {sorted(found)} at severity "
                             f"{severity}, {sorted(params)} before")
        out[index] = part.to(out.dtype)
        for name, column in found.items():
            if name not in params:
                params[name] = torch.empty(images.shape[0], dtype=column.dtype)
            params[name][index] = column
    return out, params


def degrade_with_params(degrade: DegradeFn, images: Tensor,
                        generator: torch.Generator) -> tuple[Tensor, Params]:
    """Call ``degrade`` and return ``(degraded, params)`` whichever form it returns
    (``{}`` for a function that returns the images only)."""
    out = degrade(images, generator)
    if isinstance(out, tuple):
        degraded, params = out
        return degraded, dict(params)
    return out, {}


def random_crops(clean: Tensor, degraded: Tensor, size: int,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The same random ``size x size`` window of each clean/degraded pair.

    Args:
        clean: (B, C, H, W).
        degraded: (B, C, H, W), aligned with ``clean``.
        size: crop side, at most min(H, W).
        generator: draws the (B,) offsets.
    Returns:
        Two (B, C, size, size) tensors.
    Raises:
        ValueError: ``size`` larger than the images.
    """
    b, _, h, w = clean.shape
    if size > min(h, w):
        raise ValueError(f"crop_size {size} is larger than the images ({h}x{w}); "
                         "lower crop_size or use None for full images")
    top = torch.randint(0, h - size + 1, (b,), generator=generator).tolist()
    left = torch.randint(0, w - size + 1, (b,), generator=generator).tolist()
    windows = list(enumerate(zip(top, left)))
    cc = torch.stack([clean[i, :, t:t + size, x:x + size] for i, (t, x) in windows])
    dd = torch.stack([degraded[i, :, t:t + size, x:x + size] for i, (t, x) in windows])
    return cc, dd


Batch = tuple[Tensor, Tensor, Params, dict[str, Tensor], Tensor]
"""A training step's ``(degraded, clean, params, clean features, index)``: images
(B, C, H, W) in [0, 1], the degradation's drawn (B,) parameters, ``{layer: (B, ...)}`` rows of
:func:`clean_features` (empty: the step computes them) and the images' (B,) int64 positions in
the training set (to look up their classes and groups)."""


class _EpochBatches:
    """The batches of one epoch (:data:`Batch`), made lazily; ``len`` is the number of steps.
    ``features``: :func:`clean_features` of ``images``, looked up by image (not with crops);
    with ``config.hflip`` (2N, ...) rows, row ``N + i`` those of image ``i`` mirrored."""

    def __init__(self, images: Tensor, config: RestorerTrainConfig, epoch: int,
                 degrade: DegradeFn, device: torch.device,
                 features: Mapping[str, Tensor] | None = None) -> None:
        self.images, self.config, self.epoch = images, config, epoch
        self.degrade, self.device = degrade, device
        self.features = features if config.crop_size is None and features else {}
        n = images.shape[0]
        self.count = min(n, config.samples_per_epoch or n)
        order_gen = make_generator(stream_seed(config.seed, EPOCH_STREAM, epoch))
        self.order = torch.randperm(n, generator=order_gen)[: self.count]

    def __len__(self) -> int:
        return -(-self.count // self.config.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        bs = self.config.batch_size
        for b in range(len(self)):
            generator = make_generator(stream_seed(self.config.seed, BATCH_STREAM, self.epoch, b))
            picked = self.order[b * bs:(b + 1) * bs]
            clean, rows = self.images[picked], picked
            if self.config.hflip:
                flip_gen = make_generator(stream_seed(self.config.seed, FLIP_STREAM, self.epoch, b))
                mirror = torch.rand(len(picked), generator=flip_gen) < 0.5
                clean = torch.where(mirror[:, None, None, None], clean.flip(-1), clean)
                rows = picked + mirror.long() * self.images.shape[0]
            degraded, params = degrade_with_params(self.degrade, clean, generator)
            if self.config.crop_size is not None:  # per-image parameters survive a crop
                clean, degraded = random_crops(clean, degraded, self.config.crop_size, generator)
            yield (degraded.to(self.device), clean.to(self.device),
                   {name: value.to(self.device) for name, value in params.items()},
                   {name: value[rows].to(self.device) for name, value in self.features.items()},
                   picked.to(self.device))


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


class _RetrievalCheck:
    """Validation through the retriever: embedding cosine to the clean image and top-1 (L2)
    of the restored validation images against the guide's gallery, less each image's own
    group where the guide knows the groups."""

    def __init__(self, guide: RetrievalGuide, val_clean: Tensor, pick: Tensor,
                 device: torch.device) -> None:
        self.guide, self.device = guide, device
        self.labels = guide.val_labels[pick]
        self.excluded = None
        if guide.gallery_groups is not None and guide.val_groups is not None:
            gallery_groups = check_labels(guide.gallery_groups, guide.gallery_labels.shape[0],
                                          "guide.gallery_groups")
            val_groups = check_labels(guide.val_groups, guide.val_labels.shape[0],
                                      "guide.val_groups")
            self.excluded = val_groups[pick][:, None] == gallery_groups[None, :]
        self.clean = self._embed(val_clean)

    def _embed(self, images: Tensor) -> Tensor:
        return map_batches(self.guide.retriever.embed, images, batch_size=128, device=self.device)

    def _top1(self, embeddings: Tensor) -> float:
        distances = torch.cdist(embeddings, self.guide.gallery_embeddings)
        if self.excluded is not None:
            distances = distances.masked_fill(self.excluded, float("inf"))
        nearest = distances.argmin(dim=1)
        return float((self.guide.gallery_labels[nearest] == self.labels).float().mean())

    def __call__(self, restored: Tensor, degraded: Tensor) -> dict[str, float]:
        embedded, degraded_embedded = self._embed(restored), self._embed(degraded)
        return {
            "val_embedding_cosine": float(F.cosine_similarity(embedded, self.clean).mean()),
            "val_top1": self._top1(embedded),
            "val_top1_degraded": self._top1(degraded_embedded),
            "val_top1_clean": self._top1(self.clean),
        }


def _load_images(config: RestorerTrainConfig) -> tuple[Tensor, Tensor]:
    bundle = rdata.load(config.dataset, image_size=config.image_size, seed=config.seed)
    return bundle.gallery.images, bundle.queries.images


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
            gallery split of ``config.dataset``.
        val_images: (M, C, H, W) clean validation images; None uses the query split.
        degrade: :data:`DegradeFn`; None uses ``degradations.apply(config.degrade,
            config.severity)``.
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
    if train_images is None or val_images is None:
        gallery, queries = _load_images(config)
        train_images = gallery if train_images is None else train_images
        val_images = queries if val_images is None else val_images
    check_images(train_images, "train_images")
    check_images(val_images, "val_images")
    degrade = degrade or default_degrade(config.degrade, config.severity)
    if config.through_retriever and guide is None:
        raise ConfigError(f"{config.model}: a feature, task or neighbour term (feature_weight "
                          f"{config.feature_weight}, class_weight {config.class_weight}, "
                          f"neighbour_weight {config.neighbour_weight}) needs the experiment's "
                          "retriever (a RetrievalGuide)")
    train_labels = train_groups = None
    if guide is not None and config.needs_labels:
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
        train_labels, train_groups = train_labels.to(device), train_groups.to(device)
    if guide is not None:
        unknown = sorted(set(config.feature_layers) - set(guide.retriever.feature_layers()))
        if unknown:
            raise ConfigError(f"unknown feature layer(s) {', '.join(unknown)}; the retriever has "
                              f"{', '.join(guide.retriever.feature_layers())}")
        if guide.val_labels.shape[0] != val_images.shape[0]:
            raise ValueError(f"guide.val_labels has {guide.val_labels.shape[0]} labels for "
                             f"{val_images.shape[0]} validation images")

    # fixed validation subset, degraded once
    val_gen = make_generator(stream_seed(config.seed, VALIDATION_STREAM))
    pick = torch.randperm(val_images.shape[0], generator=val_gen)[: config.val_images]
    val_clean = val_images[pick]
    val_degraded, val_params = degrade_with_params(degrade, val_clean, val_gen)
    base_psnr = float(psnr(val_degraded, val_clean).mean())
    base_ssim = float(ssim(val_degraded, val_clean).mean())
    retrieval_check = _RetrievalCheck(guide, val_clean, pick, device) if guide else None
    log.info("validation: %d images, degraded PSNR %.2f dB, SSIM %.4f", len(pick), base_psnr,
             base_ssim)

    options = {"channels": int(train_images.shape[1]), **config.model_options}
    model = restoration.build(config.model, **options)
    init_weights(model, make_generator(stream_seed(config.seed, INIT_STREAM))).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = step_decay(optimizer, step_epochs=config.lr_step)
    # the retriever decides what is learned only through the feature and task terms
    steering = guide.key if guide is not None and config.through_retriever else None
    resume_key = fingerprint(config.fingerprint(), steering)

    tag = f"train/{config.model}"
    main = is_main()  # only rank 0 writes files; the others train their slices
    logger = RunLogger(out_dir / "logs", tensorboard=tensorboard) if main else None
    if main:
        atomic_write_json(out_dir / "config.json", {**asdict(config), "fingerprint": resume_key,
                                                     "model_options_resolved": options,
                                                     "world_size": world_size(),
                                                     "threads": torch.get_num_threads()})
    net = data_parallel(_Unclamped(model), device)

    pixel = F.mse_loss if config.pixel_loss == "mse" else F.l1_loss

    # the retriever's activations a step needs: the feature term's, the embedding for the
    # task and neighbour terms
    through = tuple(dict.fromkeys((*(config.feature_layers if config.feature_weight > 0 else ()),
                                   *(("embedding",) if config.needs_labels else ()))))

    frozen = _Frozen(guide.retriever) if guide is not None else None
    features = None
    if guide is not None and config.feature_weight > 0 and config.crop_size is None:
        # with hflip, rows N..2N-1 are the mirrored images (one call: one size check for all)
        cached = torch.cat([train_images, train_images.flip(-1)]) if config.hflip else train_images
        features = clean_features(guide.retriever, cached, config.feature_layers,
                                  batch_size=config.batch_size, device=device)
    neighbours = scale = None
    if guide is not None and config.neighbour_weight > 0:  # the clean training embeddings
        neighbours = (features["embedding"][:len(train_images)]  # not hflip's mirrored rows
                      if features and "embedding" in features else
                      clean_features(guide.retriever, train_images, ("embedding",),
                                     batch_size=config.batch_size, device=device)["embedding"])
        neighbours = neighbours.to(device)
        scale = config.neighbour_temperature * float(mean_pair_distance(neighbours).clamp_min(
            1e-12))

    def step(batch: Batch) -> tuple[Tensor, dict[str, float]]:
        degraded, clean, params, targets, index = batch
        restored = net(degraded, params)
        loss = pixel(restored, clean)
        if not config.through_retriever:
            return loss, {}
        assert guide is not None
        outputs = guide.retriever.features(restored, through)
        total, logged = loss, {"pixel_loss": float(loss.detach())}
        if config.feature_weight > 0:
            features = feature_loss(guide.retriever, restored, clean, config.feature_layers,
                                    targets, outputs=outputs)
            total = total + config.feature_weight * features
            logged["feature_loss"] = float(features.detach())
        if config.class_weight > 0:
            assert train_labels is not None
            task = class_loss(guide.retriever, outputs["embedding"], train_labels[index])
            total = total + config.class_weight * task
            logged["class_loss"] = float(task.detach())
        if config.neighbour_weight > 0:
            assert train_labels is not None and train_groups is not None
            assert neighbours is not None and scale is not None
            excluded = train_groups[index][:, None] == train_groups[None, :]
            near = neighbour_loss(outputs["embedding"], train_labels[index], neighbours,
                                  train_labels, excluded, scale)
            total = total + config.neighbour_weight * near
            logged["neighbour_loss"] = float(near.detach())
        return total, logged

    def evaluate(epoch: int) -> dict[str, float]:  # rank 0 only
        assert logger is not None
        restored = restoration.restore_batches(model, val_degraded, val_params,
                                               batch_size=config.batch_size, device=device)
        metrics = {"val_psnr": float(psnr(restored, val_clean).mean()),
                   "val_ssim": float(ssim(restored, val_clean).mean()),
                   "val_psnr_degraded": base_psnr, "val_ssim_degraded": base_ssim}
        metrics["val_psnr_gain"] = metrics["val_psnr"] - base_psnr
        if retrieval_check is not None:
            metrics.update(retrieval_check(restored, val_degraded))
        # lazy: heavy; loaded only to log image grids
        from torchvision.utils import make_grid

        k = min(8, val_clean.shape[0])
        grid = make_grid(torch.cat([val_clean[:k], val_degraded[:k], restored[:k]]), nrow=k,
                         padding=2)
        logger.image_grid(f"{tag}/clean_degraded_restored", grid, epoch)
        return metrics

    extra = {"restorer": restoration.checkpoint_meta(model), "config": asdict(config),
             "degradation": config.degrade, "severity": config.severity}
    try:
        result: TrainResult = train_loop(
            model=model, optimizer=optimizer, scheduler=scheduler,
            make_batches=lambda epoch: _EpochBatches(train_images, config, epoch, degrade, device,
                                                     features),
            step=step, epochs=config.epochs, checkpoint=out_dir / "last.pt",
            fingerprint=resume_key, evaluate=evaluate, evaluate_every=config.val_every,
            logger=logger, tag=tag, progress=progress,
            extra_state=extra, average_decay=config.ema_decay,
        )
    finally:
        if logger is not None:
            logger.close()
        if frozen is not None:
            frozen.release()
    final = {f"final_{k}": v for k, v in result.final.items()}
    summary = {"model": config.model, "degradation": config.degrade,
               "epochs": len(result.history), "degraded_psnr": base_psnr,
               "degraded_ssim": base_ssim, "world_size": world_size(), **final}
    if main:
        atomic_write_json(out_dir / "summary.json", summary)
    return RestorerTrainResult(model=model.eval(), history=result.history,
                               resumed_from=result.resumed_from, degraded_psnr=base_psnr,
                               degraded_ssim=base_ssim, checkpoint=out_dir / "last.pt")


__all__ = ["FEATURE_CACHE_BYTES", "Batch", "DegradeFn", "Params", "RestorerTrainConfig",
           "RestorerTrainResult", "RetrievalGuide", "class_loss", "clean_features",
           "default_degrade", "degrade_with_params", "feature_loss", "mean_pair_distance",
           "neighbour_loss", "random_crops",
           "train_restorer"]
