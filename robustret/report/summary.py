"""Summary scores of one run: per family, over all corruptions, against a reference run.

For each ranking metric, measure and k, and for each way of searching (the degraded queries
themselves, each restorer, each test-time adaptation):

- per degradation family (``degradations.family(name)``) the mean over its degradations and
  severities;
- over all families and severities the corruption-averaged value (the mPC of robustness
  benchmarks, Hendrycks & Dietterich 2019) and its ratio to the clean value (rPC);
- with a reference run, the corruption-error ratio: per family the summed error ``1 - value``
  over its (degradation, severity) pairs divided by the reference run's degraded-query error
  on the same pairs, and their mean over families (the mCE idea with our own baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import degradations
from degradations.groups import GROUPS
from robustret.evaluation.results import ResultRow

ALL = "all"
"""The ``family`` of the corruption-averaged scores."""


@dataclass(frozen=True)
class SummaryScore:
    """One summary figure.

    Attributes:
        metric, measure, k: which rows it summarises (k None for k-free measures).
        method: ``degraded`` (the degraded queries), a restorer name, or ``bn:queries`` /
            ``bn:both`` (test-time adaptation).
        family: a degradation family, a named group of degradations
            (:data:`degradations.groups.GROUPS`: ``study``, ``imagenet-c``, ``held-out``; see
            ``scope``), or ``all`` (the corruption average, mPC).
        degradations: the degradations averaged over.
        mean: the mean value over those degradations and the run's severities, in [0, 1].
        relative: ``mean / clean`` (rPC for ``all``); None without a clean row or when the
            clean value is 0.
        error_ratio: the corruption-error ratio against the reference run (mCE for
            ``all``: the mean of the families' ratios); None without a reference or where the
            reference has no error on those pairs.
        knowledge: for a restorer, what it knew of each query's degradation
            (``oracle``, ``estimated``, ``blind``; see :class:`ResultRow`); None otherwise.
        scope: ``family``, ``group`` (the mean over a named group's degradations present in
            the run, given where it differs from the whole run), ``seen`` / ``unseen`` (the
            degradations the method's model was trained on, and the others: a restorer's
            ``restorer_seen``, the retriever's ``retriever_seen`` for the degraded queries and
            the adapted retriever; given where the run has both) or ``all``.
    """

    metric: str
    measure: str
    k: int | None
    method: str
    family: str
    degradations: list[str]
    mean: float
    relative: float | None
    error_ratio: float | None = None
    knowledge: str | None = None
    scope: str = "family"

    def __post_init__(self) -> None:
        if self.family == ALL:  # also a score read from an older record, written before scope
            object.__setattr__(self, "scope", ALL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _method(row: ResultRow) -> str | None:
    if row.query == "degraded":
        return "degraded"
    if row.query == "restored":
        return row.restorer
    if row.query == "adapted":
        return f"bn:{row.adaptation}"
    return None


def _family(degradation: str) -> str:
    try:
        return degradations.family(degradation)
    except (KeyError, ValueError):  # a degradation of an older run that is no longer registered
        return degradation


def summarise_run(rows: Sequence[ResultRow],
                  reference: Sequence[ResultRow] | None = None) -> list[SummaryScore]:
    """The summary scores of ``rows`` (see the module docstring), for every (metric, measure,
    k) present, degraded first and then each method in name order.

    Args:
        rows: one run's rows.
        reference: another run's rows; their degraded-query rows are the error baseline.
    """
    series: dict[tuple[str, str, int | None], dict[str, dict[tuple[str, int], float]]] = {}
    clean: dict[tuple[str, str, int | None], float] = {}
    knew: dict[str, str] = {}
    seen: dict[str, set[str]] = {}
    for row in rows:
        which = (row.metric, row.measure, row.k)
        if row.query == "clean":
            clean[which] = row.value
            continue
        method = _method(row)
        assert method is not None and row.degradation is not None and row.severity is not None
        if row.knowledge is not None:
            knew[method] = row.knowledge
        trained_on = row.restorer_seen if row.query == "restored" else row.retriever_seen
        seen.setdefault(method, set()).update(trained_on)
        series.setdefault(which, {}).setdefault(method, {})[(row.degradation, row.severity)] = (
            row.value)
    baseline: dict[tuple[str, str, int | None], dict[tuple[str, int], float]] = {}
    for row in reference or ():
        if row.query == "degraded" and row.degradation is not None and row.severity is not None:
            baseline.setdefault((row.metric, row.measure, row.k), {})[
                (row.degradation, row.severity)] = row.value
    out: list[SummaryScore] = []
    for which, methods in series.items():
        base = baseline.get(which) if reference is not None else None
        for method in sorted(methods, key=lambda m: (m != "degraded", m)):
            values = methods[method]
            families: dict[str, list[tuple[str, int]]] = {}
            for pair in sorted(values):
                families.setdefault(_family(pair[0]), []).append(pair)
            ratios: list[float] = []
            for family, pairs in sorted(families.items()):
                ratio = _error_ratio(values, base, pairs)
                if ratio is not None:
                    ratios.append(ratio)
                out.append(_score(which, method, family, pairs, values, clean.get(which), ratio,
                                  knew.get(method)))
            everything = sorted(values)
            for group, members in GROUPS.items():
                pairs = [pair for pair in everything if pair[0] in members]
                if pairs and pairs != everything:
                    out.append(_score(which, method, group, pairs, values, clean.get(which),
                                      _error_ratio(values, base, pairs), knew.get(method),
                                      scope="group"))
            parts = {"seen": [p for p in everything if p[0] in seen.get(method, ())]}
            parts["unseen"] = [p for p in everything if p not in parts["seen"]]
            if parts["seen"] and parts["unseen"]:
                for part, pairs in parts.items():
                    out.append(_score(which, method, part, pairs, values, clean.get(which),
                                      _error_ratio(values, base, pairs), knew.get(method),
                                      scope=part))
            mce = (sum(ratios) / len(ratios)
                   if base is not None and ratios and len(ratios) == len(families) else None)
            out.append(_score(which, method, ALL, everything, values, clean.get(which), mce,
                              knew.get(method)))  # scope "all", from the family
    return out


def _score(which: tuple[str, str, int | None], method: str, family: str,
           pairs: list[tuple[str, int]], values: dict[tuple[str, int], float],
           clean: float | None, ratio: float | None, knowledge: str | None, *,
           scope: str = "family") -> SummaryScore:
    mean = sum(values[p] for p in pairs) / len(pairs)
    relative = mean / clean if clean else None
    names = sorted({p[0] for p in pairs})
    return SummaryScore(*which, method, family, names, mean, relative, ratio, knowledge, scope)


def _error_ratio(values: dict[tuple[str, int], float],
                 base: dict[tuple[str, int], float] | None,
                 pairs: list[tuple[str, int]]) -> float | None:
    if base is None or any(p not in base for p in pairs):
        return None
    reference_error = sum(1.0 - base[p] for p in pairs)
    if reference_error <= 1e-12:
        return None
    return sum(1.0 - values[p] for p in pairs) / reference_error


def summary_markdown(summary: Sequence[SummaryScore], *, metric: str, measure: str = "topk",
                     k: int | None = None) -> str:
    """The summary of one (metric, measure, k) as a markdown table: a line per method (a
    restorer named with what it knew: ``wiener (oracle)``), a column per family, then the
    corruption average (mPC), its ratio to clean (rPC) and, with a reference, the
    corruption-error ratio (mCE)."""
    chosen = [s for s in summary if (s.metric, s.measure, s.k) == (metric, measure, k)]
    if not chosen:
        return ""
    families = sorted({s.family for s in chosen if s.scope == "family"})
    groups = list(dict.fromkeys(s.family for s in chosen if s.scope == "group"))
    splits = [part for part in ("seen", "unseen") if any(s.scope == part for s in chosen)]
    with_reference = any(s.error_ratio is not None for s in chosen)
    header = (["method", *families, *(f"group {g}" for g in groups), *splits, "mPC (%)", "rPC"]
              + (["mCE ratio"] if with_reference else []))
    label = measure if k is None else f"{measure}@{k}"
    lines = [f"### Summary ({metric}, {label}; families: mean over severities, %)", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for method in dict.fromkeys(s.method for s in chosen):
        mine = {(s.scope, s.family): s for s in chosen if s.method == method}
        total = mine[(ALL, ALL)]
        label = method if total.knowledge is None else f"{method} ({total.knowledge})"
        cells = [label] + [f"{100 * mine[scope, f].mean:.2f}" if (scope, f) in mine else ""
                           for scope, names in (("family", families), ("group", groups),
                                                *((part, [part]) for part in splits))
                           for f in names]
        cells += [f"{100 * total.mean:.2f}",
                  "" if total.relative is None else f"{total.relative:.3f}"]
        if with_reference:
            cells.append("" if total.error_ratio is None else f"{total.error_ratio:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
