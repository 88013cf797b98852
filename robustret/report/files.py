"""Turn result rows into the study's table: terminal text, results.md, results.csv, results.json.

Rows are :class:`~robustret.evaluation.results.ResultRow`; ``results.json`` holds their
:meth:`~robustret.evaluation.results.ResultRow.to_dict` form::

    {"query": "clean" | "degraded" | "restored" | "adapted", "degradation": str | None,
     "severity": int | None, "restorer": str | None, "adaptation": "queries" | "both" | None,
     "metric": "l2" | "cosine", "k": int | None, "accuracy": float in [0, 1] (= value),
     "reused": bool, "measure": "topk" | "precision" | "recall" | "map" | "map_at_r" |
     "r_precision", "value": float in [0, 1], "degrade_side": "query" | "gallery" | "both"}

Rows of older runs (no ``measure``) read as top-k rows. ``results.json`` also holds a
``"summary"`` (:mod:`robustret.report.summary`) beside the rows.

In the table, adapted rows (test-time BatchNorm adaptation) show ``bn:queries`` or
``bn:both`` in the restorer column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from robustret.core.io import atomic_write_json, atomic_write_text
from robustret.evaluation.results import ROW_FIELDS, Condition, ResultRow
from robustret.retrieval.metrics import MEASURE_TABLE
from robustret.retrieval.ranking import METRICS

#: column titles per metric, in table order (:data:`robustret.retrieval.ranking.METRICS`)
METRIC_TITLES = {name: metric.title for name, metric in METRICS.items()}
#: column titles per measure (``{k}`` filled in for the k-measures)
MEASURE_TITLES = {name: measure.title for name, measure in MEASURE_TABLE.items()}
#: section headings per measure
MEASURE_NAMES = {name: measure.long_name for name, measure in MEASURE_TABLE.items()}


def table_lines(rows: Sequence[ResultRow], *, markdown: bool = True,
                measure: str = "topk") -> list[str]:
    """The study's layout: one line per query condition, a column per metric and k (in %).

    Conditions appear as: clean, then for each degradation and severity the degraded queries
    followed by each restorer's output, named with what it knew (``wiener (oracle)``,
    ``estimated (estimated)``, ``dae (blind)``). Only the rows of ``measure`` are shown (the study's
    top-k hit rate by default).
    """
    rows = [r for r in rows if r.measure == measure]
    metrics = [m for m in METRIC_TITLES if any(r.metric == m for r in rows)]
    ks = sorted({r.k for r in rows}, key=lambda k: k or 0)
    cells: dict[Condition, dict[tuple[str, int], float]] = {}
    knew: dict[Condition, str] = {}
    for row in rows:
        cells.setdefault(row.condition, {})[(row.metric, row.k)] = row.accuracy
        if row.knowledge is not None:
            knew[row.condition] = row.knowledge
    header = ["query", "degradation", "severity", "restorer"] + [
        f"{METRIC_TITLES[m]} {MEASURE_TITLES[measure].format(k=k)}" for m in metrics for k in ks
    ]
    body = []
    for condition in sorted(cells, key=Condition.sort_key):
        values = [cells[condition].get((m, k)) for m in metrics for k in ks]
        severity = "-" if condition.severity is None else str(condition.severity)
        restorer = condition.restorer or (
            f"bn:{condition.adaptation}" if condition.adaptation else "-")
        if condition in knew:  # what the restorer knew: oracle, estimated or blind
            restorer = f"{restorer} ({knew[condition]})"
        body.append([condition.query, condition.degradation or "-", severity, restorer]
                    + ["" if v is None else f"{100 * v:.2f}" for v in values])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return lines
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 4 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*line) for line in body
    ]


def rows_to_csv(rows: Iterable[ResultRow]) -> str:
    """CSV text with the row fields as header (a list field, ``retriever_seen`` or
    ``groups``, as its names joined by spaces; empty for None or an empty list)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else " ".join(value)
                         if isinstance(value, list) else value
                         for key, value in row.to_dict().items()})
    return buffer.getvalue()


def write_results(out_dir: str | Path, rows: Sequence[ResultRow], meta: dict[str, Any],
                  extra_markdown: str = "") -> dict[str, Path]:
    """Write ``results.json`` (rows + meta), ``results.csv`` and ``results.md``, each atomically.

    Args:
        out_dir: the run folder.
        rows: the result rows.
        meta: config, seeds, versions, timings; stored beside ``rows`` in the JSON.
        extra_markdown: appended to ``results.md`` (sweep summaries, plots).

    Returns:
        The three paths by format name.
    """
    out_dir = Path(out_dir)
    title = f"# Results: {meta.get('config', {}).get('dataset', '')}\n\n"
    command = meta.get("command")
    md = title + (f"Command: `{command}`\n\n" if command else "")
    side = next((r.degrade_side for r in rows), "query")
    if side != "query":
        md += f"Degradation applied to: {side}.\n\n"
    md += "Top-k matching accuracy (%), the study's metric: a query is a hit when one of its k "
    md += "nearest gallery images has its class.\n\n" + "\n".join(table_lines(rows)) + "\n"
    for measure in dict.fromkeys(r.measure for r in rows):
        if measure != "topk":
            md += (f"\n### {MEASURE_NAMES[measure]} (%)\n\n"
                   + "\n".join(table_lines(rows, measure=measure)) + "\n")
    if extra_markdown:
        md += "\n" + extra_markdown.rstrip() + "\n"
    return {
        "json": atomic_write_json(out_dir / "results.json",
                                  {"rows": [row.to_dict() for row in rows], **meta}),
        "csv": atomic_write_text(out_dir / "results.csv", rows_to_csv(rows)),
        "md": atomic_write_text(out_dir / "results.md", md),
    }


def read_rows(results: dict[str, Any]) -> list[ResultRow]:
    """The rows of a parsed ``results.json``."""
    return [ResultRow.from_dict(row) for row in results["rows"]]
