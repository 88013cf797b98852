"""Retrieval: embedding extraction (in memory or to a file), pairwise distances, the exact
gallery index."""

from __future__ import annotations

from robustret.retrieval.distances import cosine_similarities, l2_distances
from robustret.retrieval.embed import extract_embeddings, iter_embeddings
from robustret.retrieval.index import METRICS, GalleryIndex, get_metric, search
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
