"""Per-query relevance measures against rankings scored by hand, and against the protocol's
step-by-step definition (Oxford's compute_ap loop) on random rankings."""

from __future__ import annotations

import math

import pytest
import torch

from robustret.retrieval.metrics import average_precisions
from robustret.retrieval.relevance import (
    QueryRelevance,
    Setup,
    classic_relevance,
    interpolated_ap_11,
    label_relevance,
    plain_ap,
    positive_ranks,
    precision_at_k,
    protocol_ap,
    revisited_relevance,
    score_rankings,
)

# Gallery of 6; ranking 3 0 5 1 4 2; positives {0, 1, 2}; junk {5}.
# Junk removed: 3 0 1 4 2 -> the positives sit at 0-based ranks 1, 2, 4 (n = 3).
RANKING = torch.tensor([[3, 0, 5, 1, 4, 2]])
QUERY = QueryRelevance.of([0, 1, 2], [5])
# protocol AP: (0/1 + 1/2)/2 + (1/2 + 2/3)/2 + (2/4 + 3/5)/2 = 15/60 + 35/60 + 33/60 = 83/60,
#   / 3 = 83/180
PROTOCOL_AP = 83 / 180
# plain AP: (1/2 + 2/3 + 3/5) / 3 = 53/90
PLAIN_AP = 53 / 90
# 11-point: precision 1/2, 2/3, 3/5 at recall 1/3, 2/3, 1; t = 0 .. 0.6 (7 points) best 2/3,
#   t = 0.7 .. 1 (4 points) best 3/5: (7 * 2/3 + 4 * 3/5) / 11 = 106/165
ELEVEN_AP = 106 / 165
# mP@k: 1-based positions 2, 3, 5; k=1: 0/1; k=5: 3/5; k=10: k_q = min(10, 5) = 5 -> 3/5
PRECISION = {1: 0.0, 5: 3 / 5, 10: 3 / 5}


def test_hand_computed_ranking() -> None:
    scores = score_rankings(RANKING, [QUERY], ks=(1, 5, 10))
    assert positive_ranks(RANKING[0], QUERY).tolist() == [1, 2, 4]
    assert scores.mean_ap == pytest.approx(PROTOCOL_AP, abs=1e-12)
    assert scores.mean_ap_plain == pytest.approx(PLAIN_AP, abs=1e-12)
    assert scores.mean_ap_11 == pytest.approx(ELEVEN_AP, abs=1e-12)
    for k, value in PRECISION.items():
        assert scores.mean_precision(k) == pytest.approx(value, abs=1e-12)


def test_first_rank_positive_counts_precision_one_before_it() -> None:
    # ranking 0 3 1, positives {0, 1}: ranks 0, 2.
    # protocol: (1 + 1)/2 + (1/2 + 2/3)/2 = 19/12, / 2 = 19/24
    # plain: (1 + 2/3) / 2 = 5/6; 11-point: 6 points at 1 (recall <= 0.5), 5 at 2/3 -> 28/33
    ranks = positive_ranks(torch.tensor([0, 3, 1]), QueryRelevance.of([0, 1]))
    assert protocol_ap(ranks, 2) == pytest.approx(19 / 24)
    assert plain_ap(ranks, 2) == pytest.approx(5 / 6)
    assert interpolated_ap_11(ranks, 2) == pytest.approx(28 / 33)
    # mP@k: positions 1, 3; k=1 -> 1/1; k=2 -> 1/2; k=5 -> k_q = 3 -> 2/3
    assert [precision_at_k(ranks, k) for k in (1, 2, 5)] == pytest.approx([1.0, 0.5, 2 / 3])


def test_junk_is_ignored_wherever_it_sits() -> None:
    base = score_rankings(torch.tensor([[3, 0, 1, 4, 2, 5]]), [QUERY])
    for junk_at in range(6):
        order = [3, 0, 1, 4, 2]
        order.insert(junk_at, 5)
        moved = score_rankings(torch.tensor([order]), [QUERY])
        assert moved.mean_ap == pytest.approx(base.mean_ap) == pytest.approx(PROTOCOL_AP)
    # the same item as an ordinary negative lowers the score: 3 0 5 1 4 2 -> ranks 1, 3, 5
    plain = score_rankings(RANKING, [QueryRelevance.of([0, 1, 2])])
    assert plain.mean_ap < PROTOCOL_AP


def test_queries_without_positives_are_left_out_and_counted() -> None:
    rankings = torch.cat([RANKING, RANKING])
    scores = score_rankings(rankings, [QUERY, QueryRelevance.of([], [0])])
    assert scores.empty == 1 and scores.evaluated == 1
    assert math.isnan(float(scores.ap[1])) and math.isnan(float(scores.precision[5][1]))
    assert scores.mean_ap == pytest.approx(PROTOCOL_AP)
    none = score_rankings(RANKING, [QueryRelevance.of([], [])])
    assert none.empty == 1 and math.isnan(none.mean_ap)


def test_eleven_point_and_non_interpolated_differ() -> None:
    # ranking 1 0 2, positive {0}: plain AP = 1/2; 11-point: every recall level has 1/2 -> 1/2.
    # ranking 0 1 2 3, positives {0, 3}: plain (1 + 2/4)/2 = 3/4; 11-point: 6 points at 1,
    # 5 at 1/2 -> 17/22; protocol: (1 + 1)/2 + (1/3 + 2/4)/2 = 1 + 5/12, / 2 = 17/24
    one = positive_ranks(torch.tensor([1, 0, 2]), QueryRelevance.of([0]))
    assert plain_ap(one, 1) == pytest.approx(interpolated_ap_11(one, 1)) == pytest.approx(0.5)
    two = positive_ranks(torch.tensor([0, 1, 2, 3]), QueryRelevance.of([0, 3]))
    assert plain_ap(two, 2) == pytest.approx(3 / 4)
    assert interpolated_ap_11(two, 2) == pytest.approx(17 / 22)
    assert protocol_ap(two, 2) == pytest.approx(17 / 24)


def _oxford_loop_ap(ranking: list[int], positives: set[int], junk: set[int]) -> float:
    """The protocol's definition step by step: walk the ranking, skip junk, add the trapezoid
    between the last precision-recall point and this one."""
    ap, old_recall, old_precision, seen, found = 0.0, 0.0, 1.0, 0, 0
    for item in ranking:
        if item in junk:
            continue
        found += item in positives
        recall, precision = found / len(positives), found / (seen + 1)
        ap += (recall - old_recall) * (old_precision + precision) / 2
        old_recall, old_precision, seen = recall, precision, seen + 1
    return ap


def test_protocol_ap_equals_the_step_by_step_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        n = 12
        ranking = torch.randperm(n, generator=generator)
        labels = torch.randint(0, 3, (n,), generator=generator)  # 0 negative, 1 positive, 2 junk
        labels[0] = 1
        positives = set(torch.nonzero(labels == 1).flatten().tolist())
        junk = set(torch.nonzero(labels == 2).flatten().tolist())
        query = QueryRelevance.of(sorted(positives), sorted(junk))
        got = score_rankings(ranking[None], [query]).mean_ap
        assert got == pytest.approx(_oxford_loop_ap(ranking.tolist(), positives, junk), abs=1e-12)


def test_setups() -> None:
    setups = revisited_relevance(easy=[0, 1], hard=[2], junk=[3])
    assert setups[Setup.EASY].positives.tolist() == [0, 1]
    assert sorted(setups[Setup.EASY].junk.tolist()) == [2, 3]
    assert sorted(setups[Setup.MEDIUM].positives.tolist()) == [0, 1, 2]
    assert setups[Setup.MEDIUM].junk.tolist() == [3]
    assert setups[Setup.HARD].positives.tolist() == [2]
    assert sorted(setups[Setup.HARD].junk.tolist()) == [0, 1, 3]
    classic = classic_relevance(good=[0], ok=[4], junk=[5])
    assert classic.positives.tolist() == [0, 4] and classic.junk.tolist() == [5]
    assert [s.title for s in (Setup.EASY, Setup.MEDIUM, Setup.HARD)] == ["E", "M", "H"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="both positive and junk"):
        QueryRelevance.of([1, 2], [2])
    with pytest.raises(ValueError, match="twice"):
        QueryRelevance.of([1, 1])
    with pytest.raises(ValueError, match="rank the whole gallery"):
        positive_ranks(torch.tensor([1, 3]), QueryRelevance.of([0]))
    with pytest.raises(ValueError, match="past the gallery"):
        score_rankings(torch.tensor([[0, 1]]), [QueryRelevance.of([2])])
    with pytest.raises(ValueError, match=r"\(Q, N\)"):
        score_rankings(torch.tensor([0, 1]), [QUERY])


def test_class_labels_give_the_label_measures_plain_ap() -> None:
    """With positives = the query's class and no junk, the plain AP is metrics' class-label AP."""
    generator = torch.Generator().manual_seed(3)
    gallery_labels = torch.randint(0, 4, (20,), generator=generator)
    query_labels = torch.tensor([0, 1, 2, 3, 1])
    rankings = torch.stack([torch.randperm(20, generator=generator) for _ in range(5)])
    relevance = label_relevance(query_labels, gallery_labels)
    scores = score_rankings(rankings, relevance)
    counts = torch.bincount(gallery_labels, minlength=4)
    expected = average_precisions(gallery_labels[rankings], query_labels, counts)
    assert torch.allclose(scores.ap_plain, expected.double(), atol=1e-6)
    assert all(len(r.junk) == 0 for r in relevance)
