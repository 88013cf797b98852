"""Retrieval metrics: tensors in, floats out.

Conventions: ``retrieved_labels`` is (Q, K) int64, the classes of each query's ranked results
(best first); ``query_labels`` is (Q,) int64. An item is relevant when it has the query's class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

from robustret.core.checks import check_labels, table_entry


def _hits(retrieved_labels: Tensor, query_labels: Tensor) -> Tensor:
    if retrieved_labels.ndim != 2:
        raise ValueError(
            f"retrieved_labels must be (Q, K); got shape {tuple(retrieved_labels.shape)}"
        )
    check_labels(query_labels, retrieved_labels.shape[0], "query_labels")
    return retrieved_labels == query_labels.to(retrieved_labels.device)[:, None]  # (Q, K) bool


def _check_ks(ks: Sequence[int], width: int) -> None:
    for k in ks:
        if not 1 <= k <= width:
            raise ValueError(f"k={k} out of range: the ranking has {width} results per query")


def _per_class(values: Tensor, query_labels: Tensor) -> dict[int, float]:
    return {
        int(c): float(values[query_labels == c].mean()) for c in torch.unique(query_labels.cpu())
    }


def topk_hit_rate(retrieved_labels: Tensor, query_labels: Tensor, ks: Sequence[int] = (1, 5, 10),
                  *, per_class: bool = False) -> dict[int, float] | dict[int, dict[int, float]]:
    """The study's top-k matching accuracy: a query is a hit when any of its first k results
    has its class.

    Returns:
        ``{k: rate in [0, 1]}``; with ``per_class=True``, ``{k: {class: rate}}``.
    """
    hits = _hits(retrieved_labels, query_labels)
    _check_ks(ks, hits.shape[1])
    out = {}
    for k in ks:
        per_query = hits[:, :k].any(dim=1).float()
        out[k] = _per_class(per_query, query_labels) if per_class else float(per_query.mean())
    return out


def precision_at_k(retrieved_labels: Tensor, query_labels: Tensor, ks: Sequence[int] = (1, 5, 10),
                   *, per_class: bool = False) -> dict[int, float] | dict[int, dict[int, float]]:
    """Fraction of relevant items among the first k results, averaged over queries."""
    hits = _hits(retrieved_labels, query_labels).float()
    _check_ks(ks, hits.shape[1])
    out = {}
    for k in ks:
        per_query = hits[:, :k].mean(dim=1)
        out[k] = _per_class(per_query, query_labels) if per_class else float(per_query.mean())
    return out


def _relevant_counts(query_labels: Tensor, gallery_class_counts: Tensor) -> Tensor:
    counts = gallery_class_counts.to(query_labels.device).long()
    if int(query_labels.max()) >= counts.numel():
        raise ValueError("gallery_class_counts has no entry for some query class")
    relevant = counts[query_labels].float()  # (Q,)
    if bool((relevant == 0).any()):
        raise ValueError(
            "some queries have no relevant gallery item (class count 0); recall/AP undefined"
        )
    return relevant


def recall_at_k(retrieved_labels: Tensor, query_labels: Tensor, gallery_class_counts: Tensor,
                ks: Sequence[int] = (1, 5, 10), *, per_class: bool = False
                ) -> dict[int, float] | dict[int, dict[int, float]]:
    """Fraction of the query's relevant gallery items found in the first k results.

    Args:
        gallery_class_counts: (C,) number of gallery items of each class
            (``torch.bincount(gallery_labels)``).
    """
    hits = _hits(retrieved_labels, query_labels).float()
    _check_ks(ks, hits.shape[1])
    relevant = _relevant_counts(query_labels, gallery_class_counts)
    out = {}
    for k in ks:
        per_query = hits[:, :k].sum(dim=1) / relevant
        out[k] = _per_class(per_query, query_labels) if per_class else float(per_query.mean())
    return out


def average_precisions(retrieved_labels: Tensor, query_labels: Tensor, gallery_class_counts: Tensor,
                       *, at_r: bool = False) -> Tensor:
    """(Q,) non-interpolated average precision of each query.

    ``AP = (1 / R) * sum over relevant ranks i of precision@i``, R = relevant gallery items.
    The ranking must cover the whole gallery (K = G) for the full AP; for ``at_r=True``
    (MAP@R) only the first R results count and K >= max R is required.
    """
    hits = _hits(retrieved_labels, query_labels).float()
    relevant = _relevant_counts(query_labels, gallery_class_counts)
    width = hits.shape[1]
    if at_r:
        if int(relevant.max()) > width:
            raise ValueError(
                f"map_at_r needs at least R={int(relevant.max())} results per query; got {width}"
            )
        ranks = torch.arange(1, width + 1, device=hits.device)
        hits = hits * (ranks[None] <= relevant[:, None])  # keep the first R results only
    elif width < int(gallery_class_counts.sum()):
        raise ValueError(
            "mean_average_precision needs the full ranking (K = gallery size "
            f"{int(gallery_class_counts.sum())}); "
            f"got K={width}"
        )
    ranks = torch.arange(1, width + 1, device=hits.device, dtype=torch.float32)
    precision = hits.cumsum(dim=1) / ranks  # (Q, K) precision@i
    return (precision * hits).sum(dim=1) / relevant


def mean_average_precision(
    retrieved_labels: Tensor,
    query_labels: Tensor,
    gallery_class_counts: Tensor,
    *,
    per_class: bool = False,
) -> float | dict[int, float]:
    """Mean of the non-interpolated AP over queries (full ranking, K = G)."""
    ap = average_precisions(retrieved_labels, query_labels, gallery_class_counts)
    return _per_class(ap, query_labels) if per_class else float(ap.mean())


def map_at_r(retrieved_labels: Tensor, query_labels: Tensor, gallery_class_counts: Tensor,
             *, per_class: bool = False) -> float | dict[int, float]:
    """MAP@R: AP over the first R results, R = the query's relevant gallery count."""
    ap = average_precisions(retrieved_labels, query_labels, gallery_class_counts, at_r=True)
    return _per_class(ap, query_labels) if per_class else float(ap.mean())


def r_precisions(retrieved_labels: Tensor, query_labels: Tensor,
                 gallery_class_counts: Tensor) -> Tensor:
    """(Q,) R-precision of each query: the fraction of relevant items among its first R
    results, R = the query's relevant gallery count (needs K >= max R)."""
    hits = _hits(retrieved_labels, query_labels).float()
    relevant = _relevant_counts(query_labels, gallery_class_counts)
    width = hits.shape[1]
    if int(relevant.max()) > width:
        raise ValueError(
            f"r_precision needs at least R={int(relevant.max())} results per query; got {width}"
        )
    ranks = torch.arange(1, width + 1, device=hits.device)
    return (hits * (ranks[None] <= relevant[:, None])).sum(dim=1) / relevant


def r_precision(retrieved_labels: Tensor, query_labels: Tensor, gallery_class_counts: Tensor,
                *, per_class: bool = False) -> float | dict[int, float]:
    """Mean R-precision over queries (see :func:`r_precisions`)."""
    values = r_precisions(retrieved_labels, query_labels, gallery_class_counts)
    return _per_class(values, query_labels) if per_class else float(values.mean())


@dataclass(frozen=True)
class _Ranking:
    """One search's ranked classes and what the measures compute from them."""

    retrieved_labels: Tensor  # (Q, K)
    query_labels: Tensor  # (Q,)
    gallery_class_counts: Tensor | None  # (C,)
    hits: Tensor  # (Q, K) float 0/1
    relevant: Tensor | None  # (Q,) relevant gallery items of each query


def _topk_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return ranking.hits[:, :k].amax(dim=1)


def _precision_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return ranking.hits[:, :k].mean(dim=1)


def _recall_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return ranking.hits[:, :k].sum(dim=1) / ranking.relevant


def _map_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return average_precisions(ranking.retrieved_labels, ranking.query_labels,
                              ranking.gallery_class_counts)


def _map_at_r_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return average_precisions(ranking.retrieved_labels, ranking.query_labels,
                              ranking.gallery_class_counts, at_r=True)


def _r_precision_scores(ranking: _Ranking, k: int | None) -> Tensor:
    return r_precisions(ranking.retrieved_labels, ranking.query_labels,
                        ranking.gallery_class_counts)


@dataclass(frozen=True)
class Measure:
    """A retrieval measure of a run (``--measures``).

    Attributes:
        name: its name in configurations, flags, ``results.json`` and CSV.
        takes_k: evaluated at each k of ``ks`` (``topk``, ``precision``, ``recall``); False
            for the k-free measures (one value per query over the ranking).
        needs_counts: needs the gallery's class counts (the relevant items of each query).
        title: a table column's title, ``{k}`` filled in for a k-measure (``"P@{k}"``).
        long_name: a section heading (``"Precision@k"``).
        scores: ``(ranking, k) -> (Q,)`` each query's score (k None for a k-free measure).
    """

    name: str
    takes_k: bool
    needs_counts: bool
    title: str
    long_name: str
    scores: Callable[[_Ranking, int | None], Tensor]


#: every measure by name, in ``--measures`` order: the study's top-k hit rate, precision@k,
#: recall@k, and the k-free mean average precision (full ranking), MAP@R and R-precision;
#: adding a measure is one entry here
MEASURE_TABLE: Mapping[str, Measure] = MappingProxyType({measure.name: measure for measure in (
    Measure("topk", True, False, "top-{k}", "Top-k matching accuracy", _topk_scores),
    Measure("precision", True, False, "P@{k}", "Precision@k", _precision_scores),
    Measure("recall", True, True, "R@{k}", "Recall@k", _recall_scores),
    Measure("map", False, True, "mAP", "Mean average precision (full ranking)", _map_scores),
    Measure("map_at_r", False, True, "MAP@R", "MAP@R", _map_at_r_scores),
    Measure("r_precision", False, True, "R-prec", "R-precision", _r_precision_scores),
)})
#: measures of a run (``--measures``), the names of :data:`MEASURE_TABLE`
MEASURES: tuple[str, ...] = tuple(MEASURE_TABLE)
#: the measures without a k (one value per query over the ranking)
K_FREE: tuple[str, ...] = tuple(m.name for m in MEASURE_TABLE.values() if not m.takes_k)
#: the measures that need the gallery's class counts
NEEDS_COUNTS: tuple[str, ...] = tuple(m.name for m in MEASURE_TABLE.values() if m.needs_counts)


def get_measure(name: str) -> Measure:
    """The :class:`Measure` called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    return table_entry(MEASURE_TABLE, name, "measure")


def per_query_scores(retrieved_labels: Tensor, query_labels: Tensor, measures: Sequence[str],
                     ks: Sequence[int], gallery_class_counts: Tensor | None = None
                     ) -> dict[tuple[str, int | None], Tensor]:
    """Every query's score under each measure: their means are the measures' values.

    Args:
        retrieved_labels: (Q, K) int64 classes of the ranked results, best first; ``map``
            needs the full ranking (K = G), ``map_at_r`` and ``r_precision`` K >= max R.
        query_labels: (Q,) int64.
        measures: names from :data:`MEASURES`.
        ks: the k of the k-measures (``topk``, ``precision``, ``recall``), each <= K.
        gallery_class_counts: (C,) gallery items per class; needed for :data:`NEEDS_COUNTS`.
    Returns:
        ``{(measure, k): (Q,) float32 in [0, 1]}``, k None for the k-free measures; the
        ``topk`` vectors are 0/1 hits.
    Raises:
        ValueError: an unknown measure, a k out of range, a ranking too short, or counts
            missing.
    """
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; choose from {', '.join(MEASURES)}")
    chosen = [MEASURE_TABLE[m] for m in measures]
    counted = any(m.needs_counts for m in chosen)
    if gallery_class_counts is None and counted:
        raise ValueError(f"measures {', '.join(NEEDS_COUNTS)} need gallery_class_counts")
    hits = _hits(retrieved_labels, query_labels).float()  # (Q, K)
    if any(m.takes_k for m in chosen):
        _check_ks(ks, hits.shape[1])
    relevant = (_relevant_counts(query_labels, gallery_class_counts)
                if gallery_class_counts is not None and counted else None)
    ranking = _Ranking(retrieved_labels, query_labels, gallery_class_counts, hits, relevant)
    out: dict[tuple[str, int | None], Tensor] = {}
    for measure in chosen:
        for k in (ks if measure.takes_k else (None,)):
            out[(measure.name, k)] = measure.scores(ranking, k)
    return out
