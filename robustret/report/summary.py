"""Summary scores of one run: per family, over all corruptions, against a reference run.

For each ranking metric, measure and k, and for each way of searching (the degraded queries
themselves, each restorer, each test-time adaptation):

- per degradation family (``degradations.family(name)``) the mean over its degradations and
  severities;
- over all families and severities the corruption-averaged value (the mPC of robustness
  benchmarks, Hendrycks & Dietterich 2019) and its ratio to the clean value (rPC);
- with a reference run, the corruption-error ratio: per family the summed error ``1 - value``
  over its (degradation, severity) pairs divided by the reference run's degraded-query error
  on the same pairs, and their mean over families (the mCE idea with our own baseline);
- with a reference run, the relative corruption error (Hendrycks & Dietterich 2019): per
  family the summed error increase over the clean error, ``sum (clean - value)`` over its
  pairs, divided by the reference run's ``sum (clean_ref - value_ref)`` on the same pairs,
  and their mean over families (relative mCE). It counts only the loss the corruptions cause,
  so a method that is better on clean queries is not credited with that on corrupted ones.
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
        relative_error_ratio: the relative corruption error against the reference run
            (relative mCE for ``all``: the mean of the families'); None without a reference,
            without a clean row in either run, or where the reference loses nothing on those
            pairs.
        knowledge: for a restorer, what it knew of each query's degradation
            (``oracle``, ``estimated``, ``blind``; see :class:`ResultRow`); None otherwise.
        scope: ``family``, ``group`` (the mean over a named group's degradations present in
            the run, given where it differs from the whole run), ``seen`` / ``unseen`` (the
            degradations the method's models were trained on, and the others: the retriever's
            ``retriever_seen`` for the degraded queries and the adapted retriever; for a
            restorer's rows its ``restorer_seen`` and its retriever's, since both made the row
            (``auto``, trained on nothing, splits only where the retriever was trained on some
            families); given where the run has both) or ``all``.
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
    relative_error_ratio: float | None = None

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
        # a restored row is the pipeline's: what its restorer *or* its retriever learned is seen
        trained_on = (*row.retriever_seen, *(row.restorer_seen if row.query == "restored" else ()))
        seen.setdefault(method, set()).update(trained_on)
        series.setdefault(which, {}).setdefault(method, {})[(row.degradation, row.severity)] = (
            row.value)
    baseline: dict[tuple[str, str, int | None], dict[tuple[str, int], float]] = {}
    baseline_clean: dict[tuple[str, str, int | None], float] = {}
    for row in reference or ():
        if row.query == "clean":
            baseline_clean[(row.metric, row.measure, row.k)] = row.value
        elif row.query == "degraded" and row.degradation is not None and row.severity is not None:
            baseline.setdefault((row.metric, row.measure, row.k), {})[
                (row.degradation, row.severity)] = row.value
    out: list[SummaryScore] = []
    for which, methods in series.items():
        base = _Baseline(baseline.get(which) if reference is not None else None,
                         clean.get(which), baseline_clean.get(which))
        for method in sorted(methods, key=lambda m: (m != "degraded", m)):
            values = methods[method]
            families: dict[str, list[tuple[str, int]]] = {}
            for pair in sorted(values):
                families.setdefault(_family(pair[0]), []).append(pair)
            ratios: list[tuple[float | None, float | None]] = []
            for family, pairs in sorted(families.items()):
                ratios.append(base.ratios(values, pairs))
                out.append(_score(which, method, family, pairs, values, clean.get(which),
                                  ratios[-1], knew.get(method)))
            everything = sorted(values)
            for group, members in GROUPS.items():
                pairs = [pair for pair in everything if pair[0] in members]
                if pairs and pairs != everything:
                    out.append(_score(which, method, group, pairs, values, clean.get(which),
                                      base.ratios(values, pairs), knew.get(method),
                                      scope="group"))
            parts = {"seen": [p for p in everything if p[0] in seen.get(method, ())]}
            parts["unseen"] = [p for p in everything if p not in parts["seen"]]
            if parts["seen"] and parts["unseen"]:
                for part, pairs in parts.items():
                    out.append(_score(which, method, part, pairs, values, clean.get(which),
                                      base.ratios(values, pairs), knew.get(method),
                                      scope=part))
            means = (_mean_of_all([r[0] for r in ratios]), _mean_of_all([r[1] for r in ratios]))
            out.append(_score(which, method, ALL, everything, values, clean.get(which), means,
                              knew.get(method)))  # scope "all", from the family
    return out


def _mean_of_all(ratios: list[float | None]) -> float | None:
    """The mean of the families' ratios (mCE, relative mCE); None unless every family has one."""
    if not ratios or any(r is None for r in ratios):
        return None
    return sum(ratios) / len(ratios)  # type: ignore[arg-type]


def _score(which: tuple[str, str, int | None], method: str, family: str,
           pairs: list[tuple[str, int]], values: dict[tuple[str, int], float],
           clean: float | None, ratios: tuple[float | None, float | None],
           knowledge: str | None, *, scope: str = "family") -> SummaryScore:
    mean = sum(values[p] for p in pairs) / len(pairs)
    relative = mean / clean if clean else None
    names = sorted({p[0] for p in pairs})
    return SummaryScore(*which, method, family, names, mean, relative, ratios[0], knowledge,
                        scope, relative_error_ratio=ratios[1])


@dataclass(frozen=True)
class _Baseline:
    """The reference run's degraded values and clean value, and this run's clean value, for
    one (metric, measure, k)."""

    degraded: dict[tuple[str, int], float] | None
    clean: float | None
    reference_clean: float | None

    def ratios(self, values: dict[tuple[str, int], float],
               pairs: list[tuple[str, int]]) -> tuple[float | None, float | None]:
        """(corruption-error ratio, relative corruption-error ratio) of ``pairs``."""
        base = self.degraded
        if base is None or any(p not in base for p in pairs):
            return None, None
        reference_error = sum(1.0 - base[p] for p in pairs)
        ratio = (sum(1.0 - values[p] for p in pairs) / reference_error
                 if reference_error > 1e-12 else None)
        if self.clean is None or self.reference_clean is None:
            return ratio, None
        reference_loss = sum(self.reference_clean - base[p] for p in pairs)
        if reference_loss <= 1e-12:  # the reference loses nothing here: no yardstick
            return ratio, None
        return ratio, sum(self.clean - values[p] for p in pairs) / reference_loss


def summary_markdown(summary: Sequence[SummaryScore], *, metric: str, measure: str = "topk",
                     k: int | None = None) -> str:
    """The summary of one (metric, measure, k) as a markdown table: a line per method (a
    restorer named with what it knew: ``wiener (oracle)``), a column per family, then the
    corruption average (mPC), its ratio to clean (rPC) and, with a reference, the
    corruption-error ratio (mCE) and the relative one (relative mCE)."""
    chosen = [s for s in summary if (s.metric, s.measure, s.k) == (metric, measure, k)]
    if not chosen:
        return ""
    families = sorted({s.family for s in chosen if s.scope == "family"})
    groups = list(dict.fromkeys(s.family for s in chosen if s.scope == "group"))
    splits = [part for part in ("seen", "unseen") if any(s.scope == part for s in chosen)]
    with_reference = any(s.error_ratio is not None for s in chosen)
    header = (["method", *families, *(f"group {g}" for g in groups), *splits, "mPC (%)", "rPC"]
              + (["mCE ratio", "relative mCE"] if with_reference else []))
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
            cells += ["" if ratio is None else f"{ratio:.3f}"
                      for ratio in (total.error_ratio, total.relative_error_ratio)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
