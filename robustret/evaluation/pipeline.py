"""One condition of the table: queries -> (degrade) -> (restore) -> embed -> search -> scores.

:func:`degrade_queries` makes the degraded queries of one (degradation, severity) once, for the
degraded row and every restorer after it; :func:`evaluate_condition` computes one condition's
rows. These functions take tensors, models and typed values, never paths: caching is the
experiment's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

import degradations
from restoration import Restorer, knowledge_of, restore_batches
from robustret.core.rng import stream_seed
from robustret.evaluation.results import Condition, ResultRow
from robustret.retrieval import GalleryIndex
from robustret.retrieval.metrics import K_FREE, per_query_scores

Embed = Callable[[Tensor], Tensor]
"""``(N, C, H, W) float in [0, 1] -> (N, D) float32 on the CPU``."""


def degradation_seed(seed: int, severity: int) -> int:
    """The seed of the degraded queries at ``severity`` (query i's draw then depends on
    ``(this seed, i)`` only); the same for every degradation, as in the study's sweeps."""
    return stream_seed(seed, "degrade", severity)


def gallery_degradation_seed(seed: int, severity: int) -> int:
    """The seed of the degraded gallery at ``severity`` (``--degrade-side gallery|both``): a
    stream of its own, so gallery item i and query i never share a draw."""
    return stream_seed(seed, "degrade/gallery", severity)


@dataclass(frozen=True)
class DegradedQueries:
    """The degraded query set of one (degradation, severity).

    Attributes:
        images: (Q, C, H, W) float in [0, 1].
        params: the degradation's drawn per-image parameters, each (Q,) (e.g. blur ``a``,
            ``b``; lowres ``level``; noise ``kind``); empty for plain pixel noise.
        seed: the seed they were drawn with.
    """

    images: Tensor
    params: dict[str, Tensor]
    seed: int


def degrade_queries(
    queries: Tensor, degradation: str, severity: int, *, seed: int
) -> DegradedQueries:
    """Degrade ``queries`` (Q, C, H, W) in [0, 1]; image i depends only on ``(seed, i)``."""
    images, params = degradations.apply_indexed(queries, degradation, severity, seed=seed,
                                                indices=torch.arange(len(queries)),
                                                return_params=True)
    return DegradedQueries(images, params, seed)


@dataclass(frozen=True)
class ConditionResult:
    """What :func:`evaluate_condition` measured.

    Attributes:
        rows: one row per (metric, measure, k), in the order of ``indexes``, ``measures``
            and ``ks`` (one row for a k-free measure).
        images: the (Q, C, H, W) query images that were searched with.
        retrieved: per metric the (Q, max(ks)) int64 gallery indices, best first.
        per_query: ``{(metric, measure, k): (Q,) float32}``, each query's score (a row's
            value is its mean); kept for bootstrap intervals
            (:mod:`robustret.experiment.seeds`), never written into ``results.json``.
        embeddings: the (Q, D) float32 query embeddings that were searched (for the recall of
            an approximate index against exact search).
    """

    rows: list[ResultRow]
    images: Tensor
    retrieved: dict[str, Tensor]
    per_query: dict[tuple[str, str, int | None], Tensor] = field(default_factory=dict)
    embeddings: Tensor | None = None


#: queries per restorer call (fixed: results never depend on the query count)
RESTORE_BATCH = 128
#: queries per scoring chunk: bounds a full ranking (mAP) to one (SCORE_CHUNK, G) block
SCORE_CHUNK = 1024


def restore_images(restorer: Restorer, degraded: DegradedQueries,
                   device: torch.device | str = "cpu") -> Tensor:
    """``restorer`` applied to degraded images (queries or gallery) in fixed batches, with
    the drawn parameters it declares. Returns (N, C, H, W) float in [0, 1]."""
    return restore_batches(restorer, degraded.images, degraded.params,
                           batch_size=RESTORE_BATCH, device=device)


def search_width(index: GalleryIndex, labels: Tensor, *, measures: Sequence[str],
                 ks: Sequence[int]) -> int:
    """How many results :func:`score_queries` asks ``index`` for per query: max(ks), the whole
    gallery for ``map``, the largest class count R of the queries' classes for the other
    k-free measures; at most the gallery size."""
    width = max(ks)
    if "map" in measures:
        width = len(index)
    elif any(m in K_FREE for m in measures) and len(labels):
        counts = torch.bincount(index.labels, minlength=int(labels.max()) + 1)
        width = max(width, int(counts[labels].max()))
    return min(width, len(index))


def score_queries(index: GalleryIndex, embeddings: Tensor, labels: Tensor, *,
                  measures: Sequence[str], ks: Sequence[int]
                  ) -> tuple[Tensor, dict[tuple[str, int | None], Tensor]]:
    """Search ``index`` with ``embeddings`` (Q, D) and score every query, in query chunks of
    :data:`SCORE_CHUNK`: the k-free measures rank the whole gallery (``map``) or its first
    max-R items (``map_at_r``, ``r_precision``) one chunk at a time, never a (Q, G) matrix.

    Returns:
        ``(retrieved, per_query)``: (Q, max(ks)) int64 gallery indices, best first, and
        ``{(measure, k): (Q,) float32}`` (see :func:`robustret.retrieval.metrics.per_query_scores`).
    """
    k_max = max(ks)
    counts = torch.bincount(index.labels, minlength=int(labels.max()) + 1 if len(labels) else 0)
    width = search_width(index, labels, measures=measures, ks=ks)
    retrieved, scores = [], {}
    for start in range(0, len(embeddings), SCORE_CHUNK):
        _, indices = index.search(embeddings[start:start + SCORE_CHUNK], width)  # (c, width)
        retrieved.append(indices[:, :k_max])
        chunk = per_query_scores(index.labels[indices], labels[start:start + SCORE_CHUNK],
                                 measures, ks, counts)
        for key, values in chunk.items():
            scores.setdefault(key, []).append(values)
    return torch.cat(retrieved), {key: torch.cat(parts) for key, parts in scores.items()}


def evaluate_condition(
    condition: Condition,
    *,
    queries: Tensor,
    labels: Tensor,
    embed: Embed,
    indexes: dict[str, GalleryIndex],
    ks: Sequence[int],
    degraded: DegradedQueries | None = None,
    restorer: Restorer | None = None,
    device: torch.device | str = "cpu",
    measures: Sequence[str] = ("topk",),
    degrade_side: str = "query",
    retriever_seen: Sequence[str] = (),
    restorer_seen: Sequence[str] = (),
) -> ConditionResult:
    """Compute one condition's rows: the query images it stands for, embedded and searched.

    Args:
        condition: which line of the table.
        queries: (Q, C, H, W) float in [0, 1], the clean query split.
        labels: (Q,) int64 query labels.
        embed: the retriever's embedding function (see :data:`Embed`); for an adapted
            condition, the adapted retriever's.
        indexes: one gallery index per metric name (for ``adaptation="both"``, of the gallery
            embedded by the adapted retriever).
        ks: the k values of the k-measures, each <= the gallery size.
        degraded: the condition's degraded queries (from :func:`degrade_queries`); required
            for degraded and restored conditions.
        restorer: the restorer of a restored condition; it receives the drawn parameters it
            declares (``uses_params``); its rows record what it knew
            (:func:`restoration.knowledge_of`).
        device: where the restorer runs.
        measures: names of :data:`robustret.retrieval.metrics.MEASURES` (``topk``: the study's).
        degrade_side: ``query`` (the study), ``gallery`` or ``both``. For ``gallery`` the
            clean queries are searched (the caller's ``indexes`` hold the degraded or restored
            gallery) and ``degraded``/``restorer`` are not needed; for ``both`` the queries
            are degraded (and restored) as for ``query``.
        retriever_seen: the degradations the retriever was trained on (recorded in the rows).
        restorer_seen: the degradations the restorer was trained on (recorded in the rows of
            a restored condition; empty for an untrained filter).
    Returns:
        A :class:`ConditionResult`.
    Raises:
        ValueError: ``degraded`` or ``restorer`` missing for the condition, or a mismatch.
    """
    if condition.query == "clean" or degrade_side == "gallery":
        images = queries
    else:
        if degraded is None or degraded.images.shape != queries.shape:
            raise ValueError(f"{condition.name}: degraded queries of shape "
                             f"{tuple(queries.shape)} are required")
        if condition.query in ("degraded", "adapted"):
            images = degraded.images  # adapted: the caller's embed and indexes are adapted
        else:
            if restorer is None:
                raise ValueError(f"{condition.name}: a restorer is required")
            images = restore_images(restorer, degraded, device)
    embeddings = embed(images)
    knowledge = (knowledge_of(restorer)
                 if condition.query == "restored" and restorer is not None else None)
    rows: list[ResultRow] = []
    retrieved: dict[str, Tensor] = {}
    per_query: dict[tuple[str, str, int | None], Tensor] = {}
    for metric, index in indexes.items():
        retrieved[metric], scores = score_queries(index, embeddings, labels,
                                                  measures=measures, ks=ks)
        for (measure, k), values in scores.items():
            per_query[(metric, measure, k)] = values
            value = min(max(float(values.mean()), 0.0), 1.0)  # float rounding past 1
            rows.append(ResultRow(condition, metric, None if k is None else int(k), value,
                                  measure=measure, degrade_side=degrade_side,
                                  retriever_seen=tuple(retriever_seen), knowledge=knowledge,
                                  restorer_seen=tuple(restorer_seen) if knowledge else ()))
    return ConditionResult(rows, images, retrieved, per_query, embeddings)
