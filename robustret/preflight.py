"""Checks of a resolved configuration against the loaded data, before any training.

:meth:`robustret.config.ExperimentConfig.validate` checks what the configuration alone can tell
(names, paths, ranges). What depends on the data can only be checked once it is loaded, and
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustret.checks import ConfigError

if TYPE_CHECKING:
    from robustret.config import ExperimentConfig
    from robustret.data import RetrievalData

__all__ = ["check_against_data", "ssim_window"]


def ssim_window() -> int:
    """The side of SSIM's Gaussian window: the smallest image side SSIM can score."""
    from robustret.quality import gaussian_window

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
    side = min(height, width)
    _check_degradations(config, data, (height, width))
    _check_restorers(config, side, f"{height}x{width}")


def _planned(config: ExperimentConfig) -> tuple[set[tuple[str, int]], set[str], set[str]]:
    """The (degradation, severity) pairs to run (queries and network training), the
    restorers of the plan and the networks among them."""
    from robustret.pipeline import plan_conditions
    from robustret.policy import training_degradation

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
    import degradations
    from robustret.rng import make_generator

    pairs, _, _ = _planned(config)
    probe = data.queries.images[:1]
    for name, severity in sorted(pairs):
        try:
            degradations.apply(probe, name, severity, generator=make_generator(0))
        except ValueError as exc:
            raise ConfigError(f"degradation {name} at severity {severity} cannot run on the "
                              f"{size[0]}x{size[1]} images of {config.dataset!r}: {exc}. "
                              "Use a larger --image-size or a lower --severity") from exc


def _check_restorers(config: ExperimentConfig, side: int, size: str) -> None:
    """Image side against each planned restorer's ``min_size`` and, for the networks trained,
    against SSIM's window and their ``crop_size``."""
    import restoration

    _, restorers, networks = _planned(config)
    sections = config.restorers or {}
    for name in sorted(restorers):
        # a trained restorer's section names its network (a recipe may rename it)
        model = sections[name].model if name in sections else name
        if model not in restoration.RESTORERS:
            continue  # not a restorer of the registry: validate() reports unknown names
        need = int(getattr(restoration.RESTORERS.get(model), "min_size", 1))
        if side < need:
            raise ConfigError(f"restorer {name} needs images of at least {need} px per side; "
                              f"the data's are {size}. Use a larger --image-size or another "
                              "--restore")
    window = ssim_window()
    for name in sorted(networks):
        if side < window:
            raise ConfigError(f"training restorer {name} validates with SSIM, which needs "
                              f"images of at least {window} px per side; the data's are "
                              f"{size}. Use --image-size {window} or more, or --restore "
                              "classical")
        crop = config.restorers[name].crop_size
        if crop is not None and crop > side:
            raise ConfigError(f"restorers.{name}.crop_size = {crop} is larger than the "
                              f"{size} images; set crop_size to at most {side} (or leave "
                              f"it out for full images) in [restorers.{name}], or use "
                              f"--image-size {crop} or more")
