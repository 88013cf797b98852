"""Exact search: equals brute force, deterministic ties, save/load, faiss parity."""

from __future__ import annotations

import pytest
import torch

from robustret.retrieval import GalleryIndex, cosine_similarities, l2_distances, search


def _brute(q, g, k, metric):
    q64, g64 = q.double(), g.double()
    if metric == "l2":
        scores = torch.cdist(q64, g64)
        order = scores.sort(dim=1, stable=True).indices
    else:
        scores = cosine_similarities(q64, g64)
        order = scores.sort(dim=1, descending=True, stable=True).indices
    idx = order[:, :k]
    return scores.gather(1, idx), idx


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_search_equals_brute_force(metric, k, device) -> None:
    generator = torch.Generator().manual_seed(k)
    g = torch.randn(200, 16, generator=generator).to(device)
    q = torch.randn(37, 16, generator=generator).to(device)  # not a multiple of chunk_size
    scores, idx = search(q, g, k, metric, chunk_size=8)
    ref_scores, ref_idx = _brute(q.cpu(), g.cpu(), k, metric)
    assert idx.dtype == torch.int64 and idx.shape == (37, k)
    assert torch.equal(idx.cpu(), ref_idx)
    assert torch.allclose(scores.cpu().double(), ref_scores, atol=1e-4)


def test_duplicated_rows_tie_to_lower_index() -> None:
    # integer data: every dot product is exact, so duplicates give bit-equal scores
    base = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    g = torch.cat([base[2:], base, base, base[:1]])  # rows: far, 0, 1, far, 0, 1, far, 0
    q = torch.zeros(3, 2)
    for metric in ("l2",):
        _, idx = search(q, g, 2, metric)
        assert idx.tolist() == [[1, 4]] * 3  # three copies of the origin at 1, 4, 7: lowest two
        _, idx = search(q, g, 4, metric)
        assert idx.tolist() == [[1, 4, 7, 2]] * 3
    _, idx = search(torch.tensor([[1.0, 1.0]]), g, 3, "cosine")
    assert idx.tolist() == [[0, 3, 6]]  # (5, 5) rows all have cosine 1: lower index first


def test_l2_and_cosine_disagree() -> None:
    g = torch.tensor([[10.0, 0.0], [0.9, 0.5]])
    q = torch.tensor([[1.0, 0.0]])
    assert search(q, g, 1, "l2")[1].item() == 1  # near in space
    assert search(q, g, 1, "cosine")[1].item() == 0  # same direction
    assert torch.allclose(l2_distances(q, g), torch.tensor([[9.0, (0.01 + 0.25) ** 0.5]]))


def test_index_labels_and_metadata() -> None:
    g = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 3
    index = GalleryIndex(g, labels, "cosine", {"source": "x"})
    q = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    assert index.metadata == {"source": "x"} and index.metric.name == "cosine"
    assert torch.equal(index.retrieve_labels(q, 4), labels[index.search(q, 4)[1]])


def test_bad_arguments() -> None:
    g = torch.randn(5, 3)
    with pytest.raises(ValueError, match="metric"):
        search(g, g, 1, "manhattan")
    with pytest.raises(ValueError, match="exceeds"):
        search(g, g, 6)
    with pytest.raises(ValueError, match="dimension"):
        search(torch.randn(2, 4), g, 1)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_faiss_backend_matches(metric) -> None:
    pytest.importorskip("faiss", reason="faiss-cpu not installed (extra 'faiss')")
    generator = torch.Generator().manual_seed(1)
    g, q = torch.randn(300, 32, generator=generator), torch.randn(50, 32, generator=generator)
    s1, i1 = search(q, g, 5, metric)
    s2, i2 = search(q, g, 5, metric, backend="faiss")
    assert torch.equal(i1, i2)
    assert torch.allclose(s1, s2, atol=1e-3)


def test_the_index_kinds_table_derives_every_list_of_index_names() -> None:
    from robustret.experiment.config import INDEX_BACKENDS, INDEXES
    from robustret.retrieval import ann, index
    from robustret.retrieval.index_kinds import INDEX_KINDS, backend_kind, index_kind

    assert INDEXES == tuple(INDEX_KINDS) == (
        "exact", "faiss-flat", "faiss-ivf", "faiss-ivfpq", "faiss-hnsw")
    assert INDEX_BACKENDS == {name: kind.backend for name, kind in INDEX_KINDS.items()}
    assert index.BACKENDS == ("torch", "faiss", "faiss-ivf", "faiss-ivfpq", "faiss-hnsw")
    assert index.APPROXIMATE == ann.KINDS == tuple(ann.SPECS) == tuple(ann.SEARCH_OPTIONS)
    assert [kind.name for kind in INDEX_KINDS.values() if kind.approximate] == list(ann.KINDS)
    assert backend_kind("faiss") is index_kind("faiss-flat")
    assert not index_kind("exact").needs_faiss and index_kind("faiss-flat").needs_faiss
    with pytest.raises(ValueError, match="unknown index .ivf.; choose from exact, faiss-flat"):
        index_kind("ivf")
    with pytest.raises(ValueError, match="unknown backend .ivf.; choose from torch, faiss"):
        GalleryIndex(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), backend="ivf")


@pytest.mark.parametrize("backend", ["faiss", "faiss-ivf", "faiss-ivfpq", "faiss-hnsw"])
@pytest.mark.parametrize("order", [("cosine", "l2"), ("l2", "cosine")])
def test_every_backend_leaves_its_inputs_alone_and_agrees_with_exact_search(backend, order
                                                                            ) -> None:
    """One gallery and one query set, searched by a backend in both metrics in both orders:
    the inputs are unchanged (a cosine search once normalised them in place, and every later
    L2 search ran against a unit-norm gallery) and each metric's rows match exact search.
    The seed is a 64-bit stream seed, as the experiment passes it (faiss takes 31 bits)."""
    pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(7)
    gallery = 3.0 * torch.randn(1200, 8, generator=generator)  # norms far from 1
    queries = 3.0 * torch.randn(40, 8, generator=generator)
    labels = torch.arange(1200) % 5
    gallery_before, queries_before = gallery.clone(), queries.clone()
    options = {"nlist": 4, "nprobe": 4} if backend in ("faiss-ivf", "faiss-ivfpq") else None
    if backend == "faiss-ivfpq":
        options = {**options, "m": 4, "nbits": 4, "refine": 50}
    for metric in order:
        exact = GalleryIndex(gallery, labels, metric).search(queries, k=5)
        kwargs = {} if backend == "faiss" else {"options": options, "seed": 2**62 + 12345}
        found = GalleryIndex(gallery, labels, metric, backend=backend, **kwargs).search(
            queries, k=5)
        assert torch.equal(gallery, gallery_before) and torch.equal(queries, queries_before)
        agree = (found[1] == exact[1]).float().mean().item()
        assert agree >= (1.0 if backend == "faiss" else 0.9), (metric, agree)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("size", [1600, 1613])  # 1613: 13 tail columns outside the blocks
def test_pruned_topk_is_the_plain_topk_bit_for_bit(descending, size) -> None:
    """The block-pruned top-k equals the plain one, ties included: integer scores from a small
    range tie everywhere (within the k, across the cut, among block bests); float rows don't."""
    from robustret.retrieval.index import _prunes, _topk_pruned, _topk_rows

    generator = torch.Generator().manual_seed(size)
    tied = torch.randint(0, 40, (64, size), generator=generator).float()
    smooth = torch.randn(64, size, generator=generator)
    for scores in (tied, smooth):
        for k in (1, 5, 10):
            assert _prunes(size, k)
            plain = _topk_rows(scores, k, descending)
            pruned = _topk_pruned(scores, k, descending)
            assert torch.equal(pruned[1], plain[1]) and torch.equal(pruned[0], plain[0])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_search_of_a_large_gallery_equals_brute_force(metric) -> None:
    generator = torch.Generator().manual_seed(3)
    g = torch.randn(3000, 8, generator=generator)  # large enough for the pruned top-k
    q = torch.randn(20, 8, generator=generator)
    g[2000] = g[100]  # a duplicated row: both tie for the query below
    q[0] = g[100]
    scores, idx = search(q, g, 10, metric)
    ref_scores, ref_idx = _brute(q, g, 10, metric)
    assert torch.equal(idx, ref_idx) and idx[0, :2].tolist() == [100, 2000]
    assert torch.allclose(scores.double(), ref_scores, atol=1e-4)
