"""``run(config)``: plan the conditions, reuse the finished ones, compute the rest, report.

Caching (see :mod:`robustret.experiment.trained`): the retriever and each network restorer
are trained once per key of everything that affects them, code included, under ``cache_dir/models``;
gallery embeddings are stored beside the retriever, keyed by its checkpoint's hash; each
finished condition is kept in ``OUT/.conditions`` under a key of the checkpoints, seeds and
code that produced it, so an interrupted sweep continues where it stopped and a change to the
code recomputes what it affects. Results are written only at the end, each file atomically.

Under torchrun (:mod:`robustret.core.distributed`) every rank trains the retriever and the network
restorers together; rank 0 loads (and caches) the data and the gallery embeddings first, the
others then read them; then only rank 0 evaluates the conditions and writes TensorBoard and
the results, while :func:`run` returns None on the other ranks.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustret import __version__
from robustret.core.checks import ConfigError
from robustret.core.device import resolve_device
from robustret.core.distributed import is_main, main_first, setup, world_size
from robustret.core.io import atomic_write_json
from robustret.core.paths import cache_dir
from robustret.core.tracking import RunLogger
from robustret.data import RetrievalData
from robustret.evaluation.pipeline import (
    degradation_seed,
    gallery_degradation_seed,
    search_width,
)
from robustret.evaluation.results import DEGRADE_SIDE_TABLE, ResultRow
from robustret.experiment.conditions import (
    ConditionLoop,
    PerQuery,
    check_index,
    gallery_index,
    index_seed,
    load_data,
)
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.config_files import CODE_KEY, code_record
from robustret.experiment.descriptors import whitened
from robustret.experiment.jobs import run_parallel
from robustret.experiment.plan import plan_conditions
from robustret.experiment.preflight import check_against_data
from robustret.experiment.record import DerivedSeeds, ResolvedRun, RunRecord, Versions
from robustret.experiment.served import served_restorers
from robustret.experiment.trained import (
    TrainedModel,
    data_content_key,
    gallery_embeddings,
    robust_retriever,
    trained_retriever,
)
from robustret.experiment.wild_rows import wild_parts
from robustret.report.files import read_rows, table_lines, write_results
from robustret.report.index_report import (
    IndexReport,
    write_index_report,
)
from robustret.report.summary import SummaryScore, summarise_run
from robustret.report.summary import summary_markdown as run_summary_markdown
from robustret.report.sweep import plot_sweep, summarise_sweep, summary_markdown
from robustret.report.wild import wild_markdown
from robustret.retrieval import GalleryIndex
from robustret.retrieval.index_kinds import INDEX_KINDS

log = logging.getLogger(__name__)

@dataclass
class RunResult:
    """What :func:`run` produced.

    Attributes:
        rows: every result row, in plan order.
        table: the study's table as printed text.
        paths: the written result files by format (``json``, ``csv``, ``md``).
        tensorboard_dir: the TensorBoard folder (None when disabled).
        config: the resolved configuration the run used (saved as ``config.json``).
        computed, reused: how many conditions were computed in this run and reused.
        timings: seconds per stage.
        meta: everything else written into ``results.json`` (``record.to_json()``).
        per_query: each row's per-query scores, ``{(condition, metric, measure, k): (Q,)}``
            (for bootstrap intervals, :mod:`robustret.experiment.seeds`; not in ``results.json``).
        summary: the summary scores (:mod:`robustret.report.summary`).
        index_report: an approximate index's recall against exact search (also written as
            ``OUT/index.json``); None for an exact index.
        record: the typed :class:`~robustret.experiment.record.RunRecord` that ``meta`` is
            the JSON of.
    """

    rows: list[ResultRow]
    table: str
    paths: dict[str, Path]
    tensorboard_dir: Path | None
    config: ExperimentConfig
    computed: int = 0
    reused: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    per_query: PerQuery = field(default_factory=dict)
    summary: list[Any] = field(default_factory=list)
    index_report: IndexReport | None = None
    record: RunRecord | None = None


@dataclass
class _Stage:
    """What the run has made so far, handed from step to step."""

    config: ExperimentConfig
    device: torch.device
    models_dir: Path
    timings: dict[str, float]
    data: RetrievalData
    data_key: str
    retriever: TrainedModel | None = None
    gallery_key: str = ""
    indexes: dict[str, GalleryIndex] = field(default_factory=dict)


def run(config: ExperimentConfig, *, command: str | None = None) -> RunResult | None:
    """Run the experiment described by ``config`` and write its results.

    Under torchrun all ranks train; rank 0 alone evaluates and writes (module docstring).

    Args:
        config: the configuration (resolved here when it is not yet).
        command: the command line, recorded in the results.

    Returns:
        A :class:`RunResult`; None on a rank other than 0 of a torchrun run.

    Raises:
        ConfigError: a name, path or value in ``config`` that cannot work (before any work),
            or a data set that cannot be read.
        FileNotFoundError: a file named in ``config`` is missing.
    """
    began = time.perf_counter()
    config = config.resolved().validate()
    stage = _load(config, setup(resolve_device(config.device)))  # torchrun: this rank's device
    config.out_dir.mkdir(parents=True, exist_ok=True)
    main = is_main()
    logger = RunLogger(config.out_dir / "tb", tensorboard=config.tensorboard) if main else None
    try:
        _train_and_index(stage, logger)
        loop = ConditionLoop(config, stage.data, stage.data_key, stage.retriever,
                             stage.gallery_key, stage.indexes, stage.device, stage.models_dir,
                             stage.timings)
        rows = _evaluate(loop, config, main)
        if rows is None:  # a torchrun rank above 0
            return None
        assert logger is not None
        stage.timings["total_s"] = time.perf_counter() - began
        _log_run(config, logger, rows, loop.grids, stage.data, stage.indexes, stage.data_key)
    finally:
        if logger is not None:
            logger.close()
    log.info("conditions: %d computed, %d reused", loop.computed, loop.reused)
    return _report(stage, loop, rows, command)


def _load(config: ExperimentConfig, device: torch.device) -> _Stage:
    """Load the data (rank 0 first under torchrun) and check it against the configuration."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    with main_first():  # rank 0 decodes and caches, the others read its cache
        data = load_data(config)
    timings["load_data_s"] = time.perf_counter() - tick
    log.info("data: %s", data.describe().replace("\n", "; "))
    check_against_data(config, data)
    check_index(config, len(data.gallery))
    return _Stage(config, device, config.cache_dir or cache_dir("models"), timings, data,
                  data_content_key(data))


def _train_and_index(stage: _Stage, logger: RunLogger | None) -> None:
    """Train (or reuse) the retriever, robust fine-tuning included, embed the gallery and
    index it for each metric."""
    config, data, timings = stage.config, stage.data, stage.timings
    tick = time.perf_counter()
    retriever = trained_retriever(config, data, stage.data_key, stage.device, stage.models_dir,
                                  logger)
    if config.robust_train:
        retriever = robust_retriever(config, data, retriever, stage.device, stage.models_dir,
                                     logger)
    timings["retriever_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    with main_first():  # rank 0 embeds and caches, the others read the cache
        embeddings, gallery_key = gallery_embeddings(retriever, data.gallery.images,
                                                     stage.device)
    # --whiten: learned on the gallery's training part, set into the retriever (new keys)
    retriever, embeddings, gallery_key = whitened(config, retriever, embeddings, gallery_key)
    stage.indexes = {metric: gallery_index(config, embeddings, data.gallery.labels, metric)
                     for metric in config.metrics}
    timings["gallery_index_s"] = time.perf_counter() - tick
    stage.retriever, stage.gallery_key = retriever, gallery_key


def _evaluate(loop: ConditionLoop, config: ExperimentConfig, main: bool
              ) -> list[ResultRow] | None:
    """Every planned condition's rows, in plan order; None on a torchrun rank above 0 (the
    networks train on every rank; rank 0 alone evaluates)."""
    plan = plan_conditions(config)
    if world_size() > 1:
        loop.train_restorers(plan)
        if not main:
            return None
    if config.jobs > 1 or config.executor != "local":  # worker processes or jobs
        return run_parallel(loop, plan)
    return loop.run(plan)


def _report(stage: _Stage, loop: ConditionLoop, rows: list[ResultRow], command: str | None
            ) -> RunResult:
    """Write the index report, the sweep and run summaries, ``config.json`` and the results."""
    config, out_dir = stage.config, stage.config.out_dir
    index_report = _index_report(stage, loop)
    extra = _sweep_markdown(config, rows)
    reference = _reference_rows(config.reference) if config.reference is not None else None
    scores = summarise_run(rows, reference)
    headline = (config.metrics[0], "topk", min(config.ks))
    wild = wild_parts(loop, rows, metric=headline[0], k=headline[2])
    extra = "\n".join(part for part in (
        run_summary_markdown(scores, metric=headline[0], measure="topk", k=headline[2]),
        wild_markdown(wild, metric=headline[0], k=headline[2]), extra) if part)
    record = _record(stage, loop, scores, command, rows)
    meta = {**record.to_json(), **({"wild_breakdown": [part.to_dict() for part in wild]}
                                   if wild else {})}
    atomic_write_json(out_dir / "config.json", {**config.to_dict(), "world_size": world_size(),
                                                CODE_KEY: code_record()})
    paths = write_results(out_dir, rows, meta, extra_markdown=extra)
    return RunResult(rows=rows, table="\n".join(table_lines(rows, markdown=False)), paths=paths,
                     tensorboard_dir=out_dir / "tb" if config.tensorboard else None,
                     config=config, computed=loop.computed, reused=loop.reused,
                     timings=stage.timings, meta=meta, per_query=loop.per_query, summary=scores,
                     index_report=index_report, record=record)


def _index_report(stage: _Stage, loop: ConditionLoop) -> IndexReport | None:
    """An approximate index's recall against exact search, written as ``OUT/index.json``;
    None for an exact index."""
    config = stage.config
    if not INDEX_KINDS[config.index].approximate:
        return None
    indexes = stage.indexes
    index_report = IndexReport(
        config.index, max(config.ks),
        search_width(indexes[config.metrics[0]], stage.data.queries.labels,
                     measures=config.measures, ks=config.ks),
        {metric: index.describe() for metric, index in indexes.items()},
        tuple(loop.recalls), tuple(loop.reused_names))
    write_index_report(config.out_dir / "index.json", index_report)
    log.info("%s -> %s", index_report.line(), config.out_dir / "index.json")
    return index_report


def _sweep_markdown(config: ExperimentConfig, rows: list[ResultRow]) -> str:
    """For a severity sweep: its plot, ``sweep_summary.json`` and their markdown; else ''."""
    if len(config.severities) <= 1:
        return ""
    out_dir = config.out_dir
    metric, k = config.metrics[0], min(config.ks)
    plot_path = plot_sweep(rows, out_dir / "sweep.png", metric=metric, k=k)
    summary = summarise_sweep(rows, metric=metric, k=k)
    atomic_write_json(out_dir / "sweep_summary.json", [item.to_dict() for item in summary])
    return summary_markdown(summary, metric=metric, k=k) + f"\n![sweep]({plot_path.name})\n"


def _record(stage: _Stage, loop: ConditionLoop, scores: list[SummaryScore],
            command: str | None, rows: list[ResultRow]) -> RunRecord:
    """The run's :class:`RunRecord` (``results.json`` beside its ``rows``)."""
    config, data, retriever = stage.config, stage.data, stage.retriever
    assert retriever is not None and config.retriever is not None
    gallery_side = DEGRADE_SIDE_TABLE[config.degrade_side].gallery
    seeds = DerivedSeeds(
        degrade={s: degradation_seed(config.seed, s) for s in config.severities},
        retriever=config.retriever.seed,
        degrade_gallery=({s: gallery_degradation_seed(config.seed, s)
                          for s in config.severities} if gallery_side else None),
        index=index_seed(config) if config.index != "exact" else None)
    resolved = ResolvedRun(
        device=str(stage.device),
        # a network trained here depends on it (float sums in another order): README
        threads=torch.get_num_threads(),
        retriever_key=retriever.key, data_key=stage.data_key,
        retriever_checkpoint=str(retriever.checkpoint), gallery_key=stage.gallery_key,
        gallery_size=len(data.gallery), query_size=len(data.queries),
        classes=tuple(data.class_names),
        index={metric: index.describe() for metric, index in stage.indexes.items()},
        restorers=served_restorers(loop, rows))
    return RunRecord(
        summary=tuple(scores), config=config, command=command, seed=config.seed,
        derived_seeds=seeds, resolved=resolved, computed=loop.computed, reused=loop.reused,
        world_size=world_size(),
        versions=Versions(robustret=__version__, torch=torch.__version__,
                          python=platform.python_version()),
        timings=stage.timings)


def _reference_rows(path: Path) -> list[ResultRow]:
    """The rows of a reference ``results.json``; one that cannot be read is a ConfigError."""
    try:
        return read_rows(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"reference {path} is not a results.json of a run: {exc}") from exc


def _log_run(config: ExperimentConfig, logger: RunLogger, rows: list[ResultRow],
             grids: dict[str, Tensor], data: RetrievalData, indexes: dict[str, GalleryIndex],
             data_key: str) -> None:
    """TensorBoard: a scalar per row, retrieval grids, gallery projector, hparams."""
    for row in rows:
        condition = row.condition
        parts = [condition.degradation or "clean",
                 f"s{condition.severity}" if condition.severity else None,
                 condition.query, condition.restorer, row.metric]
        tail = f"top{row.k}" if row.measure == "topk" else (
            row.measure if row.k is None else f"{row.measure}@{row.k}")
        logger.scalar("eval/" + "/".join(p for p in parts if p) + f"/{tail}", row.value)
    for name, grid in grids.items():
        logger.image_grid(f"retrieval/{name}", grid)
    if config.tensorboard:
        index = next(iter(indexes.values()))
        thumbs = torch.nn.functional.interpolate(data.gallery.images, size=(32, 32), mode="area")
        names = [data.class_names[int(i)] for i in data.gallery.labels]
        logger.embeddings("gallery", index.embeddings, names, thumbs)
        headline = {
            f"{r.query}_{r.degradation or 'clean'}_{r.restorer or ''}_{r.metric}_top{r.k}":
                r.accuracy
            for r in rows
            if r.measure == "topk" and r.k == min(config.ks) and r.severity in (None, 3)
        }
        hparams = {k: v if not isinstance(v, list) else ",".join(map(str, v))
                   for k, v in config.to_dict().items()
                   if v is not None and not isinstance(v, dict)}
        logger.hparams(hparams | {"data_key": data_key}, headline)
