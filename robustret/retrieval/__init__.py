"""Layer 2, retrieval: embedding extraction (in memory or to a file), pairwise distances, the
exact and approximate gallery indexes, and the retrieval measures (top-k, P@k, mAP).

May import: ``robustret.core``.
"""

from __future__ import annotations

from robustret.retrieval.distances import cosine_similarities, l2_distances
from robustret.retrieval.embed import extract_embeddings, iter_embeddings
from robustret.retrieval.index import GalleryIndex, search
from robustret.retrieval.ranking import METRICS, get_metric
from robustret.retrieval.store import load_embeddings, write_embeddings, write_rows

__all__ = [
    "METRICS",
    "GalleryIndex",
    "cosine_similarities",
    "extract_embeddings",
    "get_metric",
    "iter_embeddings",
    "l2_distances",
    "load_embeddings",
    "search",
    "write_embeddings",
    "write_rows",
]
