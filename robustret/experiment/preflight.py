"""Checks of a resolved configuration against the loaded data, before any training.

:meth:`robustret.experiment.config.ExperimentConfig.validate` checks what the configuration alone
can tell (names, paths, ranges). What depends on the data can only be checked once it is loaded, and
:func:`check_against_data` does that right after loading, so a run that cannot finish fails in
seconds with one line instead of after the retriever's training:

- both splits hold images, and the largest top-k fits in the gallery;
- every planned (degradation, severity) runs on an image of the data's size (``lowres`` at
  severity 5 needs 8 px, ``2**3``), including the degradations the networks train on;
- the image side is at least the ``min_size`` every planned restorer declares
  (:attr:`restoration.base.Restorer.min_size`);
- for every network the plan trains: the side is at least the SSIM window (11 px; restorer
  training validates with SSIM) and at least its ``crop_size``.

A ``crop_size`` larger than the images is an error, not silently clamped: the crop size is part
of the restorer's training fingerprint, so clamping would train (and cache) a model other than
the one configured. Set ``crop_size`` in ``[restorers.NAME]`` to at most the image side, or to
nothing (full images), as ``experiments/configs/smoke.toml`` does for its 32 px images.

The command-line tools share the smaller checks here: :func:`check_writable_folder` (an
output folder that is a file, lies inside a file or is read-only), :func:`check_training_size`
(one network's training against an image size) and :func:`int_at_least` (an ``argparse``
type for counts and seeds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import degradations
import restoration
from robustret.core.checks import ConfigError
from robustret.core.quality import gaussian_window
from robustret.core.rng import make_generator
from robustret.experiment.plan import plan_conditions
from robustret.experiment.policy import training_degradation

if TYPE_CHECKING:
    from robustret.data import RetrievalData
    from robustret.experiment.config import ExperimentConfig

__all__ = ["check_against_data", "check_training_size",
           "ssim_window"]


def ssim_window() -> int:
    """The side of SSIM's Gaussian window: the smallest image side SSIM can score."""
    return int(gaussian_window().numel())


def check_against_data(config: ExperimentConfig, data: RetrievalData) -> None:
    """Raise :class:`ConfigError` when ``config`` cannot run on ``data``; else return None.

    Args:
        config: a resolved configuration (``config.resolved()``; its ``restorers`` sections
            say how each network trains).
        data: the loaded gallery and query splits.
    Raises:
        ConfigError: an empty split, a top-k larger than the gallery, or images smaller than
            a planned degradation, restorer, network crop or SSIM needs. The message names
            the setting to change.
    """
    for split, images in (("gallery", data.gallery), ("query", data.queries)):
        if len(images) == 0:
            raise ConfigError(f"the {split} split of {config.dataset!r} is empty; use a data "
                              "set with images in both splits (or a larger per_class)")
    if max(config.ks) > len(data.gallery):
        raise ConfigError(f"top-k {max(config.ks)} is larger than the gallery "
                          f"({len(data.gallery)} images); choose smaller --topk values")
    height, width = (int(n) for n in data.queries.images.shape[-2:])
    _check_degradations(config, data, (height, width))
    _check_restorers(config, height, width)


def _planned(config: ExperimentConfig) -> tuple[set[tuple[str, int]], set[str], set[str]]:
    """The (degradation, severity) pairs to run (queries and network training), the
    restorers of the plan and the networks among them."""
    trained = set(config.restorers or {})
    pairs: set[tuple[str, int]] = set()
    restorers: set[str] = set()
    for condition in plan_conditions(config):
        if condition.degradation is None or condition.severity is None:
            continue
        pairs.add((condition.degradation, condition.severity))
        if condition.restorer is not None:
            restorers.add(condition.restorer)
            if condition.restorer in trained:
                pairs.add((training_degradation(condition.degradation), condition.severity))
    return pairs, restorers, restorers & trained


def _check_degradations(config: ExperimentConfig, data: RetrievalData,
                        size: tuple[int, int]) -> None:
    """Degrade one query image with every planned (degradation, severity): the degradations
    check their parameters against the image size (e.g. ``lowres`` levels)."""
    pairs, _, _ = _planned(config)
    probe = data.queries.images[:1]
    for name, severity in sorted(pairs):
        try:
            degradations.apply(probe, name, severity, generator=make_generator(0))
        except ValueError as exc:
            raise ConfigError(f"degradation {name} at severity {severity} cannot run on the "
                              f"{size[0]}x{size[1]} images of {config.dataset!r}: {exc}. "
                              "Use a larger --image-size or a lower --severity") from exc


def _check_restorers(config: ExperimentConfig, height: int, width: int) -> None:
    """Image side against each planned restorer's ``min_size`` and, for the networks trained,
    against SSIM's window and their ``crop_size``."""
    _, restorers, networks = _planned(config)
    sections, side = config.restorers or {}, min(height, width)
    for name in sorted(restorers):
        # a trained restorer's section names its network (a recipe may rename it)
        model = sections[name].model if name in sections else name
        if model not in restoration.RESTORERS:
            continue  # not a restorer of the registry: validate() reports unknown names
        need = int(getattr(restoration.RESTORERS.get(model), "min_size", 1))
        if side < need:
            raise ConfigError(f"restorer {name} needs images of at least {need} px per side; "
                              f"the data's are {height}x{width}. Use a larger --image-size "
                              "or another "
                              "--restore")
    for name in sorted(networks):
        check_training_size(name, sections[name].crop_size, height, width,
                            where=f"[restorers.{name}]")


def check_training_size(name: str, crop_size: int | None, height: int, width: int, *,
                        where: str = "the training settings") -> None:
    """Raise :class:`ConfigError` when network ``name`` cannot be trained on H x W images.

    Restorer training validates with SSIM (:func:`ssim_window` px at least) and crops
    ``crop_size`` px windows (at most the image side).

    Args:
        name: the restorer (for the message).
        crop_size: its training crop, None for full images.
        height, width: the image size.
        where: where ``crop_size`` is set (for the message).
    """
    side, window = min(height, width), ssim_window()
    if side < window:
        raise ConfigError(f"training restorer {name} validates with SSIM, which needs images "
                          f"of at least {window} px per side; the data's are {height}x{width}. "
                          f"Use --image-size {window} or more")
    if crop_size is not None and crop_size > side:
        raise ConfigError(f"{name}'s crop_size {crop_size} is larger than the {height}x{width} "
                          f"images; set crop_size to at most {side} (or leave it out for full "
                          f"images) in {where}, or use --image-size {crop_size} or more")
