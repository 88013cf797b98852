"""The gallery index kinds, defined once: :data:`INDEX_KINDS`.

Each kind has the name a configuration, ``--index`` and ``results.json`` use (``"exact"``,
``"faiss-ivf"``, ...), the :class:`~robustret.retrieval.index.GalleryIndex` backend that builds
it (``"torch"``, ``"faiss"``, ``"faiss-ivf"``, ...) and whether it is approximate (trained,
with options; :mod:`robustret.retrieval.ann`). Every other list of index names or backends is
derived from this table, so adding an index kind is one entry here (and, for an approximate
one, its spec in :mod:`robustret.retrieval.ann`).

May import: nothing first-party.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from robustret.core.checks import table_entry


@dataclass(frozen=True)
class IndexKind:
    """One gallery index kind.

    Attributes:
        name: the configuration's name (``index = "faiss-hnsw"``, ``--index faiss-hnsw``).
        backend: the ``GalleryIndex(backend=...)`` that builds it.
        approximate: a trained index with options (``nlist``, ``M``, ...) whose recall
            against exact search a run reports; False for the exact searches.
    """

    name: str
    backend: str
    approximate: bool = False

    @property
    def needs_faiss(self) -> bool:
        """Whether it needs the optional faiss package (every backend but torch's)."""
        return self.backend != "torch"


#: every index kind by configuration name, in the order ``--index`` lists them
INDEX_KINDS: Mapping[str, IndexKind] = MappingProxyType({kind.name: kind for kind in (
    IndexKind("exact", "torch"),
    IndexKind("faiss-flat", "faiss"),
    IndexKind("faiss-ivf", "faiss-ivf", approximate=True),
    IndexKind("faiss-ivfpq", "faiss-ivfpq", approximate=True),
    IndexKind("faiss-hnsw", "faiss-hnsw", approximate=True),
)})
#: the configuration names (``--index`` choices)
INDEXES: tuple[str, ...] = tuple(INDEX_KINDS)
#: every ``GalleryIndex`` backend
BACKENDS: tuple[str, ...] = tuple(kind.backend for kind in INDEX_KINDS.values())
#: the exact backends (``search()`` takes them)
EXACT_BACKENDS: tuple[str, ...] = tuple(
    kind.backend for kind in INDEX_KINDS.values() if not kind.approximate)
#: the approximate backends (:mod:`robustret.retrieval.ann`'s kinds)
APPROXIMATE: tuple[str, ...] = tuple(
    kind.backend for kind in INDEX_KINDS.values() if kind.approximate)
_BY_BACKEND: Mapping[str, IndexKind] = MappingProxyType(
    {kind.backend: kind for kind in INDEX_KINDS.values()})


def index_kind(name: str) -> IndexKind:
    """The :class:`IndexKind` a configuration calls ``name``.

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    return table_entry(INDEX_KINDS, name, "index")


def backend_kind(backend: str) -> IndexKind:
    """The :class:`IndexKind` built by ``GalleryIndex(backend=backend)``.

    Raises:
        ValueError: an unknown backend; the message lists the valid ones.
    """
    return table_entry(_BY_BACKEND, backend, "backend")
