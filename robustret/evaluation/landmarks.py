"""One condition of a landmark benchmark: query images -> embed -> full ranking -> the protocol's
scores per setup (:mod:`robustret.retrieval.relevance`).

Tensors and typed values in, :class:`LandmarkRow` s out; no paths, no caching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

from robustret.evaluation.pipeline import Embed
from robustret.evaluation.results import Condition
from robustret.retrieval import GalleryIndex
from robustret.retrieval.relevance import QueryRelevance, Setup, score_rankings

#: queries ranked against the whole gallery at once (bounds a (chunk, N) ranking)
RANK_CHUNK = 256


@dataclass(frozen=True)
class LandmarkRow:
    """One condition's scores under one setup (means over the queries with positives).

    Attributes:
        condition: clean, degraded or restored queries.
        setup: the protocol's setup (classic, or revisited easy / medium / hard).
        map: the protocol's mAP (trapezoidal AP, junk ignored), in [0, 1].
        map_plain: non-interpolated mAP, junk ignored.
        map_11: 11-point interpolated mAP, junk ignored.
        precision: ``{k: mP@k}`` as revisitop computes it.
        evaluated: queries with positives (the means are over these).
        empty: queries without positives, left out.
        knowledge: what a restored row's restorer knew (``oracle``, ``estimated``, ``blind``);
            None for clean and degraded rows.
    """

    condition: Condition
    setup: Setup
    map: float
    map_plain: float
    map_11: float
    precision: Mapping[int, float]
    evaluated: int
    empty: int
    knowledge: str | None = None


def full_rankings(index: GalleryIndex, embeddings: Tensor) -> Tensor:
    """(Q, N) int64: every query's ranking of the whole gallery, best first (ties to the
    lower index), searched :data:`RANK_CHUNK` queries at a time."""
    parts = [index.search(embeddings[start:start + RANK_CHUNK], len(index))[1]
             for start in range(0, len(embeddings), RANK_CHUNK)]
    return torch.cat(parts) if parts else torch.zeros((0, len(index)), dtype=torch.int64)


def score_condition(condition: Condition, images: Tensor, *, embed: Embed,
                    index: GalleryIndex, relevance: Mapping[Setup, Sequence[QueryRelevance]],
                    ks: Sequence[int] = (1, 5, 10),
                    knowledge: str | None = None) -> list[LandmarkRow]:
    """Embed ``images``, rank the whole gallery and score every setup.

    Args:
        condition: which row of the table.
        images: (Q, C, H, W) float in [0, 1], the condition's query images.
        embed: ``(N, C, H, W) -> (N, D)`` the retriever's embedding.
        index: the gallery's index (its metric decides the order).
        relevance: per setup, one :class:`QueryRelevance` per query.
        ks: the k of mP@k.
        knowledge: what the condition's restorer knew.
    Returns:
        One :class:`LandmarkRow` per setup, in ``relevance``'s order.
    """
    rankings = full_rankings(index, embed(images))
    rows = []
    for setup, queries in relevance.items():
        scores = score_rankings(rankings, queries, ks)
        precision = MappingProxyType({int(k): scores.mean_precision(int(k)) for k in ks})
        rows.append(LandmarkRow(condition, setup, scores.mean_ap, scores.mean_ap_plain,
                                scores.mean_ap_11, precision, scores.evaluated, scores.empty,
                                knowledge))
    return rows
