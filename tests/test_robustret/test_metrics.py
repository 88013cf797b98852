"""Metrics against hand-worked cases and a brute-force python reference."""

from __future__ import annotations

import pytest
import torch

from robustret.retrieval.metrics import (
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


# ---------------------------------------------------------------- per-query measures (issue 15)
def _brute(retrieved: torch.Tensor, queries: torch.Tensor, counts: torch.Tensor, measure: str,
           k: int | None) -> list[float]:
    """Each query's score by plain Python loops over its ranked labels."""
    out = []
    for ranked, label in zip(retrieved.tolist(), queries.tolist()):
        rel = [1.0 if r == label else 0.0 for r in ranked]
        total = int(counts[label])
        if measure == "topk":
            out.append(float(any(rel[:k])))
        elif measure == "precision":
            out.append(sum(rel[:k]) / k)
        elif measure == "recall":
            out.append(sum(rel[:k]) / total)
        elif measure == "r_precision":
            out.append(sum(rel[:total]) / total)
        else:
            upto = rel[:total] if measure == "map_at_r" else rel
            found, ap = 0, 0.0
            for i, r in enumerate(upto, start=1):
                if r:
                    found += 1
                    ap += found / i
            out.append(ap / total)
    return out


def test_every_measure_equals_a_brute_force_reference() -> None:
    from robustret.retrieval.metrics import MEASURES, per_query_scores

    g = torch.Generator().manual_seed(3)
    gallery = torch.randint(0, 3, (9,), generator=g)
    gallery[:3] = torch.tensor([0, 1, 2])  # every class present
    counts = torch.bincount(gallery, minlength=3)
    queries = torch.randint(0, 3, (7,), generator=g)
    order = torch.stack([torch.randperm(9, generator=g) for _ in range(7)])
    retrieved = gallery[order]  # (7, 9): a full ranking
    scores = per_query_scores(retrieved, queries, MEASURES, (1, 3, 9), counts)
    for (measure, k), values in scores.items():
        expected = torch.tensor(_brute(retrieved, queries, counts, measure, k))
        assert torch.allclose(values, expected, atol=1e-6), (measure, k)
    assert {m for m, _ in scores} == set(MEASURES)
    assert torch.equal(scores[("precision", 1)], scores[("topk", 1)])  # P@1 == top-1 hit rate
    assert float(scores[("recall", 9)].mean()) == pytest.approx(1.0)


def test_a_perfect_ranking_scores_one() -> None:
    from robustret.retrieval.metrics import K_FREE, per_query_scores, r_precision

    queries = torch.tensor([0, 1])
    perfect = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])
    scores = per_query_scores(perfect, queries, K_FREE, (), COUNTS)
    assert all(float(v.mean()) == 1.0 for v in scores.values())
    assert r_precision(RETRIEVED, QUERIES, COUNTS) == pytest.approx((0.5 + 0.5) / 2)


def test_per_query_scores_reject_bad_requests() -> None:
    from robustret.retrieval.metrics import per_query_scores

    with pytest.raises(ValueError, match="unknown measure"):
        per_query_scores(RETRIEVED, QUERIES, ["mAP"], (1,), COUNTS)
    with pytest.raises(ValueError, match="gallery_class_counts"):
        per_query_scores(RETRIEVED, QUERIES, ["recall"], (1,))
    with pytest.raises(ValueError, match="full ranking"):
        per_query_scores(RETRIEVED[:, :3], QUERIES, ["map"], (), COUNTS)


def test_the_measure_table_derives_the_measure_lists() -> None:
    from robustret.retrieval.metrics import K_FREE, MEASURE_TABLE, MEASURES, NEEDS_COUNTS

    assert MEASURES == ("topk", "precision", "recall", "map", "map_at_r", "r_precision")
    assert K_FREE == ("map", "map_at_r", "r_precision")
    assert NEEDS_COUNTS == ("recall", "map", "map_at_r", "r_precision")
    assert all(name == measure.name for name, measure in MEASURE_TABLE.items())
    with pytest.raises(TypeError):
        MEASURE_TABLE["new"] = MEASURE_TABLE["topk"]  # read-only: one definition


def test_a_measure_is_one_entry_of_the_table(monkeypatch) -> None:
    import types

    from robustret.retrieval import metrics

    first_hit = metrics.Measure("first_hit", False, False, "H@1", "First hit",
                                lambda ranking, k: ranking.hits[:, 0])
    table = types.MappingProxyType({**metrics.MEASURE_TABLE, "first_hit": first_hit})
    monkeypatch.setattr(metrics, "MEASURE_TABLE", table)
    monkeypatch.setattr(metrics, "MEASURES", tuple(table))
    retrieved = torch.tensor([[0, 1], [1, 0]])
    scores = metrics.per_query_scores(retrieved, torch.tensor([0, 0]), ["first_hit", "topk"],
                                      (2,))
    assert list(scores) == [("first_hit", None), ("topk", 2)]
    assert scores[("first_hit", None)].tolist() == [1.0, 0.0]
    assert metrics.get_measure("first_hit") is first_hit
    with pytest.raises(ValueError, match="unknown measure 'mAP'; choose from topk"):
        metrics.get_measure("mAP")
