"""The training pairs of restorer training, made on the fly: how a batch is degraded
(:data:`DegradeFn`, :func:`default_degrade`, the severity draws :func:`severity_weights`,
:func:`draw_one`, :func:`draw_many`, :func:`degrade_by_severity`), cropped
(:func:`random_crops`) and which images each step of an epoch sees (:class:`EpochBatches`).

Seed streams (:func:`robustret.core.rng.stream_seed` of the config's seed): epoch ``e``
shuffles with :data:`EPOCH_STREAM` (index ``e``), batch ``b`` of it is degraded (and cropped)
with a generator of :data:`BATCH_STREAM` (``e, b``) and mirrored (``hflip``) with one of
:data:`FLIP_STREAM` (``e, b``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

import degradations
from restoration.estimate import estimate_degradation
from robustret.core.rng import make_generator, stream_seed
from robustret.train.restorer_config import RestorerTrainConfig

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
FLIP_STREAM = "restorer/flip"
"""Seed stream of which images of a batch are mirrored with ``hflip`` (index: epoch, batch)."""


def default_degrade(name: str, severity: int) -> DegradeFn:
    """``degradations.apply`` with ``name`` and ``severity`` as a :data:`DegradeFn` (with the
    drawn parameters)."""
    def degrade(images: Tensor, generator: torch.Generator) -> tuple[Tensor, Params]:
        return degradations.apply(images, name, severity, generator=generator,
                                  return_params=True)

    return degrade


def with_estimated_params(degrade: DegradeFn) -> DegradeFn:
    """``degrade`` with its drawn parameters replaced by those estimated from each degraded
    image (:func:`restoration.estimate.estimate_degradation`, ``params()``: ``a``, ``b``,
    ``level``, ``kind``, ``severity``, each (B,)): the training pairs of a restorer that is
    fed estimates at test time. The degraded images are the same bytes as ``degrade``'s."""
    def degrade_estimated(images: Tensor, generator: torch.Generator) -> tuple[Tensor, Params]:
        degraded, _ = degrade_with_params(degrade, images, generator)
        return degraded, estimate_degradation(degraded).params()

    return degrade_estimated


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
:func:`~robustret.train.restorer_losses.clean_features` (empty: the step computes them) and
the images' (B,) int64 positions in the training set (to look up their classes and groups)."""


class EpochBatches:
    """The batches of one epoch (:data:`Batch`), made lazily; ``len`` is the number of steps.
    ``features``: :func:`~robustret.train.restorer_losses.clean_features` of ``images``,
    looked up by image (not with crops); with ``config.hflip`` (2N, ...) rows, row ``N + i``
    those of image ``i`` mirrored."""

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


__all__ = ["BATCH_STREAM", "EPOCH_STREAM", "FLIP_STREAM", "Batch", "DegradeFn", "EpochBatches",
           "Params", "default_degrade", "degrade_by_severity", "degrade_with_params",
           "draw_many", "draw_one", "random_crops", "severity_weights", "with_estimated_params"]
