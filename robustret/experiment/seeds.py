"""Several seeds of one experiment: a whole run per seed, then mean, spread and intervals.

:func:`run_seeds` runs :func:`robustret.experiment.runner.run` once per seed (the seed goes into
everything: data split, models, degradations), each into ``OUT/seed-N``, and summarises every
figure over the seeds: the mean, the standard deviation across seeds and a 95% bootstrap
interval of the mean, drawn by resampling each seed's queries (with a seeded generator) from
their per-query scores. For restored queries it also gives the recovery ratio
``(restored - degraded) / (clean - degraded)`` with its interval, the same resampled queries
in all three terms; it is undefined (None) where the degradation costs less than
:data:`RECOVERY_MIN_GAP`. Where a degradation was run at several severities, the same is given
for its mean over those severities (:func:`summarise_severity_means`: each query's score
averaged over the severities, then summarised as one figure), the sweep's headline number.

Written: ``OUT/seeds_summary.json`` (the summary rows and ``over_severities``),
``OUT/results.json`` (every seed's rows tagged with ``seed``, and both summaries) and
``OUT/results.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from robustret.core.checks import ConfigError
from robustret.core.distributed import launched
from robustret.core.io import atomic_write_json, atomic_write_text
from robustret.core.rng import make_generator, stream_seed
from robustret.evaluation.results import Condition
from robustret.experiment.runner import run

if TYPE_CHECKING:
    from robustret.experiment.config import ExperimentConfig
    from robustret.experiment.runner import RunResult

#: bootstrap resamples of the queries
RESAMPLES = 1000
#: the recovery ratio needs clean - degraded of at least 2 points (0.02)
RECOVERY_MIN_GAP = 0.02
#: resamples drawn at once (bounds the (block, Q) count matrix)
_BLOCK = 100

Series = tuple[Condition, str, str, "int | None"]  # (condition, metric, measure, k)


@dataclass(frozen=True, kw_only=True)
class SeedFigures:
    """One figure over seeds: what :class:`SeedSummaryRow` and :class:`SeverityMeanRow` share.

    Attributes:
        seeds: the seeds, in order; ``values`` their figures.
        mean: the mean over seeds; ``std`` the sample standard deviation (0 for one seed).
        low, high: the 95% bootstrap interval of the mean (queries resampled per seed).
        recovery: for restored queries, the recovery ratio on the means; None for other
            queries and where clean - degraded < :data:`RECOVERY_MIN_GAP` (undefined).
        recovery_low, recovery_high: its 95% bootstrap interval (None with it).
    """

    seeds: list[int]
    values: list[float]
    mean: float
    std: float
    low: float
    high: float
    recovery: float | None = None
    recovery_low: float | None = None
    recovery_high: float | None = None


@dataclass(frozen=True)
class SeedSummaryRow(SeedFigures):
    """One condition's figure summarised over seeds (the figures: :class:`SeedFigures`).

    Attributes:
        condition, metric, measure, k: which figure (as in :class:`ResultRow`).
    """

    condition: Condition
    metric: str
    measure: str
    k: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the condition's fields flat."""
        out = dataclasses.asdict(self)
        return {**out.pop("condition"), **out}


@dataclass(frozen=True)
class SeverityMeanRow(SeedFigures):
    """One figure averaged over a degradation's severities, summarised over seeds: the
    figures (:class:`SeedFigures`) of the mean over ``severities`` of each query's score; the
    recovery from the means over severities (clean, degraded and restored resampled together).

    Attributes:
        query: ``"degraded"``, ``"restored"`` or ``"adapted"``.
        degradation, restorer, adaptation: as in :class:`Condition` (no severity).
        severities: the severities averaged, sorted (the same in every seed).
        metric, measure, k: which figure.
    """

    query: str
    degradation: str
    restorer: str | None
    adaptation: str | None
    severities: list[int]
    metric: str
    measure: str
    k: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


@dataclass
class SeedsResult:
    """What :func:`run_seeds` produced: each seed's run, the summary rows, written paths."""

    runs: dict[int, RunResult]
    summary: list[SeedSummaryRow]
    paths: dict[str, Path]
    table: str


def run_seeds(config: ExperimentConfig, seeds: Sequence[int], *, command: str | None = None,
              resamples: int = RESAMPLES) -> SeedsResult:
    """Run ``config`` once per seed into ``config.out_dir / f"seed-{seed}"`` and summarise.

    Raises:
        ConfigError: no seeds, a seed given twice or negative; started by torchrun (not
            supported: run one torchrun per seed, ``--seed N``); whatever :func:`run` raises.
    """
    if launched():  # rank 0 evaluates each seed alone; the others would wait on it unbounded
        raise ConfigError("--seeds is not supported under torchrun; start one torchrun per "
                          "seed with --seed N and --out OUT/seed-N")

    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be distinct integers >= 0; got {seeds}")
    if resamples < 1:
        raise ConfigError(f"resamples must be >= 1; got {resamples}")
    out_dir = config.out_dir
    runs = {seed: run(config.replace(seed=seed, out_dir=out_dir / f"seed-{seed}"),
                      command=command) for seed in seeds}
    per_query = {s: r.per_query for s, r in runs.items()}
    summary = summarise_seeds(per_query, resamples=resamples,
                              seed=stream_seed(min(seeds), "bootstrap"))
    over = summarise_severity_means(per_query, resamples=resamples,
                                    seed=stream_seed(min(seeds), "bootstrap"))
    rows = [{**row.to_dict(), "seed": seed} for seed, result in runs.items()
            for row in result.rows]
    summary_dicts = [item.to_dict() for item in summary]
    over_dicts = [item.to_dict() for item in over]
    head = {"seeds": seeds, "resamples": resamples, "recovery_min_gap": RECOVERY_MIN_GAP}
    first = runs[seeds[0]].config
    markdown = (severity_means_markdown(over, metric=first.metrics[0])
                + seeds_markdown(summary, metric=first.metrics[0]))
    md = (f"# Results over seeds {', '.join(map(str, seeds))}\n\n"
          + (f"Command: `{command}`\n\n" if command else "")
          + "Per-seed results: " + ", ".join(f"[seed {s}](seed-{s}/results.md)" for s in seeds)
          + ".\n\n" + markdown)
    paths = {
        "summary": atomic_write_json(out_dir / "seeds_summary.json",
                                     {**head, "rows": summary_dicts,
                                      "over_severities": over_dicts}),
        "json": atomic_write_json(out_dir / "results.json",
                                  {**head, "rows": rows, "summary": summary_dicts,
                                   "over_severities": over_dicts,
                                   "config": first.to_dict(), "command": command}),
        "md": atomic_write_text(out_dir / "results.md", md),
    }
    return SeedsResult(runs, summary, paths, markdown)


def _quantiles(values: Tensor) -> tuple[float, float]:
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return float("nan"), float("nan")
    low, high = torch.quantile(values.double(), torch.tensor([0.025, 0.975], dtype=torch.float64))
    return float(low), float(high)


def summarise_seeds(per_query: dict[int, dict[Series, Tensor]], *, resamples: int = RESAMPLES,
                    seed: int = 0) -> list[SeedSummaryRow]:
    """Summary rows of every series present in all seeds (see the module docstring).

    Args:
        per_query: per seed ``{(condition, metric, measure, k): (Q,) scores}``.
        resamples: bootstrap resamples.
        seed: seeds the bootstrap generator (CPU); the same seed gives the same intervals.
    """
    return [SeedSummaryRow(*x, **vars(figures))
            for x, figures in _bootstrap(per_query, resamples, seed, _condition_partners).items()]


def summarise_severity_means(per_query: dict[int, dict[Series, Tensor]], *,
                             resamples: int = RESAMPLES, seed: int = 0) -> list[SeverityMeanRow]:
    """Each degradation's mean over its severities, summarised over seeds.

    For every (query kind, degradation, restorer or adaptation, metric, measure, k) run at two
    or more severities, the same severities in every seed, each query's scores are averaged
    over those severities (a query is the same image at every severity), and that (Q,) vector is
    summarised as :func:`summarise_seeds` summarises one condition's: mean, std over seeds, 95%
    bootstrap interval and, for restored queries, the recovery ratio against the clean queries
    and the degraded mean over the same severities, resampled together (None where the degraded
    queries were run at other severities).

    Args:
        per_query: per seed ``{(condition, metric, measure, k): (Q,) scores}``.
        resamples, seed: as for :func:`summarise_seeds`.

    Returns:
        The rows, in the order of the first seed's series; empty where no degradation has two
        severities.
    """
    grouped: dict[int, dict[tuple, Tensor]] = {}
    severities: dict[tuple, set[tuple[int, ...]]] = {}
    for run_seed, figures in per_query.items():
        parts: dict[tuple, dict[int, Tensor]] = {}
        for (condition, metric, measure, k), scores in figures.items():
            if condition.severity is None:
                key: tuple = (condition, metric, measure, k)  # the clean queries, as they are
                parts.setdefault(key, {})[0] = scores
                continue
            key = (condition.query, condition.degradation, condition.restorer,
                   condition.adaptation, metric, measure, k)
            parts.setdefault(key, {})[condition.severity] = scores
        grouped[run_seed] = {}
        for key, by_severity in parts.items():
            if isinstance(key[0], Condition) or len(by_severity) >= 2:
                grouped[run_seed][key] = torch.stack(
                    [by_severity[s].double() for s in sorted(by_severity)]).mean(dim=0)
                severities.setdefault(key, set()).add(tuple(sorted(by_severity)))
    consistent = {key for key, sets in severities.items() if len(sets) == 1}
    grouped = {s: {k: v for k, v in g.items() if k in consistent} for s, g in grouped.items()}
    def partners(key: tuple) -> tuple[tuple, tuple] | None:
        pair = _mean_partners(key)  # a recovery only against the degraded mean of the same levels
        return pair if pair is not None and severities.get(pair[1]) == severities[key] else None

    out = []
    for key, figures in _bootstrap(grouped, resamples, seed, partners).items():
        if isinstance(key[0], Condition):
            continue  # the clean queries are only the recovery's reference here
        query, degradation, restorer, adaptation, metric, measure, k = key
        (levels,) = severities[key]
        out.append(SeverityMeanRow(query, degradation, restorer, adaptation, list(levels),
                                   metric, measure, k, **vars(figures)))
    return out


def _condition_partners(x: Series) -> tuple[Series, Series] | None:
    """A restored condition's (clean, degraded) series; None for the others."""
    condition, metric, measure, k = x
    if condition.query != "restored":
        return None
    return ((Condition("clean"), metric, measure, k),
            (Condition("degraded", condition.degradation, condition.severity), metric, measure,
             k))


def _mean_partners(x: tuple) -> tuple[tuple, tuple] | None:
    """A restored severity mean's (clean, degraded mean) keys; None for the others."""
    if isinstance(x[0], Condition) or x[0] != "restored":
        return None
    _, degradation, _, _, metric, measure, k = x
    return ((Condition("clean"), metric, measure, k),
            ("degraded", degradation, None, None, metric, measure, k))


def _bootstrap(per_query: dict[int, dict[Any, Tensor]], resamples: int, seed: int,
               partners: Any) -> dict[Any, SeedFigures]:
    """The figures of every series present in all seeds, in the first seed's order.

    Args:
        per_query: per seed ``{series: (Q,) scores}``.
        resamples, seed: the bootstrap's resamples and generator seed.
        partners: ``series -> (clean, degraded) series`` for a recovery ratio, or None.

    Returns:
        ``{series: figures}``.
    """
    seeds = list(per_query)
    series = [s for s in per_query[seeds[0]] if all(s in per_query[x] for x in seeds)]
    generator = make_generator(seed)
    boot = torch.zeros(resamples, len(series), dtype=torch.float64)  # mean over seeds
    for s in seeds:
        if not series:
            break
        scores = torch.stack([per_query[s][x].double().cpu() for x in series], dim=1)  # (Q, S)
        count = scores.shape[0]
        for start in range(0, resamples, _BLOCK):
            block = min(_BLOCK, resamples - start)
            draws = torch.randint(count, (block, count), generator=generator)
            counts = torch.zeros(block, count, dtype=torch.float64)
            counts.scatter_add_(1, draws, torch.ones(block, count, dtype=torch.float64))
            boot[start:start + block] += counts @ scores / count / len(seeds)  # (block, S)
    values = {x: [float(per_query[s][x].double().mean()) for s in seeds] for x in series}
    means = {x: sum(v) / len(v) for x, v in values.items()}
    column = {x: i for i, x in enumerate(series)}
    out = {}
    for x in series:
        v = torch.tensor(values[x], dtype=torch.float64)
        std = float(v.std()) if len(seeds) > 1 else 0.0
        low, high = _quantiles(boot[:, column[x]])
        recovery = rec_low = rec_high = None
        pair = partners(x)
        if pair is not None and pair[0] in column and pair[1] in column:
            clean, degraded = pair
            gap = means[clean] - means[degraded]
            if gap >= RECOVERY_MIN_GAP:
                recovery = (means[x] - means[degraded]) / gap
                b_clean, b_degraded = boot[:, column[clean]], boot[:, column[degraded]]
                ratio = (boot[:, column[x]] - b_degraded) / (b_clean - b_degraded)
                rec_low, rec_high = _quantiles(ratio)
        out[x] = SeedFigures(seeds=seeds, values=values[x], mean=means[x], std=std, low=low,
                             high=high, recovery=recovery, recovery_low=rec_low,
                             recovery_high=rec_high)
    return out


def seeds_markdown(summary: Sequence[SeedSummaryRow], *, metric: str) -> str:
    """The summary rows of ``metric`` as a markdown table (values in %)."""
    lines = [f"### Over seeds ({metric}; mean ± std, 95% bootstrap interval over queries)", "",
             "| query | degradation | severity | restorer | measure | mean ± std (%) "
             "| 95% interval (%) | recovery [95%] |", "|---|---|---|---|---|---|---|---|"]
    ordered = sorted((s for s in summary if s.metric == metric),
                     key=lambda s: (s.condition.sort_key(), s.measure, s.k or 0))
    for item in ordered:
        c = item.condition
        measure = item.measure if item.k is None else f"{item.measure}@{item.k}"
        restorer = c.restorer or (f"bn:{c.adaptation}" if c.adaptation else "-")
        lines.append(f"| {c.query} | {c.degradation or '-'} | {c.severity or '-'} | {restorer} "
                     f"| {measure} | {_figure_cells(item, c.query)} |")
    return "\n".join(lines) + "\n"


def _figure_cells(item: SeedFigures, query: str) -> str:
    """The table cells ``mean ± std (%) | 95% interval (%) | recovery [95%]`` of one figure (a
    restored query without a recovery reads ``undefined``)."""
    if item.recovery is not None:
        recovery = f"{item.recovery:.2f} [{item.recovery_low:.2f}, {item.recovery_high:.2f}]"
    else:
        recovery = "undefined" if query == "restored" else ""
    return (f"{100 * item.mean:.2f} ± {100 * item.std:.2f} "
            f"| [{100 * item.low:.2f}, {100 * item.high:.2f}] | {recovery}")


def severity_means_markdown(rows: Sequence[SeverityMeanRow], *, metric: str) -> str:
    """The means over severities of ``metric`` (top-k and P@k / mAP alike) as a markdown table
    (values in %); empty where no degradation was run at several severities."""
    chosen = [r for r in rows if r.metric == metric]
    if not chosen:
        return ""
    lines = [f"### Mean over severities, over seeds ({metric}; mean ± std, 95% bootstrap "
             "interval over queries)", "",
             "| query | degradation | severities | restorer | measure | mean ± std (%) "
             "| 95% interval (%) | recovery [95%] |", "|---|---|---|---|---|---|---|---|"]
    for item in chosen:
        measure = item.measure if item.k is None else f"{item.measure}@{item.k}"
        restorer = item.restorer or (f"bn:{item.adaptation}" if item.adaptation else "-")
        levels = ", ".join(map(str, item.severities))
        lines.append(f"| {item.query} | {item.degradation} | {levels} | {restorer} | {measure} "
                     f"| {_figure_cells(item, item.query)} |")
    return "\n".join(lines) + "\n\n"
