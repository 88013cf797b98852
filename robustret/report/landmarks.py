"""The landmark benchmark's report: the protocol's own table, its summary, results.md / .json.

The table has one line per condition (clean; each degradation x severity degraded; each
restorer's output). Revisited benchmarks (ROxford5k, RParis6k) show the protocol's mAP for Easy,
Medium and Hard, then mP@k for each k and setup; classic ones (Oxford5k, Paris6k) show the
protocol's mAP, the non-interpolated and the 11-point interpolated mAP. Values are percent.

The summary, per setup and per kind of query (the degraded queries; every restored row pooled,
when each condition has one restorer; each restorer's output), over its (degradation,
severity) conditions:

- ``mean mAP``: the mean of the mAP over those conditions, beside the degraded queries' mean on
  the same conditions (a restorer serving two of six degradations is compared on those two);
- ``mCE``: the corruption error against the clean run, averaged over degradations: for one
  degradation ``CE = sum over severities (1 - mAP) / sum over severities (1 - clean mAP)``:
  1 means the queries lose nothing to the corruption, 2 that the retrieval error doubles.
  Undefined (empty) when the clean run has no error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustret.core.io import atomic_write_json, atomic_write_text
from robustret.evaluation.landmarks import LandmarkRow
from robustret.evaluation.results import Condition
from robustret.retrieval.relevance import Setup

RESULTS_MD, RESULTS_JSON = "results.md", "results.json"


@dataclass(frozen=True)
class LandmarkSummary:
    """One setup's summary for one kind of query (see the module).

    Attributes:
        setup: the protocol's setup.
        method: ``degraded``; a restorer's name; or ``restored``, every restored row pooled
            (given when each (degradation, severity) has one restorer, as ``--restore
            classical`` runs).
        mean_map: the mean mAP over its (degradation, severity) conditions.
        mce: the mean corruption error against the clean run (None when undefined).
        conditions: how many conditions the means are over.
        degraded_map: the degraded queries' mean mAP over the same conditions (what the
            restorer started from).
    """

    setup: Setup
    method: str
    mean_map: float
    mce: float | None
    conditions: int
    degraded_map: float


def _method(condition: Condition) -> str | None:
    if condition.query == "degraded":
        return "degraded"
    return condition.restorer if condition.query == "restored" else None


def _mce(chosen: Sequence[LandmarkRow], clean: float) -> float | None:
    """The mean over degradations of ``sum (1 - mAP) / sum (1 - clean mAP)``."""
    if math.isnan(clean) or 1 - clean <= 1e-12:
        return None
    ratios = []
    for degradation in sorted({r.condition.degradation or "" for r in chosen}):
        errors = [1 - r.map for r in chosen if r.condition.degradation == degradation]
        ratios.append(sum(errors) / (len(errors) * (1 - clean)))
    return sum(ratios) / len(ratios) if ratios else None


def summarise(rows: Sequence[LandmarkRow]) -> list[LandmarkSummary]:
    """The run's summary per setup and kind of query (the module's definitions), in setup
    order: the degraded queries, the pooled restored rows, then each restorer."""
    clean = {r.setup: r.map for r in rows if r.condition.query == "clean"}
    degraded = {(r.setup, r.condition.degradation, r.condition.severity): r.map
                for r in rows if r.condition.query == "degraded"}
    groups: dict[tuple[Setup, str], list[LandmarkRow]] = {}
    for row in rows:
        method = _method(row.condition)
        if method is not None and not math.isnan(row.map):
            groups.setdefault((row.setup, method), []).append(row)
    restored = [r for r in rows if r.condition.query == "restored" and not math.isnan(r.map)]
    per_condition = [(r.setup, r.condition.degradation, r.condition.severity) for r in restored]
    if len(set(per_condition)) == len(per_condition) and len({r.condition.restorer
                                                              for r in restored}) > 1:
        for row in restored:
            groups.setdefault((row.setup, "restored"), []).append(row)
    order = {"degraded": 0, "restored": 1}
    out = []
    for (setup, method), chosen in sorted(groups.items(), key=lambda item: (
            list(Setup).index(item[0][0]), order.get(item[0][1], 2), item[0][1])):
        start = [degraded.get((setup, r.condition.degradation, r.condition.severity), math.nan)
                 for r in chosen]
        out.append(LandmarkSummary(setup, method, sum(r.map for r in chosen) / len(chosen),
                                   _mce(chosen, clean.get(setup, math.nan)), len(chosen),
                                   sum(start) / len(start)))
    return out


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


@dataclass(frozen=True)
class _Column:
    """A numeric column of the table: its title, the setup it reads, and the value it shows."""

    title: str
    setup: Setup
    value: Callable[[LandmarkRow], float]


def _columns(rows: Sequence[LandmarkRow]) -> list[_Column]:
    """The numeric columns of the rows' protocol (see the module)."""
    setups = list(dict.fromkeys(r.setup for r in rows))
    if setups == [Setup.CLASSIC]:
        return [_Column("mAP", Setup.CLASSIC, lambda r: r.map),
                _Column("mAP plain", Setup.CLASSIC, lambda r: r.map_plain),
                _Column("mAP 11-pt", Setup.CLASSIC, lambda r: r.map_11)]
    ks = sorted({k for r in rows for k in r.precision})
    return [_Column(f"mAP {s.title}", s, lambda r: r.map) for s in setups] + [
        _Column(f"mP@{k} {s.title}", s, lambda r, k=k: r.precision[k])
        for k in ks for s in setups]


def table_lines(rows: Sequence[LandmarkRow], *, markdown: bool = True) -> list[str]:
    """The protocol's table (see the module): one line per condition."""
    columns = _columns(rows)
    by_condition: dict[Condition, dict[Setup, LandmarkRow]] = {}
    for row in rows:
        by_condition.setdefault(row.condition, {})[row.setup] = row
    header = ["query", "degradation", "severity", "restorer"] + [c.title for c in columns]
    body = []
    for condition in sorted(by_condition, key=Condition.sort_key):
        setups = by_condition[condition]
        knowledge = next(iter(setups.values())).knowledge
        restorer = condition.restorer or "-"
        if knowledge is not None:
            restorer = f"{restorer} ({knowledge})"
        cells = [_percent(c.value(setups[c.setup])) if c.setup in setups else ""
                 for c in columns]
        body.append([condition.query, condition.degradation or "-",
                     "-" if condition.severity is None else str(condition.severity), restorer,
                     *cells])
    return _layout(header, body, markdown)


def summary_lines(summary: Sequence[LandmarkSummary], *, markdown: bool = True) -> list[str]:
    """The summary as a table: setup, queries, conditions, mean mAP, the degraded queries' mean
    mAP on the same conditions, mCE."""
    header = ["setup", "queries", "conditions", "mean mAP", "degraded mAP", "mCE vs clean"]
    body = [[s.setup.title, s.method, str(s.conditions), _percent(s.mean_map),
             _percent(s.degraded_map), "" if s.mce is None else f"{s.mce:.3f}"]
            for s in summary]
    return _layout(header, body, markdown)


def _layout(header: list[str], body: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return lines + ["| " + " | ".join(line) + " |" for line in body]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body)]
    text_columns = 4 if header[0] == "query" else 2
    fmt = "  ".join(f"{{:<{w}}}" if i < text_columns else f"{{:>{w}}}"
                    for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*line) for line in body]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def row_to_dict(row: LandmarkRow) -> dict[str, Any]:
    """A row as ``results.json`` holds it (NaN as null)."""
    c = row.condition
    return {"query": c.query, "degradation": c.degradation, "severity": c.severity,
            "restorer": c.restorer, "knowledge": row.knowledge, "setup": row.setup.value,
            "map": _number(row.map), "map_plain": _number(row.map_plain),
            "map_11": _number(row.map_11),
            "precision": {str(k): _number(v) for k, v in row.precision.items()},
            "evaluated": row.evaluated, "empty": row.empty}


def write_report(out_dir: str | Path, rows: Sequence[LandmarkRow], meta: Mapping[str, Any],
                 *, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``results.md`` and ``results.json`` (atomically) into ``out_dir``.

    Args:
        out_dir: the run's folder (created).
        rows: every condition's rows.
        meta: what the run was (dataset, retriever, seed, ...), stored in the JSON.
        notes: lines printed above the table in ``results.md`` (e.g. an untrained retriever).
    Returns:
        ``{"md": path, "json": path}``.
    """
    out = Path(out_dir)
    summary = summarise(rows)
    title = str(meta.get("dataset", "landmark benchmark"))
    md = [f"# {title}", "", *[f"**{note}**" for note in notes], *([""] if notes else []),
          *table_lines(rows), "", "## Summary over corruptions", "",
          *summary_lines(summary), ""]
    paths = {"md": atomic_write_text(out / RESULTS_MD, "\n".join(md) + "\n")}
    payload = {"meta": dict(meta), "notes": list(notes),
               "rows": [row_to_dict(r) for r in rows],
               "summary": [{"setup": s.setup.value, "queries": s.method,
                            "conditions": s.conditions, "mean_map": _number(s.mean_map),
                            "degraded_map": _number(s.degraded_map), "mce": s.mce}
                           for s in summary]}
    paths["json"] = atomic_write_json(out / RESULTS_JSON, payload)
    return paths
