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
