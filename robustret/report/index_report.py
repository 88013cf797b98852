"""How close an approximate gallery index came to exact search in a run: ``OUT/index.json``.

For each condition computed with an approximate index (``--index faiss-ivf`` ...), the
recall@k of the lists that produced its rows against the exact torch search of the same query
embeddings and gallery, k = the largest k the run reports. Measures that rank more than k
items (``map``: the whole gallery; ``map_at_r`` / ``r_precision``: R items) make the index
search that many: IVF rows are then completed by exact search past what the probed cells
hold, and HNSW searches with ``ef`` raised to that width, so its head is nearly exact;
``searched`` records the width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from robustret.core.io import atomic_write_json
from robustret.retrieval import GalleryIndex
from robustret.retrieval.ann import recall_at_k


@dataclass(frozen=True)
class IndexRecall:
    """One condition's recall@k for one metric.

    Attributes:
        condition: the condition's name.
        metric: ``l2`` or ``cosine``.
        recall: mean over queries of the share of the exact k nearest found, in [0, 1].
        worst: the lowest per-query recall, in [0, 1].
    """

    condition: str
    metric: str
    recall: float
    worst: float


@dataclass(frozen=True)
class IndexReport:
    """What ``OUT/index.json`` holds.

    Attributes:
        index: the configured index name (``faiss-ivf``, ...).
        k: the k of recall@k (the run's largest top-k).
        searched: how many results each query's search asked for (k, or wider for the
            full-ranking measures, see the module docstring).
        indexes: per metric, the index's description (its kind, parameters, GPU or not).
        recalls: one entry per (computed condition, metric), in plan order.
        not_measured: conditions reused from an earlier run (not searched in this one).
    """

    index: str
    k: int
    searched: int
    indexes: dict[str, dict[str, Any]]
    recalls: tuple[IndexRecall, ...]
    not_measured: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the mean and minimum recall over the entries."""
        values = [r.recall for r in self.recalls]
        return {
            "index": self.index, "k": self.k, "searched": self.searched,
            "indexes": self.indexes,
            "mean_recall": sum(values) / len(values) if values else None,
            "min_recall": min(values) if values else None,
            "recalls": [asdict(r) for r in self.recalls],
            "not_measured": list(self.not_measured),
        }

    def line(self) -> str:
        """One line for the terminal."""
        values = [r.recall for r in self.recalls]
        if not values:
            return (f"index {self.index}: every condition was reused; recall@{self.k} not "
                    "measured in this run")
        return (f"index {self.index}: recall@{self.k} against exact search "
                f"{sum(values) / len(values):.3f} (min {min(values):.3f} over {len(values)} "
                f"condition x metric)")


def measure_recall(index: GalleryIndex, embeddings: Tensor, retrieved: Tensor, k: int
                   ) -> tuple[float, float]:
    """Mean and worst recall@k of ``retrieved`` against exact search.

    Args:
        index: the gallery index the queries were searched in.
        embeddings: (Q, D) float query embeddings.
        retrieved: (Q, >= k) int64 gallery indices the index returned, best first.
        k: 1 <= k <= the gallery size.
    Returns:
        ``(mean, worst)`` over queries, each in [0, 1] (``(1.0, 1.0)`` for no queries).
    """
    if len(embeddings) == 0:
        return 1.0, 1.0
    _, exact = index.exact_search(embeddings, k)
    per_query = recall_at_k(retrieved[:, :k], exact)
    return float(per_query.mean()), float(per_query.min())


def write_index_report(path: str | Path, report: IndexReport) -> Path:
    """Write ``report`` as JSON, atomically (see :mod:`robustret.core.io`)."""
    return atomic_write_json(Path(path), report.to_dict())
