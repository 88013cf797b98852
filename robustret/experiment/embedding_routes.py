"""``auto``'s route in embedding space: low-resolution queries (``--embedding-map``).

No image filter wins back low resolution (docs/results.md): the retriever prefers the blocks
to any interpolation of them. What does is to move a low-resolution query's *embedding* toward
where its clean image's would be. A low-resolution image is seen in :data:`VIEWS`: its blocks
as they are, and its block means enlarged by bicubic and by bilinear interpolation; each view
is embedded and the embeddings side by side are the map's input (each view alone is worse to
the retriever than the blocks, together they tell the map more than the blocks alone:
docs/results.md). For each Haar level ``L`` the estimator finds, :class:`ResolutionMaps` learns
an :class:`~robustret.models.embedding_map.EmbeddingMap` from the gallery's training part (the
images the retriever and every learned restorer train on): each image reduced to level ``L``
by the block model the estimator itself assumes (:func:`degradations.haar_lowres`), its views
embedded and regressed on the same image's clean embedding. :meth:`ResolutionMaps.routed`
wraps an embedding function: every image it is given is tested for block constancy
(:func:`restoration.estimate_resolution.estimate_haar_level`, the thresholds of ``auto``'s
estimator) and the embedding of each image found at level ``L`` is replaced by ``L``'s map of
its views; all other embeddings are returned as they are. What such a row knows: the
*estimated* level, nothing drawn.

A map is learned the first time its level is met (an embedding pass over the training part
per view) and kept for the run; :meth:`ResolutionMaps.key` names everything that decides the
maps, for the keys of the conditions they serve.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor

import degradations
from restoration.estimate import EstimationRule
from restoration.estimate_resolution import estimate_haar_level
from robustret.core.keys import fingerprint, source_hash
from robustret.evaluation.pipeline import Embed
from robustret.models.embedding_map import EmbeddingMap, fit_embedding_map

log = logging.getLogger(__name__)

EMBEDDING_MAPS = ("none", "resolution")
"""``--embedding-map`` choices: ``resolution`` maps the embeddings of ``auto``'s queries
estimated low-resolution (the default); ``none`` leaves every embedding as embedded."""

MAPS_TRAINED_ON = ("lowres",)
"""The degradation whose model the maps learn from (a row they serve has seen it)."""

VIEWS = ("nearest", "bicubic", "bilinear")
"""How a low-resolution image's block means are enlarged for the map's input, the image's own
blocks (``nearest``) first (:func:`degradations.haar_lowres`'s ``upsample``)."""

MAP_IMAGES = 4096
"""At most this many training images (evenly spaced over the gallery's training part) teach
the maps: a 1,536-to-512 ridge needs a few thousand pairs, and a large gallery then costs no
more time or memory than this."""

RIDGE = 1e-3
"""The maps' pull toward the identity (:func:`fit_embedding_map`); chosen on the built-in
data's seed 0 among 0, 1e-3, 3e-3, 1e-2, 0.1 and 1 (docs/results.md)."""



def training_subset(count: int, most: int = MAP_IMAGES) -> Tensor:
    """(min(count, most),) int64 indices into ``count`` training images: all of them, or
    ``most`` evenly spaced from the first to the last."""
    if count <= most:
        return torch.arange(count)
    return torch.linspace(0, count - 1, most, dtype=torch.float64).round().long()


class ResolutionMaps:
    """One embedding map per estimated Haar level, learned on demand (module docstring).

    Args:
        embed: the retriever's embedding function, ``(N, C, H, W) in [0, 1] -> (N, D)``.
        images: (N, C, H, W) float in [0, 1], the gallery's training part.
        clean: (N, D) float, ``embed(images)`` (the gallery's indexed embeddings of them).
        source_key: a key of the retriever ``embed`` runs and of ``images`` (for :meth:`key`).
        ridge: the maps' ridge (:data:`RIDGE`).
        views: the enlargements embedded side by side (:data:`VIEWS`; ``nearest`` first).
        rule: the estimator's thresholds (block tolerance, fraction and contrast).
    Raises:
        ValueError: ``images`` and ``clean`` of different lengths, or fewer than two, or
            ``views`` not starting with ``nearest``.
    """

    def __init__(self, embed: Embed, images: Tensor, clean: Tensor, source_key: str, *,
                 ridge: float = RIDGE, views: tuple[str, ...] = VIEWS,
                 rule: EstimationRule | None = None) -> None:
        if len(images) != len(clean) or len(images) < 2:
            raise ValueError(f"images and their clean embeddings must pair up, at least two; "
                             f"got {len(images)} images and {len(clean)} embeddings")
        self._embed, self._images, self._clean = embed, images, clean
        if not views or views[0] != "nearest":
            raise ValueError(f"views must start with 'nearest' (the blocks as they are); got "
                             f"{views}")
        self.ridge, self.views, self.rule = ridge, tuple(views), rule or EstimationRule()
        self.source_key = source_key
        self.maps: dict[int, EmbeddingMap] = {}

    def key(self) -> str:
        """Everything that decides the maps: the retriever, the training images, the ridge,
        the estimator's thresholds and the code."""
        rule = self.rule
        return fingerprint("resolution-maps", self.source_key, len(self._images), self.ridge,
                           self.views, rule.block_tolerance, rule.min_block_fraction,
                           rule.min_block_contrast, source_hash(__name__))

    def levels(self, images: Tensor) -> Tensor:
        """(N,) int64, each image's estimated Haar level (0: not block-constant)."""
        rule = self.rule
        return estimate_haar_level(images, tolerance=rule.block_tolerance,
                                   min_fraction=rule.min_block_fraction,
                                   min_contrast=rule.min_block_contrast)

    def map_for(self, level: int) -> EmbeddingMap:
        """Level ``level``'s map (>= 1), learned the first time it is asked for."""
        if level < 1:
            raise ValueError(f"a map is learned for Haar levels >= 1; got {level}")
        if level not in self.maps:
            tick = time.perf_counter()
            reduced = degradations.haar_lowres(self._images, level)
            inputs = self.inputs(reduced, self._embed(reduced), level, self._embed)
            self.maps[level] = fit_embedding_map(inputs, self._clean, ridge=self.ridge)
            log.info("embedding map for Haar level %d: learned on %d gallery images in %.1f s",
                     level, len(self._images), time.perf_counter() - tick)
        return self.maps[level]

    def inputs(self, images: Tensor, embeddings: Tensor, level: int, embed: Embed) -> Tensor:
        """(N, D * len(views)): ``embeddings`` (N, D) of the level-``level`` block ``images``
        and the embeddings of their other views, side by side."""
        others = [embed(degradations.haar_lowres(images, level, upsample=view))
                  for view in self.views[1:]]
        return torch.cat([embeddings, *(o.to(embeddings) for o in others)], dim=1)

    def routed(self, embed: Embed) -> Embed:
        """``embed`` followed by the map of each image's estimated level; images at level 0
        keep their embeddings bit for bit."""
        def mapped(images: Tensor) -> Tensor:
            embeddings = embed(images)
            levels = self.levels(images).to(embeddings.device)
            for level in sorted(set(levels.tolist()) - {0}):
                rows = (levels == level).nonzero().flatten()
                inputs = self.inputs(images[rows.to(images.device)], embeddings[rows], level,
                                     embed)
                embeddings[rows] = self.map_for(level)(inputs)
            return embeddings
        return mapped
