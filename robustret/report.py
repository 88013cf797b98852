"""Turn result rows into the study's table: terminal text, results.md, results.csv, results.json.

A row is one accuracy figure::

    {"query": "clean" | "degraded" | "restored", "degradation": str | None,
     "severity": int | None, "restorer": str | None, "metric": "l2" | "cosine",
     "k": int, "accuracy": float in [0, 1]}
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from robustret.checks import check_choice
from robustret.io import atomic_write_json, atomic_write_text

ROW_KEYS = ("query", "degradation", "severity", "restorer", "metric", "k", "accuracy")
QUERY_KINDS = ("clean", "degraded", "restored")
METRIC_TITLES = {"l2": "L2", "cosine": "cosine"}


def make_row(query: str, degradation: str | None, severity: int | None, restorer: str | None,
             metric: str, k: int, accuracy: float) -> dict[str, Any]:
    """One validated result row."""
    check_choice(query, QUERY_KINDS, "query")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1]; got {accuracy}")
    return {"query": query, "degradation": degradation, "severity": severity, "restorer": restorer,
            "metric": metric, "k": int(k), "accuracy": float(accuracy)}


def _condition_key(row: dict[str, Any]) -> tuple:
    order = QUERY_KINDS.index(row["query"])
    return (row["degradation"] or "", row["severity"] or 0, order, row["restorer"] or "")


def table_lines(rows: Sequence[dict[str, Any]], *, markdown: bool = True) -> list[str]:
    """The study's layout: one line per query condition, top-k columns per metric (in %).

    Conditions appear as: clean, then for each degradation and severity the degraded queries
    followed by each restorer's output.
    """
    metrics = [m for m in METRIC_TITLES if any(r["metric"] == m for r in rows)]
    ks = sorted({r["k"] for r in rows})
    cells: dict[tuple, dict[tuple[str, int], float]] = {}
    for row in rows:
        key = (row["query"], row["degradation"], row["severity"], row["restorer"])
        cells.setdefault(key, {})[(row["metric"], row["k"])] = row["accuracy"]
    keys = sorted(cells, key=lambda c: _condition_key(dict(zip(("query", "degradation", "severity", "restorer"), c))))
    header = ["query", "degradation", "severity", "restorer"] + [
        f"{METRIC_TITLES[m]} top-{k}" for m in metrics for k in ks
    ]
    body = []
    for key in keys:
        query, degradation, severity, restorer = key
        values = [cells[key].get((m, k)) for m in metrics for k in ks]
        body.append([query, degradation or "-", "-" if severity is None else str(severity), restorer or "-"]
                    + ["" if v is None else f"{100 * v:.2f}" for v in values])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return lines
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 4 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*line) for line in body]


def rows_to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text with the row keys as header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_KEYS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in ROW_KEYS})
    return buffer.getvalue()


def write_results(out_dir: str | Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any],
                  extra_markdown: str = "") -> dict[str, Path]:
    """Write ``results.json`` (rows + meta), ``results.csv`` and ``results.md``, each atomically.

    Args:
        out_dir: the run folder.
        rows: result rows (see module docstring).
        meta: config, seeds, versions, timings; stored beside ``rows`` in the JSON.
        extra_markdown: appended to ``results.md`` (sweep summaries, plots).

    Returns:
        The three paths by format name.
    """
    out_dir = Path(out_dir)
    for row in rows:
        missing = set(ROW_KEYS) - set(row)
        if missing:
            raise ValueError(f"result row lacks {sorted(missing)}: {row}")
    title = f"# Results: {meta.get('config', {}).get('dataset', '')}\n\n"
    command = meta.get("command")
    md = title + (f"Command: `{command}`\n\n" if command else "")
    md += "Top-k matching accuracy (%), the study's metric: a query is a hit when one of its k nearest "
    md += "gallery images has its class.\n\n" + "\n".join(table_lines(rows)) + "\n"
    if extra_markdown:
        md += "\n" + extra_markdown.rstrip() + "\n"
    return {
        "json": atomic_write_json(out_dir / "results.json", {"rows": list(rows), **meta}),
        "csv": atomic_write_text(out_dir / "results.csv", rows_to_csv(rows)),
        "md": atomic_write_text(out_dir / "results.md", md),
    }
