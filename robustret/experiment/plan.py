"""The plan of a run: which conditions (rows of the table) a configuration asks for, in the
table's order."""

from __future__ import annotations

from robustret.evaluation.results import Condition
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.policy import restorers_for


def plan_conditions(config: ExperimentConfig) -> list[Condition]:
    """Every condition ``config`` asks for: clean, then per degradation and severity the
    degraded queries, each restorer that :func:`robustret.experiment.policy.restorers_for` pairs
    with it under ``config.restore``, and each test-time adaptation of ``config.adapt``."""
    plan = [Condition("clean")]
    for degradation in config.degradations:
        restorers = restorers_for(degradation, config.restore)
        for severity in config.severities:
            plan.append(Condition("degraded", degradation, severity))
            plan += [Condition("restored", degradation, severity, r) for r in restorers]
            plan += [Condition("adapted", degradation, severity, adaptation=side)
                     for side in config.adapt]
    return plan
