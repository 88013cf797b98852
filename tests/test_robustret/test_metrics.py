"""Metrics against hand-worked cases and a brute-force python reference."""

from __future__ import annotations

import pytest
import torch

from robustret.metrics import (
    map_at_r,
    mean_average_precision,
    precision_at_k,
    recall_at_k,
    topk_hit_rate,
)

# two queries of class 0 and 1; ranked gallery labels (gallery: 2 of class 0, 2 of class 1)
RETRIEVED = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]])
QUERIES = torch.tensor([0, 1])
COUNTS = torch.tensor([2, 2])


def test_hand_worked() -> None:
    assert topk_hit_rate(RETRIEVED, QUERIES, ks=(1, 2)) == {1: 0.5, 2: 1.0}
    assert precision_at_k(RETRIEVED, QUERIES, ks=(1, 2, 4)) == {1: 0.5, 2: 0.5, 4: 0.5}
    assert recall_at_k(RETRIEVED, QUERIES, COUNTS, ks=(1, 3)) == {1: 0.25, 3: 0.5}
    # q0 relevant at ranks 2, 4: AP = (1/2 + 2/4) / 2 = 0.5; q1 at 1, 4: (1 + 2/4) / 2 = 0.75
    assert mean_average_precision(RETRIEVED, QUERIES, COUNTS) == pytest.approx(0.625)
    # R = 2: q0 -> (0 + 1/2 * [rank2 rel]) / 2 = 0.25; q1 -> (1) / 2 = 0.5
    assert map_at_r(RETRIEVED, QUERIES, COUNTS) == pytest.approx(0.375)
    assert topk_hit_rate(RETRIEVED, QUERIES, ks=(1,), per_class=True) == {1: {0: 0.0, 1: 1.0}}


def _ap_reference(ranked, label, relevant):
    hits, total = 0, 0.0
    for i, value in enumerate(ranked, start=1):
        if value == label:
            hits += 1
            total += hits / i
    return total / relevant


def test_against_python_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    gallery_labels = torch.randint(0, 4, (30,), generator=generator)
    counts = torch.bincount(gallery_labels, minlength=4)
    queries = torch.randint(0, 4, (12,), generator=generator)
    queries = queries[counts[queries] > 0]
    ranked = torch.stack([gallery_labels[torch.randperm(30, generator=generator)] for _ in queries])
    expected = sum(
        _ap_reference(r.tolist(), int(q), int(counts[q])) for r, q in zip(ranked, queries)
    ) / len(queries)
    assert mean_average_precision(ranked, queries, counts) == pytest.approx(expected)
    hit = sum(int(q) in r[:5].tolist() for r, q in zip(ranked, queries)) / len(queries)
    assert topk_hit_rate(ranked, queries, ks=(5,))[5] == pytest.approx(hit)


def test_k_out_of_range() -> None:
    with pytest.raises(ValueError, match="k=5"):
        topk_hit_rate(RETRIEVED, QUERIES, ks=(5,))


def test_precision_recall_map_at_r_against_python_reference() -> None:
    generator = torch.Generator().manual_seed(1)
    gallery_labels = torch.cat([torch.arange(3), torch.randint(0, 3, (17,), generator=generator)])
    counts = torch.bincount(gallery_labels)
    queries = torch.randint(0, 3, (25,), generator=generator)
    ranked = torch.stack([gallery_labels[torch.randperm(20, generator=generator)] for _ in queries])
    rows, labels = ranked.tolist(), queries.tolist()
    for k in (1, 4, 20):
        p = sum(r[:k].count(q) / k for r, q in zip(rows, labels)) / len(rows)
        rc = sum(r[:k].count(q) / int(counts[q]) for r, q in zip(rows, labels)) / len(rows)
        assert precision_at_k(ranked, queries, ks=(k,))[k] == pytest.approx(p)
        assert recall_at_k(ranked, queries, counts, ks=(k,))[k] == pytest.approx(rc)
    at_r = [_ap_reference(r[: int(counts[q])], q, int(counts[q])) for r, q in zip(rows, labels)]
    assert map_at_r(ranked, queries, counts) == pytest.approx(sum(at_r) / len(at_r))


def test_l2_and_cosine_disagree_on_hit_rate() -> None:
    from robustret.retrieval import GalleryIndex

    # g0 points like the query but is far; g1 is near but at 45 degrees
    gallery, gallery_labels = torch.tensor([[10.0, 0.0], [1.0, 1.0]]), torch.tensor([0, 1])
    queries, query_labels = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    l2 = GalleryIndex(gallery, gallery_labels, "l2").retrieve_labels(queries, 1)
    cosine = GalleryIndex(gallery, gallery_labels, "cosine").retrieve_labels(queries, 1)
    assert topk_hit_rate(l2, query_labels, ks=(1,)) == {1: 0.0}
    assert topk_hit_rate(cosine, query_labels, ks=(1,)) == {1: 1.0}
