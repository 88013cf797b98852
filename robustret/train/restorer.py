"""Train a restorer on (degraded, clean) pairs made on the fly from clean gallery images.

Everything random is seeded from named streams of the config's one seed
(:func:`robustret.rng.stream_seed`): epoch ``e`` shuffles with stream ``restorer/epoch``
(index ``e``), batch ``b`` of it is degraded with a generator from ``restorer/batch``
(``e, b``) (then, with ``crop_size``, cropped at offsets drawn from the same generator, *after*
degrading the full image so that the degradation sees the whole picture), the validation
subset is a fixed draw from ``restorer/validation`` degraded once, and the weights are
initialised from ``restorer/init``. The epoch loop, checkpointing (``DIR/last.pt`` every epoch)
and resume are :func:`robustret.train.loop.train_loop`'s: re-running the same command continues
after the last finished epoch, and a longer ``epochs`` extends the run.

The learning-rate schedule halves the rate every ``lr_step`` epochs
(:func:`robustret.train.loop.step_decay`), fixed by the config rather than derived from
``epochs``, so "2 epochs" equals "1 epoch, resume, 1 more" exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import restoration
from restoration.base import init_weights
from robustret.checks import ConfigError, check_images
from robustret.device import resolve_device
from robustret.io import atomic_write_json
from robustret.keys import fingerprint, source_hash
from robustret.quality import psnr, ssim
from robustret.rng import make_generator, stream_seed
from robustret.tracking import RunLogger
from robustret.train.loop import TrainResult, step_decay, train_loop

log = logging.getLogger(__name__)

DegradeFn = Callable[[Tensor, torch.Generator], Tensor]
"""``(clean (B, C, H, W) in [0, 1], generator) -> degraded (B, C, H, W) in [0, 1]``."""

EPOCH_STREAM = "restorer/epoch"
"""Seed stream of each epoch's image order (index: the epoch)."""
BATCH_STREAM = "restorer/batch"
"""Seed stream of each batch's degradation and crops (index: epoch, batch)."""
VALIDATION_STREAM = "restorer/validation"
"""Seed stream of the validation subset and its degradation."""
INIT_STREAM = "restorer/init"
"""Seed stream of the weight initialisation."""
TRAINING_CODE = ("restoration", "robustret.train")
"""Packages whose source is part of the resume key: editing them starts training afresh."""

_NOT_LEARNED = ("epochs", "device")
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
        seed: the one seed everything derives from.
        device: ``auto``, ``cpu``, ``cuda[:n]``.
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
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        import degradations

        trainable = restoration.networks()
        if self.model not in trainable:
            raise ConfigError(f"unknown restorer network {self.model!r}: only trainable "
                              f"restorers can be trained; choose one of {', '.join(trainable)}")
        if self.degrade not in degradations.DEGRADATIONS:
            raise ConfigError(f"unknown degradation {self.degrade!r}; available: "
                              f"{', '.join(degradations.available())}")
        for name in ("epochs", "batch_size", "lr_step", "val_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ConfigError(
                    f"{name} must be a positive int (epochs may be 0), got {value!r}")
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

    def fingerprint(self) -> str:
        """Resume key: every setting that changes what is learned (not ``epochs`` nor
        ``device``) and the source of the training code (:data:`TRAINING_CODE`)."""
        learned = {k: v for k, v in asdict(self).items() if k not in _NOT_LEARNED}
        return fingerprint("restorer", learned, source_hash(*TRAINING_CODE))


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
    """``degradations.apply`` with ``name`` and ``severity`` as a :data:`DegradeFn`."""
    import degradations

    def degrade(images: Tensor, generator: torch.Generator) -> Tensor:
        return degradations.apply(images, name, severity, generator=generator)

    return degrade


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


class _EpochBatches:
    """The (degraded, clean) batches of one epoch, made lazily; ``len`` is the number of steps."""

    def __init__(self, images: Tensor, config: RestorerTrainConfig, epoch: int,
                 degrade: DegradeFn, device: torch.device) -> None:
        self.images, self.config, self.epoch = images, config, epoch
        self.degrade, self.device = degrade, device
        n = images.shape[0]
        self.count = min(n, config.samples_per_epoch or n)
        order_gen = make_generator(stream_seed(config.seed, EPOCH_STREAM, epoch))
        self.order = torch.randperm(n, generator=order_gen)[: self.count]

    def __len__(self) -> int:
        return -(-self.count // self.config.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        bs = self.config.batch_size
        for b in range(len(self)):
            generator = make_generator(stream_seed(self.config.seed, BATCH_STREAM, self.epoch, b))
            clean = self.images[self.order[b * bs:(b + 1) * bs]]
            degraded = self.degrade(clean, generator)
            if self.config.crop_size is not None:
                clean, degraded = random_crops(clean, degraded, self.config.crop_size, generator)
            yield degraded.to(self.device), clean.to(self.device)


def _load_images(config: RestorerTrainConfig) -> tuple[Tensor, Tensor]:
    from robustret import data as rdata

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
) -> RestorerTrainResult:
    """Train (or resume training) a restorer; checkpoints go to ``out_dir/last.pt``.

    Args:
        config: what to train and how.
        out_dir: run folder: ``last.pt``, ``config.json``, ``summary.json``, ``logs/``
            (TensorBoard scalars ``train/<model>/...`` and image grids clean | degraded |
            restored, plus ``metrics.jsonl``).
        train_images: (N, C, H, W) float in [0, 1] clean training images; None loads the
            gallery split of ``config.dataset``.
        val_images: (M, C, H, W) clean validation images; None uses the query split.
        degrade: :data:`DegradeFn`; None uses ``degradations.apply(config.degrade,
            config.severity)``.
        progress: tqdm bar (None: only on a terminal).
        tensorboard: write TensorBoard event files (``metrics.jsonl`` is always written).
    Returns:
        A :class:`RestorerTrainResult`.
    Raises:
        ValueError: bad images, or a checkpoint in ``out_dir`` from another configuration.
    """
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    if train_images is None or val_images is None:
        gallery, queries = _load_images(config)
        train_images = gallery if train_images is None else train_images
        val_images = queries if val_images is None else val_images
    check_images(train_images, "train_images")
    check_images(val_images, "val_images")
    degrade = degrade or default_degrade(config.degrade, config.severity)

    # fixed validation subset, degraded once
    val_gen = make_generator(stream_seed(config.seed, VALIDATION_STREAM))
    pick = torch.randperm(val_images.shape[0], generator=val_gen)[: config.val_images]
    val_clean = val_images[pick]
    val_degraded = degrade(val_clean, val_gen)
    base_psnr = float(psnr(val_degraded, val_clean).mean())
    base_ssim = float(ssim(val_degraded, val_clean).mean())
    log.info("validation: %d images, degraded PSNR %.2f dB, SSIM %.4f", len(pick), base_psnr,
             base_ssim)

    options = {"channels": int(train_images.shape[1]), **config.model_options}
    model = restoration.build(config.model, **options)
    init_weights(model, make_generator(stream_seed(config.seed, INIT_STREAM))).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = step_decay(optimizer, step_epochs=config.lr_step)
    resume_key = config.fingerprint()

    tag = f"train/{config.model}"
    logger = RunLogger(out_dir / "logs", tensorboard=tensorboard)
    atomic_write_json(out_dir / "config.json", {**asdict(config), "fingerprint": resume_key,
                                                 "model_options_resolved": options})

    def step(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        degraded, clean = batch
        return F.mse_loss(model.restore(degraded, clamp=False), clean), {}

    def evaluate(epoch: int) -> dict[str, float]:
        restored = restoration.restore_batches(model, val_degraded, batch_size=config.batch_size,
                                               device=device)
        metrics = {"val_psnr": float(psnr(restored, val_clean).mean()),
                   "val_ssim": float(ssim(restored, val_clean).mean()),
                   "val_psnr_degraded": base_psnr, "val_ssim_degraded": base_ssim}
        metrics["val_psnr_gain"] = metrics["val_psnr"] - base_psnr
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
            make_batches=lambda epoch: _EpochBatches(train_images, config, epoch, degrade, device),
            step=step, epochs=config.epochs, checkpoint=out_dir / "last.pt",
            fingerprint=resume_key, evaluate=evaluate, logger=logger, tag=tag, progress=progress,
            extra_state=extra,
        )
    finally:
        logger.close()
    final = {f"final_{k}": v for k, v in result.final.items()}
    summary = {"model": config.model, "degradation": config.degrade,
               "epochs": len(result.history), "degraded_psnr": base_psnr,
               "degraded_ssim": base_ssim, **final}
    atomic_write_json(out_dir / "summary.json", summary)
    return RestorerTrainResult(model=model.eval(), history=result.history,
                               resumed_from=result.resumed_from, degraded_psnr=base_psnr,
                               degraded_ssim=base_ssim, checkpoint=out_dir / "last.pt")


__all__ = ["RestorerTrainConfig", "RestorerTrainResult", "default_degrade", "random_crops",
           "train_restorer"]
