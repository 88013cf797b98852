"""Seeds: the summary over seeds (mean, std, bootstrap interval, recovery ratio)."""

from __future__ import annotations

import pytest
import torch

from robustret.evaluation.results import Condition
from robustret.experiment.seeds import summarise_seeds

CLEAN = Condition("clean")
DEGRADED = Condition("degraded", "noise", 3)
RESTORED = Condition("restored", "noise", 3, "dae")


def _hits(rate: float, count: int = 40) -> torch.Tensor:
    return (torch.arange(count) < round(rate * count)).float()


def _per_query(clean: float, degraded: float, restored: float) -> dict:
    return {(CLEAN, "l2", "topk", 1): _hits(clean), (DEGRADED, "l2", "topk", 1): _hits(degraded),
            (RESTORED, "l2", "topk", 1): _hits(restored)}


def test_mean_std_interval_and_recovery() -> None:
    per_seed = {0: _per_query(0.9, 0.5, 0.7), 1: _per_query(0.8, 0.4, 0.6)}
    summary = {s.condition: s for s in summarise_seeds(per_seed, resamples=200, seed=1)}
    clean = summary[CLEAN]
    assert clean.values == [0.9, 0.8] and clean.mean == pytest.approx(0.85)
    assert clean.std == pytest.approx(torch.tensor([0.9, 0.8]).std().item())
    assert clean.low <= clean.mean <= clean.high and clean.high - clean.low > 0
    restored = summary[RESTORED]
    assert restored.recovery == pytest.approx((0.65 - 0.45) / (0.85 - 0.45))
    assert restored.recovery_low <= restored.recovery <= restored.recovery_high
    assert summary[DEGRADED].recovery is None
    again = {s.condition: s for s in summarise_seeds(per_seed, resamples=200, seed=1)}
    assert again[CLEAN].low == clean.low  # seeded: the same intervals
    assert set(clean.to_dict()) >= {"query", "metric", "measure", "k", "mean", "std", "low"}


def test_recovery_is_undefined_under_two_points() -> None:
    per_seed = {0: _per_query(0.5, 0.5, 0.6)}  # the degradation costs nothing
    summary = {s.condition: s for s in summarise_seeds(per_seed, resamples=50)}
    assert summary[RESTORED].recovery is None and summary[RESTORED].recovery_low is None
    assert summary[CLEAN].std == 0.0


def test_the_mean_over_severities_is_summarised_with_its_recovery() -> None:
    """noise at severities 1 and 3, restored at both; blur at one severity only (no mean)."""
    from robustret.experiment.seeds import severity_means_markdown, summarise_severity_means

    def one_seed(clean: float, shift: float) -> dict:
        figures = {(CLEAN, "l2", "topk", 1): _hits(clean)}
        for severity, degraded, restored in ((1, 0.6, 0.8), (3, 0.2, 0.5)):
            figures[(Condition("degraded", "noise", severity), "l2", "topk", 1)] = _hits(
                degraded + shift)
            figures[(Condition("restored", "noise", severity, "auto"), "l2", "topk", 1)] = (
                _hits(restored + shift))
        figures[(Condition("degraded", "blur", 2), "l2", "topk", 1)] = _hits(0.5)
        return figures

    per_seed = {0: one_seed(0.9, 0.0), 1: one_seed(0.8, -0.1)}
    rows = {(r.query, r.degradation): r
            for r in summarise_severity_means(per_seed, resamples=200, seed=3)}
    assert set(rows) == {("degraded", "noise"), ("restored", "noise")}
    degraded, restored = rows["degraded", "noise"], rows["restored", "noise"]
    assert degraded.severities == [1, 3] and restored.restorer == "auto"
    assert degraded.values == pytest.approx([0.4, 0.3]) and degraded.mean == pytest.approx(0.35)
    assert restored.values == pytest.approx([0.65, 0.55])
    assert restored.recovery == pytest.approx((0.6 - 0.35) / (0.85 - 0.35))
    assert restored.recovery_low <= restored.recovery <= restored.recovery_high
    assert degraded.recovery is None and degraded.low <= degraded.mean <= degraded.high
    text = severity_means_markdown(list(rows.values()), metric="l2")
    assert "| restored | noise | 1, 3 | auto | topk@1 | 60.00 ± 7.07 |" in text
    assert "0.50 [" in text
    assert severity_means_markdown(list(rows.values()), metric="cosine") == ""
    # restored at severities 1 and 3, degraded at 1, 2 and 3: no recovery across levels
    extra = {s: {**figures, (Condition("degraded", "noise", 2), "l2", "topk", 1): _hits(0.3)}
             for s, figures in per_seed.items()}
    rows = {(r.query, r.degradation): r for r in summarise_severity_means(extra, resamples=20)}
    assert rows["degraded", "noise"].severities == [1, 2, 3]
    assert rows["restored", "noise"].recovery is None
    # severities that differ between seeds are no common mean
    per_seed[1].pop((Condition("restored", "noise", 3, "auto"), "l2", "topk", 1))
    per_seed[1].pop((Condition("degraded", "noise", 3), "l2", "topk", 1))
    assert summarise_severity_means(per_seed, resamples=20) == []
