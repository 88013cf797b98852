"""Severity sweeps: accuracy against severity per family and restorer, summaries and a plot."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robustret.core.io import atomic_write_bytes
from robustret.evaluation.results import ResultRow, select


def accuracy_by_severity(rows: Sequence[ResultRow], **fields: Any) -> dict[int | None, float]:
    """``{severity: value}`` of the rows matching ``fields`` (see :func:`select`); the top-k
    rows unless ``fields`` names a ``measure``."""
    fields.setdefault("measure", "topk")
    return {row.severity: row.value for row in select(rows, **fields)}


@dataclass(frozen=True)
class SweepSummary:
    """Mean accuracy over severities of one degradation, degraded or restored.

    Attributes:
        degradation: the degradation.
        restorer: the restorer (None: the degraded queries themselves).
        severities: the levels averaged over.
        mean_accuracy: mean top-k hit rate over them, in [0, 1].
        clean: the clean queries' hit rate (None when the run has no clean row).
        recovery: ``(restored - degraded) / (clean - degraded)`` on the means: 1 wins back all
            the degradation cost, 0 nothing, negative makes it worse; None for degraded
            entries and where the degradation cost nothing.
    """

    degradation: str
    restorer: str | None
    severities: list[int]
    mean_accuracy: float
    clean: float | None
    recovery: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _restorers(rows: Sequence[ResultRow], degradation: str) -> list[str]:
    return sorted({r.restorer for r in select(rows, query="restored", degradation=degradation)
                   if r.restorer is not None})


def summarise_sweep(
    rows: Sequence[ResultRow], *, metric: str = "l2", k: int = 1
) -> list[SweepSummary]:
    """Mean accuracy over severities and the recovery ratio, per degradation and restorer."""
    clean = accuracy_by_severity(rows, query="clean", metric=metric, k=k).get(None)
    summary = []
    for degradation in sorted({r.degradation for r in rows if r.degradation is not None}):
        degraded = accuracy_by_severity(rows, query="degraded", degradation=degradation,
                                        metric=metric, k=k)
        if not degraded:
            continue
        mean_degraded = sum(degraded.values()) / len(degraded)
        summary.append(
            SweepSummary(degradation, None, sorted(degraded), mean_degraded, clean, None)
        )
        for restorer in _restorers(rows, degradation):
            restored = accuracy_by_severity(rows, query="restored", degradation=degradation,
                                            restorer=restorer, metric=metric, k=k)
            mean_restored = sum(restored.values()) / len(restored)
            gap = None if clean is None else clean - mean_degraded
            recovery = (mean_restored - mean_degraded) / gap if gap and abs(gap) > 1e-9 else None
            summary.append(SweepSummary(degradation, restorer, sorted(restored), mean_restored,
                                        clean, recovery))
    return summary


def summary_markdown(summary: Sequence[SweepSummary], *, metric: str, k: int) -> str:
    """The sweep summary as a markdown table."""
    lines = [f"### Sweep summary ({metric}, top-{k})", "",
             "| degradation | queries | mean accuracy over severities (%) | recovery ratio |",
             "|---|---|---|---|"]
    for item in summary:
        queries = f"restored ({item.restorer})" if item.restorer else "degraded"
        recovery = "" if item.recovery is None else f"{item.recovery:.2f}"
        lines.append(f"| {item.degradation} | {queries} | {100 * item.mean_accuracy:.2f} "
                     f"| {recovery} |")
    return "\n".join(lines) + "\n"


def plot_sweep(rows: Sequence[ResultRow], path: str | Path, *, metric: str = "l2",
               k: int = 1) -> Path:
    """Write a PNG: accuracy against severity, one panel per degradation, a line per restorer.

    The clean accuracy is drawn as a dashed horizontal line. Written atomically. Draws on a
    ``matplotlib.figure.Figure`` with the Agg canvas: pyplot's backend (a notebook's) is
    left alone.
    """
    # lazy: heavy; loaded only to draw a plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    degradations = sorted({r.degradation for r in rows if r.degradation is not None})
    clean = accuracy_by_severity(rows, query="clean", metric=metric, k=k).get(None)
    columns = min(3, max(1, len(degradations)))
    lines = math.ceil(len(degradations) / columns) or 1
    figure = Figure(figsize=(4.2 * columns, 3.3 * lines))
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, columns, squeeze=False)
    for axis in axes.flat[len(degradations):]:
        axis.set_visible(False)
    for axis, degradation in zip(axes.flat, degradations):
        series = {"degraded": accuracy_by_severity(rows, query="degraded", degradation=degradation,
                                                   metric=metric, k=k)}
        for restorer in _restorers(rows, degradation):
            series[restorer] = accuracy_by_severity(rows, query="restored", degradation=degradation,
                                                    restorer=restorer, metric=metric, k=k)
        for label, values in series.items():
            severities = sorted(values)
            axis.plot(severities, [100 * values[s] for s in severities], marker="o", label=label)
        if clean is not None:
            axis.axhline(100 * clean, color="gray", linestyle="--", label="clean")
        axis.set_title(degradation)
        axis.set_xlabel("severity")
        axis.set_ylabel(f"top-{k} accuracy (%), {metric}")
        axis.set_xticks(range(1, 6))
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return atomic_write_bytes(path, buffer.getvalue())
