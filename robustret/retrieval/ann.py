"""Approximate k-nearest-neighbour search with FAISS: IVF-Flat, IVF-PQ and HNSW.

Three kinds, each with a typed spec whose defaults follow the gallery size ``G`` and the
dimension ``D`` (:func:`index_spec`):

- ``"faiss-ivf"`` (:class:`IVFSpec`): k-means into ``nlist`` cells (default ``4 sqrt(G)``, at
  most ``G / 39``: faiss's minimum of 39 training points per cell), vectors kept exactly; a
  query scans its ``nprobe`` nearest cells (default ``sqrt(nlist)``).
- ``"faiss-ivfpq"`` (:class:`IVFPQSpec`): the same cells, each vector stored as ``m`` codes of
  ``nbits`` bits (default ``m`` = the largest divisor of ``D`` up to ``D / 8``, 8 bits: ``m``
  bytes per vector); ``refine > 0`` re-ranks ``refine * k`` candidates with the exact vectors.
- ``"faiss-hnsw"`` (:class:`HNSWSpec`): a navigable small-world graph, ``M`` links per node
  (default 32), ``ef_construction`` (40) and ``ef_search`` (64, at least ``k``) candidates.

Metrics as in :func:`robustret.retrieval.index.search`: ``"l2"`` is the Euclidean distance
(faiss's squared distances, square-rooted), ``"cosine"`` the inner product of L2-normalised
vectors. Scores are the index's estimates (PQ's are approximate). The k found are ordered by
(score, index). Where the index finds fewer than ``k`` items for a query (IVF: the probed cells
hold fewer than ``k``; HNSW: a part of the graph it did not reach), the row is completed with
the nearest items not yet found, by exact search: a full ranking (``k = G``, as mAP asks) is
always complete and its head is the approximate one.

The k-means training sample (``train_size`` vectors, default ``min(G, 64 nlist)``) is drawn
without replacement from a numpy generator seeded by ``seed``, which also seeds faiss's
k-means; IVF indexes are then deterministic. The HNSW graph is built by several threads and
may differ between runs in its last links (``faiss.omp_set_num_threads(1)`` makes it exact).

GPU: when the installed faiss has GPU support and sees a GPU (``faiss.get_num_gpus() > 0``),
IVF and IVF-PQ indexes are trained and searched there (``faiss.StandardGpuResources``); HNSW
has no GPU version in faiss and stays on the CPU. A configuration the GPU index rejects falls
back to the CPU with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from robustret.retrieval.index_kinds import APPROXIMATE
from robustret.retrieval.ranking import order_ties

log = logging.getLogger(__name__)

#: approximate index kinds, as ``GalleryIndex(backend=...)`` names them (the approximate
#: entries of :data:`robustret.retrieval.index_kinds.INDEX_KINDS`; each has a spec in SPECS)
KINDS = APPROXIMATE
#: faiss asks for at least this many training points per k-means centroid
MIN_POINTS_PER_CENTROID = 39
INSTALL_HINT = "pip install 'robustret[faiss]'"

#: ``exact(queries (n, D), k) -> (scores (n, k), indices (n, k))``, the exact search
ExactSearch = Callable[[Tensor, int], "tuple[Tensor, Tensor]"]


def faiss_seed(seed: int) -> int:
    """``seed`` reduced to the non-negative 31-bit int that faiss's k-means takes (the run's
    stream seeds are 64-bit), deterministically."""
    return int(seed) % 2**31


def import_faiss() -> Any:
    """The ``faiss`` module; ImportError saying how to install it when it is missing."""
    try:
        # lazy: optional dependency (extra 'faiss')
        import faiss
    except ImportError as exc:
        raise ImportError(
            f"the faiss indexes need the faiss-cpu package: {INSTALL_HINT}"
        ) from exc
    return faiss


@dataclass(frozen=True)
class IVFSpec:
    """Inverted file, flat vectors.

    Attributes:
        nlist: k-means cells, 1 <= nlist <= train_size.
        nprobe: cells scanned per query, 1 <= nprobe <= nlist.
        train_size: gallery vectors the k-means is trained on, nlist <= train_size <= G.
    """

    nlist: int
    nprobe: int
    train_size: int
    kind: ClassVar[str] = "faiss-ivf"
    #: the options :meth:`ApproximateIndex.tune` changes without rebuilding
    search_options: ClassVar[tuple[str, ...]] = ("nprobe",)


@dataclass(frozen=True)
class IVFPQSpec:
    """Inverted file, product-quantised vectors.

    Attributes:
        nlist, nprobe, train_size: as :class:`IVFSpec`.
        m: sub-quantisers (bytes per vector at 8 bits); must divide D.
        nbits: bits per code, 2 ** nbits <= train_size.
        refine: 0, or re-rank ``refine * k`` PQ candidates by exact distance (keeps the
            vectors too: memory of IVF-Flat plus the codes).
    """

    nlist: int
    nprobe: int
    train_size: int
    m: int
    nbits: int
    refine: int = 0
    kind: ClassVar[str] = "faiss-ivfpq"
    #: the options :meth:`ApproximateIndex.tune` changes without rebuilding
    search_options: ClassVar[tuple[str, ...]] = ("nprobe", "refine")


@dataclass(frozen=True)
class HNSWSpec:
    """Hierarchical navigable small-world graph.

    Attributes:
        M: links per node (memory ~ 2 M int32 per vector on top of the vectors).
        ef_construction: candidates kept while inserting.
        ef_search: candidates kept while searching (raised to k when smaller).
    """

    M: int = 32  # noqa: N815 - faiss's and the literature's name
    ef_construction: int = 40
    ef_search: int = 64
    kind: ClassVar[str] = "faiss-hnsw"
    #: the options :meth:`ApproximateIndex.tune` changes without rebuilding
    search_options: ClassVar[tuple[str, ...]] = ("ef_search",)


AnnSpec = IVFSpec | IVFPQSpec | HNSWSpec
SPECS: dict[str, type[IVFSpec] | type[IVFPQSpec] | type[HNSWSpec]] = {
    spec.kind: spec for spec in (IVFSpec, IVFPQSpec, HNSWSpec)
}
if tuple(SPECS) != KINDS:  # pragma: no cover - a kind added to one table but not the other
    raise ImportError(f"approximate index kinds {KINDS} and specs {tuple(SPECS)} disagree")
_MINIMUM = {"refine": 0, "M": 2}
#: the options :meth:`ApproximateIndex.tune` changes without rebuilding, per kind
SEARCH_OPTIONS = {kind: spec.search_options for kind, spec in SPECS.items()}


def option_names(kind: str) -> tuple[str, ...]:
    """The options of an index kind (the fields of its spec)."""
    _check_kind(kind)
    return tuple(f.name for f in dataclasses.fields(SPECS[kind]))


def _check_kind(kind: str) -> None:
    if kind not in SPECS:
        raise ValueError(f"unknown approximate index {kind!r}; available: {', '.join(KINDS)}")


def check_options(kind: str, options: Mapping[str, object]) -> dict[str, int]:
    """``options`` as a dict of ints, checked against the kind's option names.

    Raises:
        ValueError: unknown kind or option (the message lists the valid ones), or a value that
            is not an integer >= 1 (``refine`` >= 0, ``M`` >= 2).
    """
    valid = option_names(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(str, unknown))} for {kind}; "
                         f"valid: {', '.join(valid)}")
    out: dict[str, int] = {}
    for name, value in options.items():
        low = _MINIMUM.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{kind} option {name} must be an integer >= {low}; got {value!r}")
        out[name] = value
    return out


def default_nlist(size: int) -> int:
    """``4 sqrt(G)`` cells, at most ``G / 39`` (faiss's training minimum), at least 1."""
    return max(1, min(round(4 * math.sqrt(size)), size // MIN_POINTS_PER_CENTROID))


def _largest_divisor(dim: int, limit: int) -> int:
    return max(d for d in range(1, max(1, limit) + 1) if dim % d == 0)


def index_spec(kind: str, size: int, dim: int | None, options: Mapping[str, object] | None = None
               ) -> AnnSpec:
    """The spec of an index of ``kind`` over ``size`` vectors of dimension ``dim``.

    Args:
        kind: one of :data:`KINDS`.
        size: gallery size G >= 1.
        dim: embedding dimension D; None skips what depends on it (PQ's ``m``), for a check
            before the embeddings exist.
        options: explicit values of the spec's fields; the others get defaults from G and D.
    Returns:
        The spec (:class:`IVFSpec`, :class:`IVFPQSpec` or :class:`HNSWSpec`).
    Raises:
        ValueError: an unknown option, or a value the gallery cannot support; the message says
            what to use instead.
    """
    values = check_options(kind, options or {})
    if kind == "faiss-hnsw":
        return HNSWSpec(**values)
    nlist = values.get("nlist", default_nlist(size))
    if nlist > size:
        raise ValueError(
            f"{kind}: nlist={nlist} cells need at least {nlist} gallery items to train "
            f"(faiss asks for {MIN_POINTS_PER_CENTROID * nlist}); the gallery has {size}: use "
            f"nlist <= {max(1, size // MIN_POINTS_PER_CENTROID)} (or leave it out), or index "
            "faiss-hnsw or exact")
    train_size = values.get("train_size", min(size, 64 * nlist))
    if not nlist <= train_size <= size:
        raise ValueError(f"{kind}: train_size must be between nlist={nlist} and the gallery size "
                         f"{size}; got {train_size}")
    nprobe = values.get("nprobe", max(1, min(nlist, round(math.sqrt(nlist)))))
    if nprobe > nlist:
        raise ValueError(f"{kind}: nprobe={nprobe} exceeds nlist={nlist}; use nprobe <= {nlist}")
    if kind == "faiss-ivf":
        return IVFSpec(nlist=nlist, nprobe=nprobe, train_size=train_size)
    nbits = values.get("nbits", min(8, int(math.log2(train_size))))
    if 2 ** nbits > train_size or nbits > 16:
        raise ValueError(
            f"{kind}: nbits={nbits} trains {2 ** nbits} centroids per sub-quantiser and needs as "
            f"many training vectors; {train_size} are used: use nbits <= "
            f"{min(16, int(math.log2(train_size)))}, or index faiss-ivf or exact")
    if "m" in values:
        m = values["m"]
        if dim is not None and dim % m:
            divisors = [d for d in range(1, dim + 1) if dim % d == 0]
            raise ValueError(f"{kind}: m={m} sub-quantisers must divide the dimension {dim}; "
                             f"use one of {', '.join(map(str, divisors))}")
    else:
        m = _largest_divisor(dim, dim // 8) if dim is not None else 1
    return IVFPQSpec(nlist=nlist, nprobe=nprobe, train_size=train_size, m=m, nbits=nbits,
                     refine=values.get("refine", 0))


def spec_dict(spec: AnnSpec) -> dict[str, Any]:
    """JSON-ready description: ``{"kind": ..., <fields>}``."""
    return {"kind": spec.kind, **dataclasses.asdict(spec)}


def _gpu_resources(faiss: Any) -> Any | None:
    if not hasattr(faiss, "StandardGpuResources"):
        return None
    try:
        return faiss.StandardGpuResources() if faiss.get_num_gpus() > 0 else None
    except RuntimeError as exc:  # a driver problem: say so and search on the CPU
        log.warning("faiss GPU unavailable (%s); using the CPU", exc)
        return None


class ApproximateIndex:
    """A trained faiss index over a gallery (no labels; :class:`GalleryIndex` keeps them).

    Args:
        gallery: (G, D) float embeddings (copied; the caller's tensor is not changed).
        metric: ``"l2"`` or ``"cosine"``.
        spec: the index's parameters (:func:`index_spec`).
        seed: seeds the training sample and faiss's k-means.
        gpu: True / False forces / forbids faiss's GPU; None uses it when faiss has one (IVF
            kinds only).
    """

    def __init__(self, gallery: Tensor, metric: str, spec: AnnSpec, *, seed: int = 0,
                 gpu: bool | None = None) -> None:
        faiss = import_faiss()
        self.metric, self.spec = metric, spec
        vectors = faiss_array(gallery, copy=metric == "cosine")  # (G, D), normalised in place
        if metric == "cosine":
            faiss.normalize_L2(vectors)
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        size, dim = vectors.shape
        index = self._make(faiss, spec, dim, faiss_metric, seed)
        self.on_gpu = False
        if not isinstance(spec, HNSWSpec) and gpu is not False:
            resources = _gpu_resources(faiss)
            if resources is None and gpu:
                raise ValueError("gpu=True but this faiss has no GPU (install faiss-gpu) or "
                                 "sees none")
            if resources is not None:
                try:
                    index = faiss.index_cpu_to_gpu(resources, 0, index)
                    self._resources, self.on_gpu = resources, True
                except RuntimeError as exc:
                    log.warning("%s on the GPU failed (%s); using the CPU", spec.kind, exc)
        if isinstance(spec, (IVFSpec, IVFPQSpec)):
            rows = np.random.default_rng(seed).choice(size, spec.train_size, replace=False)
            index.train(vectors[np.sort(rows)])
        index.add(vectors)
        self.index = index
        self._params = (faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace())
        self._searched_k = 0

    @staticmethod
    def _make(faiss: Any, spec: AnnSpec, dim: int, faiss_metric: int, seed: int) -> Any:
        if isinstance(spec, HNSWSpec):
            index = faiss.IndexHNSWFlat(dim, spec.M, faiss_metric)
            index.hnsw.efConstruction = spec.ef_construction
            return index
        quantizer = (faiss.IndexFlatIP(dim) if faiss_metric == faiss.METRIC_INNER_PRODUCT
                     else faiss.IndexFlatL2(dim))
        if isinstance(spec, IVFSpec):
            ivf = faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss_metric)
        else:
            ivf = faiss.IndexIVFPQ(quantizer, dim, spec.nlist, spec.m, spec.nbits, faiss_metric)
            ivf.pq.cp.seed = faiss_seed(seed)
        ivf.cp.seed = faiss_seed(seed)  # faiss's wrapper keeps ``quantizer`` alive with ``ivf``
        if isinstance(spec, IVFPQSpec) and spec.refine:
            refined = faiss.IndexRefineFlat(ivf)
            refined.k_factor = float(spec.refine)
            return refined
        return ivf

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the kind, its parameters, the metric and whether it runs on the GPU."""
        return {**spec_dict(self.spec), "metric": self.metric, "gpu": self.on_gpu}

    def tune(self, **changes: int) -> None:
        """Change the search-time options without rebuilding: ``nprobe`` (IVF kinds),
        ``ef_search`` (HNSW), ``refine`` (IVF-PQ built with ``refine > 0``).

        Raises:
            ValueError: an option that needs a rebuild, or a value out of range.
        """
        kind = self.spec.kind
        allowed = SEARCH_OPTIONS[kind]
        other = sorted(set(changes) - set(allowed))
        if other:
            raise ValueError(f"{', '.join(other)} of {kind} needs a new index; tune changes "
                             f"{', '.join(allowed)}")
        values = check_options(kind, changes)
        spec = self.spec
        if isinstance(spec, (IVFSpec, IVFPQSpec)) and values.get("nprobe", 0) > spec.nlist:
            raise ValueError(f"{kind}: nprobe={values['nprobe']} exceeds nlist={spec.nlist}")
        if isinstance(spec, IVFPQSpec) and "refine" in values:
            if not spec.refine or values["refine"] < 1:
                raise ValueError("refine can be tuned (to >= 1) only on an index built with "
                                 "refine >= 1 (it keeps the exact vectors)")
            self.index.k_factor = float(values["refine"])
        self.spec = dataclasses.replace(spec, **values)
        self._searched_k = 0

    def _set_search_params(self, k: int) -> None:
        if k == self._searched_k:
            return
        if isinstance(self.spec, HNSWSpec):
            self.index.hnsw.efSearch = max(self.spec.ef_search, k)
        else:
            self._params.set_index_parameter(self.index, "nprobe", self.spec.nprobe)
        self._searched_k = k

    def search(self, queries: Tensor, k: int, exact: ExactSearch, *, chunk_size: int = 1024
               ) -> tuple[Tensor, Tensor]:
        """The approximate k nearest gallery items of each query, best first.

        Args:
            queries: (Q, D) float embeddings (any device; searched on the index's).
            k: results per query, 1 <= k <= G.
            exact: the exact search of the same gallery, used to complete rows where the index
                finds fewer than k items.
            chunk_size: queries per faiss call (bounds the (chunk, k) result buffers).
        Returns:
            ``(scores, indices)``: (Q, k) float32 distances (l2) or similarities (cosine), the
            index's estimates, and (Q, k) int64 gallery indices, on the queries' device.
        """
        self._set_search_params(k)
        larger = self.metric == "cosine"
        scores_out, indices_out = [], []
        for start in range(0, queries.shape[0], chunk_size):
            chunk = queries[start:start + chunk_size]
            q = faiss_array(chunk, copy=self.metric == "cosine")
            if self.metric == "cosine":
                # lazy: optional dependency (extra 'faiss')
                import faiss

                faiss.normalize_L2(q)
            values, indices = self.index.search(q, k)
            values_t, indices_t = torch.from_numpy(values), torch.from_numpy(indices).long()
            if self.metric == "l2":
                values_t = values_t.clamp_(min=0.0).sqrt_()
            missing = indices_t < 0
            values_t, indices_t = order_ties(
                values_t.masked_fill(missing, -math.inf if larger else math.inf),
                indices_t.masked_fill(missing, len(self)), larger)  # the unfound sort last
            if bool(missing.any()):
                _complete_rows(values_t, indices_t, missing.sum(dim=1), chunk, exact)
            scores_out.append(values_t)
            indices_out.append(indices_t)
        if not scores_out:
            return (torch.empty(0, k, device=queries.device),
                    torch.empty(0, k, dtype=torch.int64, device=queries.device))
        return torch.cat(scores_out).to(queries.device), torch.cat(indices_out).to(queries.device)


def faiss_array(x: Tensor, *, copy: bool) -> np.ndarray:
    """(N, D) C-contiguous float32 numpy array of ``x`` for faiss: a view where possible,
    unless ``copy`` (for faiss's in-place ``normalize_L2``, which must not rescale the caller's
    tensor: a CPU tensor's ``.numpy()`` shares its memory)."""
    array = x.detach().float().cpu().numpy()
    if copy:
        return np.array(array, dtype=np.float32, order="C", copy=True)
    return np.ascontiguousarray(array, dtype=np.float32)


def _complete_rows(values: Tensor, indices: Tensor, missing: Tensor, queries: Tensor,
                   exact: ExactSearch) -> None:
    """Fill, in place, the last ``missing[i]`` slots of row i of (n, k) ``values`` /
    ``indices`` with the exactly nearest items not among the row's found ones.

    The exact top-k holds at least ``k - found`` items outside the ``found`` ones, so it
    always has enough to fill the row."""
    k = indices.shape[1]
    rows = missing.nonzero().squeeze(1)
    exact_values, exact_indices = exact(queries[rows].to(queries.device), k)
    exact_values, exact_indices = exact_values.cpu(), exact_indices.cpu()
    for j, row in enumerate(rows.tolist()):
        found = k - int(missing[row])
        fresh = ~torch.isin(exact_indices[j], indices[row, :found])
        fill = fresh.nonzero().squeeze(1)[: k - found]
        indices[row, found:] = exact_indices[j, fill]
        values[row, found:] = exact_values[j, fill]


def recall_at_k(approximate: Tensor, exact: Tensor) -> Tensor:
    """Share of the exact k nearest items that the approximate search found, per query.

    Args:
        approximate: (Q, k) int64 gallery indices from the approximate index.
        exact: (Q, k) int64 gallery indices from exact search (same k).
    Returns:
        (Q,) float32 in [0, 1]: ``|approximate_i & exact_i| / k``. Items tied in distance
        with the exact k-th are counted as misses when the index returns the other one.
    """
    if approximate.shape != exact.shape or approximate.dim() != 2:
        raise ValueError(f"approximate and exact must both be (Q, k); got "
                         f"{tuple(approximate.shape)} and {tuple(exact.shape)}")
    hits = (approximate[:, :, None] == exact[:, None, :].to(approximate.device)).any(dim=2)
    return hits.float().mean(dim=1)
