"""The wild query set's breakdown of a finished run (:mod:`robustret.report.wild`), from the
loop's per-query scores and the drawn member of each wild query."""

from __future__ import annotations

from collections.abc import Sequence

from robustret.evaluation.results import ResultRow
from robustret.experiment.conditions import ConditionLoop
from robustret.report.wild import WildPart, wild_breakdown

WILD = "wild"


def wild_parts(loop: ConditionLoop, rows: Sequence[ResultRow], *, metric: str, k: int
               ) -> list[WildPart]:
    """Every wild row of ``rows`` (``metric``, top-``k``) split by part, per severity; empty
    when the run has no ``wild`` condition or lacks a per-query score it needs."""
    def scores(row: ResultRow):
        return loop.per_query.get((row.condition, row.metric, row.measure, row.k))

    headline = [row for row in rows
                if row.metric == metric and row.measure == "topk" and row.k == k]
    clean = next((row for row in headline if row.condition.query == "clean"), None)
    out: list[WildPart] = []
    for degraded in (row for row in headline if row.condition.query == "degraded"
                     and row.condition.degradation == WILD):
        severity = degraded.condition.severity
        restored = [row for row in headline if row.condition.query == "restored"
                    and row.condition.degradation == WILD and row.condition.severity == severity]
        needed = [clean, degraded, *restored]
        if clean is None or any(scores(row) is None for row in needed):
            continue
        member = loop.degraded(degraded.condition).params["member"]
        labelled = {f"degraded s{severity}": scores(degraded)}
        labelled.update({f"{row.condition.restorer} ({row.knowledge}) s{severity}": scores(row)
                         for row in restored})
        out += wild_breakdown(member, scores(clean), scores(degraded), labelled)
    return out
