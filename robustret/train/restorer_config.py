"""What a restorer training run is: :class:`RestorerTrainConfig`, its checks, presets
(``paper``, ``quick``) and resume key, and :data:`TRAINING_CODE`, the modules whose source
that key hashes (the trainer split by job: config, losses, batches, validation, loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import degradations
import restoration
from robustret.core.checks import ConfigError
from robustret.core.keys import fingerprint, source_hash
from robustret.train.averaging import check_decay

TRAINING_CODE = ("restoration", "robustret.train.restorer", "robustret.train.restorer_config",
                 "robustret.train.restorer_losses", "robustret.train.restorer_batches",
                 "robustret.train.restorer_validation", "robustret.train.loop",
                 "robustret.train.averaging")
"""Modules whose source is part of the resume key: editing any of them starts training
afresh."""

_NOT_LEARNED = ("epochs", "device", "val_every")
"""Settings that do not change what is learned; left out of the resume fingerprint."""
PIXEL_LOSSES = ("mse", "l1")
"""The pixel terms :attr:`RestorerTrainConfig.pixel_loss` may name."""
PARAMS_SOURCES = ("drawn", "estimated")
"""Where a training pair's parameters come from (:attr:`RestorerTrainConfig.params_from`):
what the degradation drew, or what :func:`restoration.estimate.estimate_degradation` estimates
from the degraded image."""

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
        val_images: size of the fixed validation subset of the validation images (a held-out
            tenth of the gallery, :func:`robustret.train.restorer_validation.gallery_holdout`).
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
            ``s ** severity_bias``
            (:func:`robustret.train.restorer_batches.severity_weights`): 0 draws them
            uniformly, 2 draws severity 5 25 times as often as severity 1 (where most accuracy
            is lost).
        class_weight: weight of the task term, the cross-entropy of the frozen retriever's
            classification head on the restored images against their class labels
            (:func:`robustret.train.restorer_losses.class_loss`; 0: none). Needs the guide's
            ``train_labels``.
        neighbour_weight: weight of the neighbour term, a soft nearest-neighbour loss of the
            restored images' embeddings against the clean training images' embeddings, the
            image's own group (instance) left out
            (:func:`robustret.train.restorer_losses.neighbour_loss`; 0: none): the L2
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
            step mixes them (:mod:`robustret.train.restorer_batches`).
        extra_objects: objects per category beyond the data set's own that the experiment
            renders and adds to the training images
            (:func:`robustret.experiment.trained.trained_restorer`,
            built-in ``synthetic`` data only: other data sets train without them and a warning
            says so). They are never searched nor queried; 0: the gallery's images only. The
            trainer itself (:func:`robustret.train.restorer.train_restorer`) trains on the
            images it is given.
        params_from: what a parameter-reading restorer (a hybrid's front end and condition
            planes) is given with each training pair (:data:`PARAMS_SOURCES`): ``drawn``, the
            degradation's own parameters (an oracle at test time), or ``estimated``, the
            estimate from the degraded image (:func:`restoration.estimate.estimate_degradation`,
            its ``params()``), so that a restorer fed estimates at test time
            (``estimated_hybrid``'s experts) learns to tolerate the estimator's errors.
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
    params_from: str = "drawn"

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
                           ("severity_per_image", "bool"), ("extra_objects", "int"),
                           ("params_from", "str")):
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

        if self.params_from not in PARAMS_SOURCES:
            raise ConfigError(f"params_from must be one of {', '.join(PARAMS_SOURCES)}; "
                              f"got {self.params_from!r}")
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


__all__ = ["PARAMS_SOURCES", "PIXEL_LOSSES", "TRAINING_CODE", "RestorerTrainConfig"]
