"""What a restorer is validated on and how: the held-out tenth of the gallery it never trains
on (:func:`gallery_holdout`, :func:`split_gallery`; the experiment and
``python -m restoration.train`` both take their validation images from it, never from the
queries), the fixed validation subset degraded once (:class:`ValidationSet`, seed stream
:data:`VALIDATION_STREAM`), the frozen retriever it is steered and judged by
(:class:`RetrievalGuide`, :class:`RetrievalCheck`) and the per-epoch validation itself
(:class:`RestorerValidation`: PSNR, SSIM, the retrieval figures and an image grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

import restoration
from robustret.core.batching import map_batches
from robustret.core.checks import check_labels
from robustret.core.quality import psnr, ssim
from robustret.core.rng import make_generator, stream_seed
from robustret.core.tracking import RunLogger
from robustret.train.restorer_batches import DegradeFn, Params, degrade_with_params

VALIDATION_STREAM = "restorer/validation"
"""Seed stream of the validation subset and its degradation."""
HOLDOUT_STREAM = "restorer/holdout"
"""Seed stream of which gallery images are held out of restorer training."""
HOLDOUT_FRACTION = 0.1
"""Share of the gallery held out from restorer training, for its validation."""


def gallery_holdout(size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Split gallery indices into (train, held out): a seeded tenth (at least one) is held
    out for restorer validation, so validation never touches the queries.

    Args:
        size: number of gallery images.
        seed: the seed of the draw (stream :data:`HOLDOUT_STREAM`).
    Returns:
        Two sorted int64 index tensors, disjoint, together ``0 .. size - 1``; the held-out
        one is empty when ``size`` < 2.
    """
    order = torch.randperm(size, generator=make_generator(stream_seed(seed, HOLDOUT_STREAM)))
    held = max(1, int(size * HOLDOUT_FRACTION)) if size > 1 else 0
    return order[held:].sort().values, order[:held].sort().values


def split_gallery(images: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """The gallery's (training, validation) images by :func:`gallery_holdout`.

    Args:
        images: (N, C, H, W) gallery images.
        seed: the seed of the holdout draw.
    Returns:
        (N - M, C, H, W) training images and (M, C, H, W) held-out validation images, each in
        gallery order.
    """
    train, held = gallery_holdout(images.shape[0], seed)
    return images[train], images[held]


@dataclass(frozen=True)
class ValidationSet:
    """The fixed validation subset, degraded once.

    Attributes:
        pick: (M,) int64 positions of the subset in the validation images.
        clean: (M, C, H, W) float in [0, 1].
        degraded: (M, C, H, W) float in [0, 1].
        params: the degradation's drawn (M,) parameters.
        degraded_psnr: mean PSNR of ``degraded`` against ``clean`` (dB).
        degraded_ssim: mean SSIM of ``degraded`` against ``clean``.
    """

    pick: Tensor
    clean: Tensor
    degraded: Tensor
    params: Params
    degraded_psnr: float
    degraded_ssim: float

    @classmethod
    def draw(cls, images: Tensor, degrade: DegradeFn, seed: int, count: int) -> ValidationSet:
        """``count`` of ``images`` (all when fewer) in an order drawn from
        :data:`VALIDATION_STREAM` of ``seed``, degraded with the same generator.

        Args:
            images: (N, C, H, W) float in [0, 1], the clean validation images.
            degrade: :data:`~robustret.train.restorer_batches.DegradeFn`.
            seed: the run's seed.
            count: size of the subset, >= 1.
        """
        generator = make_generator(stream_seed(seed, VALIDATION_STREAM))
        pick = torch.randperm(images.shape[0], generator=generator)[:count]
        clean = images[pick]
        degraded, params = degrade_with_params(degrade, clean, generator)
        return cls(pick, clean, degraded, params, float(psnr(degraded, clean).mean()),
                   float(ssim(degraded, clean).mean()))


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


class RetrievalCheck:
    """Validation through the retriever: embedding cosine to the clean image and top-1 (L2)
    of the restored validation images against the guide's gallery, less each image's own
    group where the guide knows the groups.

    Args:
        guide: the frozen retriever and the gallery it searches.
        val_clean: (M, C, H, W) float in [0, 1], the clean validation subset.
        pick: (M,) int64 positions of the subset in the validation images (to look up
            ``guide.val_labels`` and ``guide.val_groups``).
        device: where the retriever's forward passes run.
    Calling it with restored and degraded (M, C, H, W) images returns
    ``val_embedding_cosine`` in [-1, 1] and the top-1 hit rates in [0, 1] of the restored,
    degraded and clean images.
    """

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


class RestorerValidation:
    """One validation of the restorer (``evaluate`` of the epoch loop; rank 0 only): PSNR and
    SSIM of the restored :class:`ValidationSet` (and the degraded input's, and the gain), the
    :class:`RetrievalCheck` figures where there is a guide, and an image grid clean | degraded
    | restored of the first 8 images in the logger. Every rank builds one (the loop calls it
    on rank 0 only, where ``logger`` is given)."""

    def __init__(self, model: restoration.Restorer, validation: ValidationSet,
                 retrieval_check: RetrievalCheck | None, logger: RunLogger | None, tag: str,
                 *, batch_size: int, device: torch.device) -> None:
        self.model, self.validation, self.retrieval_check = model, validation, retrieval_check
        self.logger, self.tag = logger, tag
        self.batch_size, self.device = batch_size, device

    def __call__(self, epoch: int) -> dict[str, float]:
        assert self.logger is not None  # rank 0's; the other ranks never validate
        val = self.validation
        restored = restoration.restore_batches(self.model, val.degraded, val.params,
                                               batch_size=self.batch_size, device=self.device)
        metrics = {"val_psnr": float(psnr(restored, val.clean).mean()),
                   "val_ssim": float(ssim(restored, val.clean).mean()),
                   "val_psnr_degraded": val.degraded_psnr,
                   "val_ssim_degraded": val.degraded_ssim}
        metrics["val_psnr_gain"] = metrics["val_psnr"] - val.degraded_psnr
        if self.retrieval_check is not None:
            metrics.update(self.retrieval_check(restored, val.degraded))
        # lazy: heavy; loaded only to log image grids
        from torchvision.utils import make_grid

        k = min(8, val.clean.shape[0])
        grid = make_grid(torch.cat([val.clean[:k], val.degraded[:k], restored[:k]]), nrow=k,
                         padding=2)
        self.logger.image_grid(f"{self.tag}/clean_degraded_restored", grid, epoch)
        return metrics


__all__ = ["HOLDOUT_FRACTION", "HOLDOUT_STREAM", "VALIDATION_STREAM", "RestorerValidation",
           "RetrievalCheck", "RetrievalGuide", "ValidationSet", "gallery_holdout",
           "split_gallery"]
