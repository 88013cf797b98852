"""Severity sweeps: accuracy against severity per family and restorer, summaries and a plot."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustret.io import atomic_write_bytes


def _accuracy(rows: Sequence[dict[str, Any]], metric: str, k: int, **match: Any) -> dict[int | None, float]:
    """``{severity: accuracy}`` for the rows with ``metric``, ``k`` and the ``match`` fields."""
    out = {}
    for row in rows:
        if row["metric"] == metric and row["k"] == k and all(row[key] == value for key, value in match.items()):
            out[row["severity"]] = row["accuracy"]
    return out


def summarise_sweep(rows: Sequence[dict[str, Any]], *, metric: str = "l2", k: int = 1) -> list[dict[str, Any]]:
    """Mean accuracy over severities and the recovery ratio, per degradation and restorer.

    The recovery ratio is ``(restored - degraded) / (clean - degraded)`` on the means over
    severities: 1 means the restorer wins back all that the degradation cost, 0 nothing,
    negative that it makes things worse. It is None where the degradation cost nothing.

    Returns:
        One dict per (degradation, restorer): ``degradation``, ``restorer`` (None for the
        degraded queries themselves), ``severities``, ``mean_accuracy``, ``clean``,
        ``recovery`` (restorers only).
    """
    clean = _accuracy(rows, metric, k, query="clean").get(None)
    summary = []
    degradations = sorted({r["degradation"] for r in rows if r["degradation"] is not None})
    for degradation in degradations:
        degraded = _accuracy(rows, metric, k, query="degraded", degradation=degradation)
        if not degraded:
            continue
        mean_degraded = sum(degraded.values()) / len(degraded)
        summary.append({"degradation": degradation, "restorer": None, "severities": sorted(degraded),
                        "mean_accuracy": mean_degraded, "clean": clean, "recovery": None})
        restorers = sorted({r["restorer"] for r in rows if r["degradation"] == degradation and r["restorer"]})
        for restorer in restorers:
            restored = _accuracy(rows, metric, k, query="restored", degradation=degradation, restorer=restorer)
            mean_restored = sum(restored.values()) / len(restored)
            gap = None if clean is None else clean - mean_degraded
            recovery = (mean_restored - mean_degraded) / gap if gap and abs(gap) > 1e-9 else None
            summary.append({"degradation": degradation, "restorer": restorer, "severities": sorted(restored),
                            "mean_accuracy": mean_restored, "clean": clean, "recovery": recovery})
    return summary


def summary_markdown(summary: Sequence[dict[str, Any]], *, metric: str, k: int) -> str:
    """The sweep summary as a markdown table."""
    lines = [f"### Sweep summary ({metric}, top-{k})", "",
             "| degradation | queries | mean accuracy over severities (%) | recovery ratio |",
             "|---|---|---|---|"]
    for item in summary:
        queries = f"restored ({item['restorer']})" if item["restorer"] else "degraded"
        recovery = "" if item["recovery"] is None else f"{item['recovery']:.2f}"
        lines.append(f"| {item['degradation']} | {queries} | {100 * item['mean_accuracy']:.2f} | {recovery} |")
    return "\n".join(lines) + "\n"


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, *, metric: str = "l2", k: int = 1) -> Path:
    """Write a PNG: accuracy against severity, one panel per degradation, a line per restorer.

    The clean accuracy is drawn as a dashed horizontal line. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    degradations = sorted({r["degradation"] for r in rows if r["degradation"] is not None})
    clean = _accuracy(rows, metric, k, query="clean").get(None)
    columns = min(3, max(1, len(degradations)))
    lines = math.ceil(len(degradations) / columns) or 1
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.3 * lines), squeeze=False)
    for axis in axes.flat[len(degradations):]:
        axis.set_visible(False)
    for axis, degradation in zip(axes.flat, degradations):
        series = {"degraded": _accuracy(rows, metric, k, query="degraded", degradation=degradation)}
        for restorer in sorted({r["restorer"] for r in rows if r["degradation"] == degradation and r["restorer"]}):
            series[restorer] = _accuracy(rows, metric, k, query="restored", degradation=degradation, restorer=restorer)
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
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
