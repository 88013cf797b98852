"""Exact k-nearest-neighbour search over a gallery of embeddings, in bounded memory.

Ranking algebra (``metric="l2"``): ``||q - g||^2 = ||q||^2 + ||g||^2 - 2 q.g``. Within one
query row ``||q||^2`` is a constant, so the ranking only needs ``s = ||g||^2 - 2 q.g``, one
fused ``addmm(||g||^2, q, g^T, alpha=-2)`` written into a reused ``(chunk, G)`` buffer; the
constant, the clamp at 0 and the square root are applied to the ``k`` results only.
``metric="cosine"``: both sides L2-normalised, ``s = q.g``, larger is closer.

Memory: one ``(chunk_size, G)`` float buffer (24,300 gallery items x 1024 queries = 100 MB)
whatever the number of queries, plus the ``(Q, k)`` outputs.

Top-k by block pruning (when the gallery is large against k): the ``G`` columns of a score row
are cut into ``W = G // R`` interleaved blocks of ``R = 32`` columns (block ``w`` holds columns
``w, w + W, w + 2W, ...``; the last ``G - R W`` columns are a tail that is always kept). One
reduction over the block axis gives each block's best score ``b_w``; the candidates are the
columns of the ``k + 1`` blocks with the best ``b_w`` (the worst of those is ``T``) plus the
tail. Every score strictly better than ``T`` lies in a block whose best beats ``T``, a chosen
one, so it is a candidate; and the candidates hold at least ``k + 1`` scores as good as ``T``
(one per chosen block). Hence when the candidates' ``k``-th and ``(k + 1)``-th scores differ,
their ``k`` best are strictly better than ``T`` and are the row's ``k`` best, every tied copy
included; when they are equal, the row takes the tie-across-the-cut path below. The results
are those of a plain ``topk`` over the whole row, bit for bit, from ``(k + 1) R`` candidates.

Ties (bit-equal ranking scores) go to the lower gallery index, deterministically:
``topk`` is asked for ``k + 1`` candidates; the ``k`` kept are re-ordered by (score, index)
(sort by index, then a stable sort by score, which cannot reorder distinct scores); a row whose
``k``-th and ``(k+1)``-th scores are equal (a tie across the cut, where ``topk`` may pick any
of the tied items) is redone with a full stable sort of that row. Ties are decided on the
ranking score, which is computed by BLAS: two duplicated gallery rows only tie when the BLAS
kernel returns bit-equal dot products for them (it does for exactly representable data; for
general floats it may differ in the last bit, which then decides).

Backend ``"faiss"`` (optional extra ``faiss``): ``IndexFlatL2`` / ``IndexFlatIP`` on
normalised vectors, same interface and results (up to float rounding; its results are
re-ordered by (score, index) within the ``k`` found, but a tie across the cut is faiss's choice).

Backends ``"faiss-ivf"``, ``"faiss-ivfpq"``, ``"faiss-hnsw"``: approximate search, same
interface (:mod:`robustret.retrieval.ann`); the index is trained when the ``GalleryIndex`` is
made, with ``options`` (``nlist``, ``nprobe``, ``M``, ...) over defaults from the gallery size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustret.core.checks import check_embeddings, check_labels
from robustret.retrieval import ann
from robustret.retrieval.index_kinds import APPROXIMATE, BACKENDS, EXACT_BACKENDS, backend_kind
from robustret.retrieval.ranking import Metric, get_metric, order_ties

log = logging.getLogger(__name__)

__all__ = ["APPROXIMATE", "BACKENDS", "EXACT_BACKENDS", "GalleryIndex", "search"]


def _check_backend(backend: str) -> None:
    if backend_kind(backend).needs_faiss:  # unknown: ValueError listing the backends
        try:
            # lazy: optional dependency (extra 'faiss')
            import faiss  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"backend={backend!r} needs the faiss-cpu package: pip install 'robustret[faiss]'"
            ) from exc


def _check_k(k: int, gallery_size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > gallery_size:
        raise ValueError(f"k={k} exceeds the gallery size {gallery_size}; use k <= {gallery_size}")


class _Prepared:
    """Gallery-side terms computed once.

    On CUDA (or any non-CPU device): the (G, D) float32 matrix and ``||g||^2`` for ``addmm``.
    On the CPU the product runs through numpy's ``matmul`` (why not torch's ``mm``: see
    docs/benchmarks.md, "Retrieval") on zero-copy views, with the ``||g||^2`` term folded into
    the product by one extra column: ``[q, 1] . [-2 g, ||g||^2]`` (one GEMM, no second pass
    over the (chunk, G) block).
    """

    def __init__(self, gallery: Tensor, metric: Metric) -> None:
        gallery = gallery.detach().float().contiguous()
        if metric.name == "cosine":
            gallery = torch.nn.functional.normalize(gallery, dim=1)
        self.metric = metric
        self.gallery = gallery
        self.bias: Tensor | None = None
        self.cpu_matrix: Any = None  # (D or D + 1, G) numpy view for the CPU path
        if metric.name == "l2":
            self.bias = gallery.pow(2).sum(dim=1).unsqueeze(0)  # (1, G)
        if gallery.device.type == "cpu":
            if metric.name == "l2":
                augmented = torch.cat([gallery * -2.0, self.bias.T], dim=1)  # (G, D + 1)
                self.cpu_matrix = augmented.numpy().T
            else:
                self.cpu_matrix = gallery.numpy().T  # (D, G) view of a row-major (G, D)


def _topk_rows(scores: Tensor, k: int, descending: bool) -> tuple[Tensor, Tensor]:
    """Deterministic top-k of each row of ``scores`` (n, G): ties to the lower column index."""
    n, size = scores.shape
    if k >= size:
        values, indices = scores.sort(dim=1, descending=descending, stable=True)
        return values, indices
    values, indices = torch.topk(scores, k + 1, dim=1, largest=descending, sorted=True)
    cut_tie = values[:, k - 1] == values[:, k]  # (n,)
    values, indices = order_ties(values[:, :k], indices[:, :k], descending)
    if bool(cut_tie.any()):
        rows = cut_tie.nonzero().squeeze(1)
        full_values, full_indices = scores[rows].sort(dim=1, descending=descending, stable=True)
        values[rows], indices[rows] = full_values[:, :k], full_indices[:, :k]
    return values, indices


#: columns per interleaved block of the pruned top-k (see the module docstring)
_PRUNE_BLOCK = 32


def _prunes(size: int, k: int) -> bool:
    """Whether the pruned top-k pays: at least four times fewer candidates than columns."""
    return 4 * (k + 1) * _PRUNE_BLOCK <= size


def _topk_pruned(scores: Tensor, k: int, descending: bool) -> tuple[Tensor, Tensor]:
    """:func:`_topk_rows` of ``scores`` (n, G), computed on ``(k + 1) * 32`` candidate columns
    per row chosen by interleaved-block bests (module docstring); needs ``_prunes(G, k)``."""
    n, size = scores.shape
    width = size // _PRUNE_BLOCK
    main = scores[:, : _PRUNE_BLOCK * width].view(n, _PRUNE_BLOCK, width)
    bests = main.amax(dim=1) if descending else main.amin(dim=1)  # (n, W): each block's best
    blocks = torch.topk(bests, k + 1, dim=1, largest=descending, sorted=False).indices
    offsets = torch.arange(0, _PRUNE_BLOCK * width, width, device=scores.device)  # (R,)
    columns = (blocks[:, :, None] + offsets).reshape(n, -1)  # (n, (k + 1) R)
    if _PRUNE_BLOCK * width < size:  # the tail columns are candidates of every row
        tail = torch.arange(_PRUNE_BLOCK * width, size, device=scores.device)
        columns = torch.cat([columns, tail.expand(n, -1)], dim=1)
    values, picked = torch.topk(scores.gather(1, columns), k + 1, dim=1, largest=descending,
                                sorted=True)
    indices = columns.gather(1, picked)
    redo = values[:, k - 1] == values[:, k]  # (n,)
    values, indices = order_ties(values[:, :k], indices[:, :k], descending)
    if bool(redo.any()):  # a tie across the cut: the whole row, stably sorted
        rows = redo.nonzero().squeeze(1)
        full_values, full_indices = scores[rows].sort(dim=1, descending=descending, stable=True)
        values[rows], indices[rows] = full_values[:, :k], full_indices[:, :k]
    return values, indices


def _search_torch(
    queries: Tensor, prepared: _Prepared, k: int, chunk_size: int
) -> tuple[Tensor, Tensor]:
    gallery, metric = prepared.gallery, prepared.metric
    num_queries, size = queries.shape[0], gallery.shape[0]
    device = queries.device
    scores_out = torch.empty(num_queries, k, dtype=torch.float32, device=device)
    indices_out = torch.empty(num_queries, k, dtype=torch.int64, device=device)
    rows = min(chunk_size, num_queries)
    buffer = torch.empty(
        rows, size, dtype=torch.float32, device=device
    )  # reused: no page faults per chunk
    on_cpu = prepared.cpu_matrix is not None and device.type == "cpu"
    if on_cpu:
        width = prepared.cpu_matrix.shape[0]
        query_buffer = torch.ones(rows, width, dtype=torch.float32)  # last column stays 1 for l2
    descending = metric.larger_is_closer
    for start in range(0, num_queries, chunk_size):
        q = queries[start:start + chunk_size].float()
        n = q.shape[0]
        block = buffer[:n]  # (n, G), contiguous
        if metric.name == "cosine":
            q = torch.nn.functional.normalize(q, dim=1)
        if on_cpu:
            query_buffer[:n, : q.shape[1]] = q
            np.matmul(query_buffer[:n].numpy(), prepared.cpu_matrix, out=block.numpy())
        elif metric.name == "cosine":
            torch.mm(q, gallery.T, out=block)
        else:
            torch.addmm(prepared.bias, q, gallery.T, alpha=-2.0, out=block)
        # cosine: block = q.g; l2: block = ||g||^2 - 2 q.g, the squared distance minus ||q||^2.
        select = _topk_pruned if _prunes(size, k) else _topk_rows
        values, indices = select(block, k, descending)
        if metric.name == "l2":
            values = values.add_(q.pow(2).sum(dim=1, keepdim=True)).clamp_(min=0.0).sqrt_()
        scores_out[start:start + n] = values
        indices_out[start:start + n] = indices
    return scores_out, indices_out


def _search_faiss(
    queries: Tensor, gallery: Tensor, metric: Metric, k: int
) -> tuple[Tensor, Tensor]:
    # lazy: optional dependency (extra 'faiss')
    import faiss

    cosine = metric.name == "cosine"  # normalised in place below: copies
    g = ann.faiss_array(gallery, copy=cosine)
    q = ann.faiss_array(queries, copy=cosine)
    if cosine:
        faiss.normalize_L2(g)
        faiss.normalize_L2(q)
        index = faiss.IndexFlatIP(g.shape[1])
    else:
        index = faiss.IndexFlatL2(g.shape[1])
    index.add(g)
    values, indices = index.search(q, k)
    values_t = torch.from_numpy(values)
    if metric.name == "l2":
        values_t = values_t.clamp_(min=0.0).sqrt_()
    values_t, indices_t = order_ties(
        values_t, torch.from_numpy(indices).long(), metric.larger_is_closer
    )
    return values_t.to(queries.device), indices_t.to(queries.device)


def search(
    queries: Tensor,
    gallery: Tensor,
    k: int,
    metric: str = "l2",
    *,
    chunk_size: int = 1024,
    backend: str = "torch",
) -> tuple[Tensor, Tensor]:
    """Exact k nearest gallery items of every query, best first.

    Args:
        queries: (Q, D) float embeddings.
        gallery: (G, D) float embeddings on the same device.
        k: results per query, 1 <= k <= G.
        metric: ``"l2"`` (Euclidean distance, smaller is closer) or ``"cosine"`` (cosine
            similarity, larger is closer). No hidden normalisation for ``"l2"``.
        chunk_size: queries per matrix product; bounds the memory to one (chunk_size, G) buffer.
        backend: ``"torch"`` or ``"faiss"`` (CPU, needs faiss-cpu). Exact search only: the
            approximate backends need a trained index, :class:`GalleryIndex`.
    Returns:
        ``(scores, indices)``: (Q, k) float32 distances (l2) or similarities (cosine) and
        (Q, k) int64 gallery indices, on the queries' device; ties go to the lower index.
    Raises:
        ValueError: bad shapes, unknown metric/backend, k out of range, chunk_size < 1.

    Speed: for large CPU searches, ``OPENBLAS_THREAD_TIMEOUT=4`` in the environment before numpy
    is loaded stops OpenBLAS threads spinning into the top-k step (measured in
    docs/benchmarks.md, "Retrieval"); it is process-wide, so robustret leaves it to you.
    """
    return _search(queries, gallery, k, get_metric(metric), chunk_size, backend, None)


def _search(
    queries: Tensor, gallery: Tensor, k: int, metric: Metric, chunk_size: int, backend: str,
    prepared: _Prepared | None,
) -> tuple[Tensor, Tensor]:
    check_embeddings(queries, "queries")
    check_embeddings(gallery, "gallery")
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"queries have dimension {queries.shape[1]} but the gallery has {gallery.shape[1]}"
        )
    if queries.device != gallery.device:
        raise ValueError(f"queries are on {queries.device} but the gallery is on {gallery.device}")
    _check_k(k, gallery.shape[0])
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _check_backend(backend)
    if backend in APPROXIMATE:
        exact = " or ".join(map(repr, EXACT_BACKENDS))
        raise ValueError(f"search() is exact (backend {exact}); for {backend!r} "
                         f"build GalleryIndex(embeddings, labels, backend={backend!r})")
    if queries.shape[0] == 0:
        return (
            torch.empty(0, k, device=queries.device),
            torch.empty(0, k, dtype=torch.int64, device=queries.device),
        )
    with torch.inference_mode():
        if backend == "faiss":
            return _search_faiss(queries, gallery, metric, k)
        prepared = prepared if prepared is not None else _Prepared(gallery, metric)
        return _search_torch(queries, prepared, k, chunk_size)


class GalleryIndex:
    """A searchable gallery: embeddings, their labels, a metric and free-form metadata.

    Args:
        embeddings: (G, D) float gallery embeddings (rows are items).
        labels: (G,) int64 class of each item.
        metric: ``"l2"`` or ``"cosine"``.
        metadata: JSON-like information kept with the index (source checkpoint hash, ...).
        backend: ``"torch"`` or ``"faiss"`` (exact), or an approximate index:
            ``"faiss-ivf"``, ``"faiss-ivfpq"``, ``"faiss-hnsw"`` (trained here).
        chunk_size: queries per matrix product (see :func:`search`).
        options: the approximate index's parameters (``nlist``, ``nprobe``, ``train_size``,
            ``m``, ``nbits``, ``refine``, ``M``, ``ef_construction``, ``ef_search``; see
            :func:`robustret.retrieval.ann.index_spec`); the others get defaults from the
            gallery size.
        seed: seeds the approximate index's training sample and k-means.
        gpu: approximate indexes: None uses faiss's GPU when it has one, False never.
    Raises:
        ValueError: bad shapes, metric, backend or options, or a gallery too small for them
            (the message says what to use).
        ImportError: a faiss backend without faiss installed (says how to install it).
    """

    def __init__(
        self,
        embeddings: Tensor,
        labels: Tensor,
        metric: str = "l2",
        metadata: dict[str, Any] | None = None,
        *,
        backend: str = "torch",
        chunk_size: int = 1024,
        options: Mapping[str, int] | None = None,
        seed: int = 0,
        gpu: bool | None = None,
    ) -> None:
        check_embeddings(embeddings, "embeddings")
        check_labels(labels, embeddings.shape[0], "labels")
        self.metric = get_metric(metric)
        _check_backend(backend)
        self.embeddings = embeddings.detach().float().contiguous()
        self.labels = labels.detach().long()
        self.metadata = dict(metadata or {})
        self.backend = backend
        self.chunk_size = chunk_size
        self._prepared: _Prepared | None = None
        self._approximate: Any = None  # ann.ApproximateIndex
        if backend in APPROXIMATE:
            spec = ann.index_spec(backend, len(self), self.dim, options)
            self._approximate = ann.ApproximateIndex(self.embeddings, self.metric.name, spec,
                                                     seed=seed, gpu=gpu)
        elif options:
            raise ValueError(f"options apply to the approximate backends "
                             f"({', '.join(APPROXIMATE)}); backend {backend!r} takes none")

    @property
    def is_exact(self) -> bool:
        """True for the exact backends (``torch``, ``faiss``)."""
        return self._approximate is None

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the backend, the metric and, when approximate, its parameters."""
        if self._approximate is not None:
            return {"backend": self.backend, **self._approximate.describe()}
        return {"backend": self.backend, "metric": self.metric.name}

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.embeddings.shape[1])

    def tune(self, **changes: int) -> None:
        """An approximate index's search-time options (``nprobe``, ``ef_search``,
        ``refine``), without rebuilding; see :meth:`robustret.retrieval.ann.ApproximateIndex.tune`.
        """
        if self._approximate is None:
            raise ValueError(f"backend {self.backend!r} is exact: it has nothing to tune")
        self._approximate.tune(**changes)

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(scores, indices)``, each (Q, k), best first; see :func:`search` (approximate
        backends: :meth:`robustret.retrieval.ann.ApproximateIndex.search`)."""
        if self._approximate is None:
            return self._exact(queries, k, self.backend)
        check_embeddings(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]} but the gallery has "
                             f"{self.dim}")
        _check_k(k, len(self))
        with torch.inference_mode():
            return self._approximate.search(queries, k, self.exact_search,
                                            chunk_size=self.chunk_size)

    def exact_search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Exact ``(scores, indices)`` with the torch backend, whatever this index's backend
        (the reference an approximate index is measured against)."""
        return self._exact(queries, k, "torch")

    def _exact(self, queries: Tensor, k: int, backend: str) -> tuple[Tensor, Tensor]:
        if backend == "torch" and self._prepared is None:
            self._prepared = _Prepared(self.embeddings, self.metric)
        return _search(
            queries.to(self.embeddings.device),
            self.embeddings,
            k,
            self.metric,
            self.chunk_size,
            backend,
            self._prepared if backend == "torch" else None,
        )

    def retrieve_labels(self, queries: Tensor, k: int) -> Tensor:
        """(Q, k) int64 labels of the k nearest gallery items of each query."""
        _, indices = self.search(queries, k)
        return self.labels.to(indices.device)[indices]

    def class_counts(self) -> Tensor:
        """(C,) int64 number of gallery items per class (C = max label + 1)."""
        return torch.bincount(
            self.labels.cpu(), minlength=int(self.labels.max()) + 1 if len(self) else 0
        )

    def __repr__(self) -> str:
        return (
            f"GalleryIndex(size={len(self)}, dim={self.dim}, metric={self.metric.name!r}, "
            f"backend={self.backend!r})"
        )
