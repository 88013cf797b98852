"""Layer 2: the retrieval networks (backbones registry, the Retriever, build and load helpers,
test-time BatchNorm adaptation).

May import: ``robustret.core``.
"""

from __future__ import annotations

from robustret.models.backbones import BACKBONES
from robustret.models.retriever import Retriever, build_retriever, init_retriever, load_retriever

__all__ = ["BACKBONES", "Retriever", "build_retriever", "init_retriever", "load_retriever"]
