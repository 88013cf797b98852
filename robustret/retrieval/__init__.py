"""Retrieval: embedding extraction, pairwise distances and the exact gallery index."""

from __future__ import annotations

from robustret.retrieval.distances import cosine_similarities, l2_distances
from robustret.retrieval.embed import extract_embeddings
from robustret.retrieval.index import METRICS, GalleryIndex, get_metric, search

__all__ = [
    "METRICS",
    "GalleryIndex",
    "cosine_similarities",
    "extract_embeddings",
    "get_metric",
    "l2_distances",
    "search",
]
