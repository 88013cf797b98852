"""Per-query relevance: each query's own positives and junk, and the landmark protocols' scores.

The class-label measures of :mod:`robustret.retrieval.metrics` call every gallery item of the
query's class relevant. The instance-retrieval benchmarks (Oxford5k, Paris6k and their revisited
versions ROxford5k, RParis6k) instead list, per query, the gallery images that count as
positives and the *junk* images that are removed from the ranking before scoring (neither
right nor wrong). This module scores a full ranking against such lists, with no assumption
about labels:

- :func:`protocol_ap`: the protocols' own AP (Oxford's ``compute_ap`` and revisitop's
  ``compute_ap``): junk removed first, then the trapezoidal average over the precision-recall
  steps, the precision before each positive (1 at the first rank) and after it;
- :func:`plain_ap`: non-interpolated AP, the mean of the precision at each positive's rank
  (junk removed);
- :func:`interpolated_ap_11`: the 11-point interpolated AP (recall 0, 0.1, ..., 1; the best
  precision at that recall or beyond; junk removed);
- :func:`precision_at_k`: revisitop's mP@k: with junk removed, the share of positives among the
  first ``min(k, position of the last positive)`` results.

A query without positives scores NaN under every measure and is left out of the means and
counted (:attr:`RelevanceScores.empty`), as revisitop's ``compute_map`` does.

The setups: classic Oxford / Paris (:func:`classic_relevance`: positives = good + ok, junk =
junk) and the revisited protocol's Easy, Medium and Hard (:func:`revisited_relevance`:
Easy = easy with junk + hard ignored, Medium = easy + hard with junk ignored, Hard = hard with
junk + easy ignored). :func:`label_relevance` turns class labels into the same form (the
class's gallery items positive, no junk), so a class-labelled set can be scored alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor


class Setup(StrEnum):
    """A protocol's way of turning a query's ground-truth lists into positives and junk."""

    CLASSIC = "classic"  #: Oxford5k / Paris6k: good + ok positive, junk ignored
    EASY = "easy"  #: revisited: easy positive; junk and hard ignored
    MEDIUM = "medium"  #: revisited: easy + hard positive; junk ignored
    HARD = "hard"  #: revisited: hard positive; junk and easy ignored

    @property
    def title(self) -> str:
        """The protocol's column letter (``E``, ``M``, ``H``) or ``classic``."""
        return {"easy": "E", "medium": "M", "hard": "H"}.get(self.value, self.value)


#: the revisited protocol's setups, in its table order
REVISITED_SETUPS: tuple[Setup, ...] = (Setup.EASY, Setup.MEDIUM, Setup.HARD)


def _index_set(values: Sequence[int] | np.ndarray | Tensor, what: str) -> Tensor:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.int64) if not isinstance(values, Tensor)
                             else values).to(torch.int64).cpu()
    if tensor.ndim != 1:
        raise ValueError(f"{what} must be a 1-D list of gallery indices; got shape "
                         f"{tuple(tensor.shape)}")
    if len(tensor) and int(tensor.min()) < 0:
        raise ValueError(f"{what} holds a negative gallery index ({int(tensor.min())})")
    if len(torch.unique(tensor)) != len(tensor):
        raise ValueError(f"{what} lists a gallery index twice; give each index once")
    return tensor


@dataclass(frozen=True)
class QueryRelevance:
    """One query's relevance: which gallery items are positives, which are ignored.

    Attributes:
        positives: (P,) int64 distinct gallery indices that count as correct.
        junk: (J,) int64 distinct gallery indices removed from the ranking before scoring;
            disjoint from ``positives``.
    """

    positives: Tensor
    junk: Tensor

    def __post_init__(self) -> None:
        positives = _index_set(self.positives, "positives")
        junk = _index_set(self.junk, "junk")
        both = set(positives.tolist()) & set(junk.tolist())
        if both:
            raise ValueError(f"gallery indices {sorted(both)[:5]} are both positive and junk; "
                             "an image is one or the other")
        object.__setattr__(self, "positives", positives)
        object.__setattr__(self, "junk", junk)

    @classmethod
    def of(cls, positives: Sequence[int] | np.ndarray | Tensor = (),
           junk: Sequence[int] | np.ndarray | Tensor = ()) -> QueryRelevance:
        """Build from any integer sequences."""
        return cls(torch.as_tensor(np.asarray(positives, dtype=np.int64)),
                   torch.as_tensor(np.asarray(junk, dtype=np.int64)))


def classic_relevance(good: Sequence[int], ok: Sequence[int],
                      junk: Sequence[int]) -> QueryRelevance:
    """Oxford5k / Paris6k: positives = good + ok, junk = junk."""
    return QueryRelevance.of([*good, *ok], junk)


def revisited_relevance(easy: Sequence[int], hard: Sequence[int],
                        junk: Sequence[int]) -> Mapping[Setup, QueryRelevance]:
    """The revisited protocol's three setups of one query.

    Returns:
        ``{EASY: (easy; junk + hard), MEDIUM: (easy + hard; junk), HARD: (hard; junk + easy)}``
        as ``(positives; junk)``.
    """
    return MappingProxyType({
        Setup.EASY: QueryRelevance.of(easy, [*junk, *hard]),
        Setup.MEDIUM: QueryRelevance.of([*easy, *hard], junk),
        Setup.HARD: QueryRelevance.of(hard, [*junk, *easy]),
    })


def label_relevance(query_labels: Tensor, gallery_labels: Tensor) -> list[QueryRelevance]:
    """Class labels as per-query relevance: every gallery item of the query's class is a
    positive, nothing is junk (the convention of :mod:`robustret.retrieval.metrics`).

    Args:
        query_labels: (Q,) int64.
        gallery_labels: (N,) int64.
    Returns:
        Q :class:`QueryRelevance`.
    """
    gallery_labels = gallery_labels.cpu()
    empty = torch.zeros(0, dtype=torch.int64)
    return [QueryRelevance((gallery_labels == int(label)).nonzero().flatten(), empty)
            for label in query_labels.cpu()]


def positive_ranks(ranking: Tensor, relevance: QueryRelevance) -> Tensor:
    """Where a query's positives sit in its ranking once the junk is taken out.

    Args:
        ranking: (N,) int64 gallery indices, best first: the full ranking of the gallery.
        relevance: the query's positives and junk.
    Returns:
        (P,) int64 increasing 0-based positions of the positives in the ranking with every junk
        item removed.
    Raises:
        ValueError: the ranking is not 1-D, or misses some positive (it must rank the whole
            gallery).
    """
    if ranking.ndim != 1:
        raise ValueError(f"ranking must be (N,) gallery indices; got shape {tuple(ranking.shape)}")
    ranking = ranking.cpu().long()
    is_junk = torch.isin(ranking, relevance.junk)
    kept = ranking[~is_junk]  # (N - J',) the ranking without junk
    ranks = torch.isin(kept, relevance.positives).nonzero().flatten()
    if len(ranks) != len(relevance.positives):
        raise ValueError(f"the ranking holds {len(ranks)} of the query's "
                         f"{len(relevance.positives)} positives; rank the whole gallery (K = N)")
    return ranks


def protocol_ap(ranks: Tensor, n_positives: int) -> float:
    """The Oxford / revisited protocol's AP from the positives' junk-free ranks.

    ``AP = sum_j (p0_j + p1_j) / (2 n)`` over the positives j = 0, 1, ... at 0-based ranks r_j:
    ``p0_j = j / r_j`` (1 when r_j = 0) is the precision just before the positive and
    ``p1_j = (j + 1) / (r_j + 1)`` the precision at it; n = ``n_positives``.

    Args:
        ranks: (P,) increasing 0-based ranks (:func:`positive_ranks`).
        n_positives: the query's positive count (> 0).
    Returns:
        AP in [0, 1].
    """
    r = ranks.double()
    j = torch.arange(len(r), dtype=torch.float64)
    before = torch.where(r > 0, j / r.clamp(min=1), torch.ones_like(r))
    at = (j + 1) / (r + 1)
    return float(((before + at) / 2).sum() / n_positives)


def plain_ap(ranks: Tensor, n_positives: int) -> float:
    """Non-interpolated AP: ``(1 / n) sum_j (j + 1) / (r_j + 1)`` (see :func:`protocol_ap`)."""
    r = ranks.double()
    j = torch.arange(len(r), dtype=torch.float64)
    return float(((j + 1) / (r + 1)).sum() / n_positives)


def interpolated_ap_11(ranks: Tensor, n_positives: int) -> float:
    """11-point interpolated AP: the mean over recall t = 0, 0.1, ..., 1 of the best precision
    at any positive whose recall is >= t (0 when none reaches t)."""
    r = ranks.double()
    j = torch.arange(len(r), dtype=torch.float64)
    precision = (j + 1) / (r + 1)  # (P,) at each positive
    recall = (j + 1) / n_positives
    total = 0.0
    for step in range(11):
        reached = recall >= step / 10 - 1e-12
        total += float(precision[reached].max()) if bool(reached.any()) else 0.0
    return total / 11


def precision_at_k(ranks: Tensor, k: int) -> float:
    """revisitop's mP@k of one query: with ``k_q = min(k, 1-based position of its last
    positive)``, the share of its positives among the first ``k_q`` junk-free results."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    positions = ranks.long() + 1  # 1-based
    kq = min(int(positions.max()), int(k))
    return float((positions <= kq).sum()) / kq


@dataclass(frozen=True)
class RelevanceScores:
    """Every query's scores under one setup (NaN for a query without positives).

    Attributes:
        ap: (Q,) float64 the protocol's AP (:func:`protocol_ap`).
        ap_plain: (Q,) float64 non-interpolated AP (:func:`plain_ap`).
        ap_11: (Q,) float64 11-point interpolated AP (:func:`interpolated_ap_11`).
        precision: ``{k: (Q,) float64}`` revisitop's P@k (:func:`precision_at_k`).
    """

    ap: Tensor
    ap_plain: Tensor
    ap_11: Tensor
    precision: Mapping[int, Tensor]

    @property
    def empty(self) -> int:
        """Queries without positives, left out of every mean."""
        return int(torch.isnan(self.ap).sum())

    @property
    def evaluated(self) -> int:
        """Queries with positives (those the means are over)."""
        return len(self.ap) - self.empty

    @staticmethod
    def mean(values: Tensor) -> float:
        """The mean over queries with positives (NaN when there are none)."""
        kept = values[~torch.isnan(values)]
        return float(kept.mean()) if len(kept) else math.nan

    @property
    def mean_ap(self) -> float:
        """The protocol's mAP."""
        return self.mean(self.ap)

    @property
    def mean_ap_plain(self) -> float:
        return self.mean(self.ap_plain)

    @property
    def mean_ap_11(self) -> float:
        return self.mean(self.ap_11)

    def mean_precision(self, k: int) -> float:
        """mP@k."""
        return self.mean(self.precision[k])


def score_rankings(rankings: Tensor, relevance: Sequence[QueryRelevance],
                   ks: Sequence[int] = (1, 5, 10)) -> RelevanceScores:
    """Score each query's full ranking against its own positives and junk.

    Args:
        rankings: (Q, N) int64 gallery indices, best first, each row the whole gallery.
        relevance: Q :class:`QueryRelevance`, one per row.
        ks: the k of mP@k, each >= 1.
    Returns:
        :class:`RelevanceScores`; a query without positives is NaN everywhere.
    Raises:
        ValueError: shapes that do not fit, an index past the gallery, a ranking that misses a
            positive.
    """
    if rankings.ndim != 2 or rankings.shape[0] != len(relevance):
        raise ValueError(f"rankings must be (Q, N) with Q = {len(relevance)} queries; got shape "
                         f"{tuple(rankings.shape)}")
    size = rankings.shape[1]
    nan = math.nan
    ap, plain, eleven = [], [], []
    precision: dict[int, list[float]] = {int(k): [] for k in ks}
    for row, query in zip(rankings, relevance):
        top = max([int(query.positives.max()) if len(query.positives) else -1,
                   int(query.junk.max()) if len(query.junk) else -1])
        if top >= size:
            raise ValueError(f"a query lists gallery index {top}, past the gallery's {size} "
                             "items")
        n = len(query.positives)
        if n == 0:
            ap.append(nan), plain.append(nan), eleven.append(nan)
            for values in precision.values():
                values.append(nan)
            continue
        ranks = positive_ranks(row, query)
        ap.append(protocol_ap(ranks, n))
        plain.append(plain_ap(ranks, n))
        eleven.append(interpolated_ap_11(ranks, n))
        for k, values in precision.items():
            values.append(precision_at_k(ranks, k))

    def column(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float64)

    return RelevanceScores(column(ap), column(plain), column(eleven),
                           MappingProxyType({k: column(v) for k, v in precision.items()}))
