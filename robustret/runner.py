"""``run(config)``: plan the conditions, reuse the finished ones, compute the rest, report.

Caching (see :mod:`robustret.trained`): the retriever and each network restorer are trained
once per key of everything that affects them, code included, under ``cache_dir/models``;
gallery embeddings are stored beside the retriever, keyed by its checkpoint's hash; each
finished condition is kept in ``OUT/.conditions`` under a key of the checkpoints, seeds and
code that produced it, so an interrupted sweep continues where it stopped and a change to the
code recomputes what it affects. Results are written only at the end, each file atomically.

Under torchrun (:mod:`robustret.distributed`) every rank trains the retriever and the network
restorers together; rank 0 loads (and caches) the data and the gallery embeddings first, the
others then read them; then only rank 0 evaluates the conditions and writes TensorBoard and
the results, while :func:`run` returns None on the other ranks.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustret import __version__
from robustret.adaptation import adapt_batchnorm
from robustret.checks import ConfigError
from robustret.condition_store import ConditionStore
from robustret.config import INDEX_BACKENDS, ExperimentConfig
from robustret.data import RetrievalData, load
from robustret.device import resolve_device
from robustret.distributed import is_main, main_first, setup, world_size
from robustret.grids import retrieval_grid
from robustret.index_report import IndexRecall, IndexReport, measure_recall, write_index_report
from robustret.io import CorruptFileError, atomic_save, atomic_write_json, verified_load
from robustret.keys import source_hash
from robustret.metrics import K_FREE
from robustret.paths import cache_dir
from robustret.pipeline import (
    DegradedQueries,
    degradation_seed,
    degrade_queries,
    evaluate_condition,
    gallery_degradation_seed,
    plan_conditions,
    restore_images,
    search_width,
)
from robustret.preflight import check_against_data
from robustret.report import table_lines, write_results
from robustret.results import Condition, ResultRow
from robustret.retrieval import GalleryIndex, extract_embeddings
from robustret.rng import stream_seed
from robustret.summary import summarise_run
from robustret.summary import summary_markdown as run_summary_markdown
from robustret.sweep import plot_sweep, summarise_sweep, summary_markdown
from robustret.tracking import RunLogger
from robustret.trained import (
    TrainedModel,
    data_content_key,
    gallery_embeddings,
    robust_retriever,
    trained_restorer,
    trained_retriever,
)

log = logging.getLogger(__name__)

GRID_QUERIES = 8
#: the code that turns a trained model and queries into figures
SCORING_CODE = ("robustret.pipeline", "robustret.metrics", "robustret.retrieval",
                "robustret.results", "robustret.batching", "robustret.adaptation")
#: ``{(condition, metric, measure, k): (Q,) per-query scores}`` (see ConditionResult)
PerQuery = dict[tuple[Condition, str, str, "int | None"], Tensor]


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
        meta: everything else written into ``results.json``.
        per_query: each row's per-query scores, ``{(condition, metric, measure, k): (Q,)}``
            (for bootstrap intervals, :mod:`robustret.seeds`; not in ``results.json``).
        summary: the summary scores (:mod:`robustret.summary`).
        index_report: an approximate index's recall against exact search (also written as
            ``OUT/index.json``); None for an exact index.
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
    timings: dict[str, float] = {}
    device = setup(resolve_device(config.device))  # under torchrun: this rank's device
    out_dir = config.out_dir
    models_dir = config.cache_dir or cache_dir("models")

    tick = time.perf_counter()
    with main_first():  # rank 0 decodes and caches, the others read its cache
        data = _load_data(config)
    timings["load_data_s"] = time.perf_counter() - tick
    log.info("data: %s", data.describe().replace("\n", "; "))
    check_against_data(config, data)
    _check_index(config, len(data.gallery))
    data_key = data_content_key(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    main = is_main()
    logger = RunLogger(out_dir / "tb", tensorboard=config.tensorboard) if main else None
    try:
        tick = time.perf_counter()
        retriever = trained_retriever(config, data, data_key, device, models_dir, logger)
        if config.robust_train:
            retriever = robust_retriever(config, data, retriever, device, models_dir, logger)
        timings["retriever_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        with main_first():  # rank 0 embeds and caches, the others read the cache
            embeddings, gallery_key = gallery_embeddings(retriever, data.gallery.images, device)
        indexes = {metric: gallery_index(config, embeddings, data.gallery.labels, metric)
                   for metric in config.metrics}
        timings["gallery_index_s"] = time.perf_counter() - tick

        loop = _ConditionLoop(config, data, data_key, retriever, gallery_key, indexes, device,
                              models_dir, timings)
        plan = plan_conditions(config)
        if world_size() > 1:  # the networks train on every rank; rank 0 alone evaluates
            loop.train_restorers(plan)
            if not main:
                return None
        assert logger is not None
        if config.jobs > 1 or config.executor != "local":  # worker processes or jobs
            from robustret.jobs import run_parallel

            rows = run_parallel(loop, plan)
        else:
            rows = loop.run(plan)
        timings["total_s"] = time.perf_counter() - began
        _log_run(config, logger, rows, loop.grids, data, indexes, data_key)
    finally:
        if logger is not None:
            logger.close()
    log.info("conditions: %d computed, %d reused", loop.computed, loop.reused)
    index_report = None
    if INDEX_BACKENDS[config.index] not in ("torch", "faiss"):
        index_report = IndexReport(
            config.index, max(config.ks),
            search_width(indexes[config.metrics[0]], data.queries.labels,
                         measures=config.measures, ks=config.ks),
            {metric: index.describe() for metric, index in indexes.items()},
            tuple(loop.recalls), tuple(loop.reused_names))
        write_index_report(out_dir / "index.json", index_report)
        log.info("%s -> %s", index_report.line(), out_dir / "index.json")

    extra = ""
    if len(config.severities) > 1:
        metric, k = config.metrics[0], min(config.ks)
        plot_path = plot_sweep(rows, out_dir / "sweep.png", metric=metric, k=k)
        summary = summarise_sweep(rows, metric=metric, k=k)
        atomic_write_json(out_dir / "sweep_summary.json", [item.to_dict() for item in summary])
        extra = summary_markdown(summary, metric=metric, k=k) + f"\n![sweep]({plot_path.name})\n"
    reference = _reference_rows(config.reference) if config.reference is not None else None
    scores = summarise_run(rows, reference)
    headline = (config.metrics[0], "topk", min(config.ks))
    extra = "\n".join(part for part in (
        run_summary_markdown(scores, metric=headline[0], measure="topk", k=headline[2]),
        extra) if part)
    meta = {
        "summary": [score.to_dict() for score in scores],
        "config": config.to_dict(),
        "command": command,
        "seed": config.seed,
        "derived_seeds": {
            "degrade": {s: degradation_seed(config.seed, s) for s in config.severities},
            **({"degrade_gallery": {s: gallery_degradation_seed(config.seed, s)
                                    for s in config.severities}}
               if config.degrade_side != "query" else {}),
            "retriever": config.retriever.seed,
            **({"index": index_seed(config)} if config.index != "exact" else {}),
        },
        "resolved": {
            "device": str(device),
            # a network trained here depends on it (float sums in another order): README
            "threads": torch.get_num_threads(),
            "retriever_key": retriever.key,
            "data_key": data_key,
            "retriever_checkpoint": str(retriever.checkpoint),
            "gallery_key": gallery_key,
            "gallery_size": len(data.gallery),
            "query_size": len(data.queries),
            "classes": list(data.class_names),
            "index": {metric: index.describe() for metric, index in indexes.items()},
        },
        "conditions": {"computed": loop.computed, "reused": loop.reused},
        "world_size": world_size(),
        "versions": {
            "robustret": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "timings": timings,
    }
    atomic_write_json(out_dir / "config.json", {**config.to_dict(), "world_size": world_size()})
    paths = write_results(out_dir, rows, meta, extra_markdown=extra)
    return RunResult(rows=rows, table="\n".join(table_lines(rows, markdown=False)), paths=paths,
                     tensorboard_dir=out_dir / "tb" if config.tensorboard else None,
                     config=config, computed=loop.computed, reused=loop.reused, timings=timings,
                     meta=meta, per_query=loop.per_query, summary=scores,
                     index_report=index_report)


def index_seed(config: ExperimentConfig) -> int:
    """The seed of the approximate index's training sample: the ``"index"`` stream."""
    return stream_seed(config.seed, "index")


def _check_index(config: ExperimentConfig, gallery_size: int) -> None:
    """An approximate index's options against the gallery size, before any training."""
    backend = INDEX_BACKENDS[config.index]
    if backend in ("torch", "faiss"):
        return
    from robustret.retrieval.ann import index_spec

    try:
        index_spec(backend, gallery_size, None, config.index_options)
    except ValueError as exc:
        raise ConfigError(f"index {config.index}: {exc}") from exc
    wide = [m for m in config.measures if m in K_FREE]
    if wide:
        log.warning("index %s: %s rank past the top-k, so each query searches that far (IVF "
                    "rows are completed by exact search, HNSW's ef rises to the width); for the "
                    "index's own top-k speed use --measures topk precision", config.index,
                    ", ".join(wide))


def gallery_index(config: ExperimentConfig, embeddings: Tensor, labels: Tensor, metric: str
                  ) -> GalleryIndex:
    """The run's gallery index (``config.index``) of (G, D) ``embeddings`` for ``metric``; an
    option the gallery cannot support is a :class:`ConfigError` saying what to use."""
    backend = INDEX_BACKENDS[config.index]
    if backend in ("torch", "faiss"):
        return GalleryIndex(embeddings, labels, metric, backend=backend)
    try:
        return GalleryIndex(embeddings, labels, metric, backend=backend,
                            options=config.index_options, seed=index_seed(config))
    except ValueError as exc:
        raise ConfigError(f"index {config.index}: {exc}") from exc


def _reference_rows(path: Path) -> list[ResultRow]:
    """The rows of a reference ``results.json``; one that cannot be read is a ConfigError."""
    import json

    from robustret.report import read_rows

    try:
        return read_rows(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"reference {path} is not a results.json of a run: {exc}") from exc


def _load_data(config: ExperimentConfig) -> RetrievalData:
    """The data set of ``config``; a data set that cannot be read is a :class:`ConfigError`."""
    try:
        return load(config.dataset, image_size=config.image_size, per_class=config.per_class,
                    seed=config.seed, **config.dataset_options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dataset {config.dataset!r}: {exc}") from exc


class _ConditionLoop:
    """Evaluates planned conditions in order, reusing finished ones and sharing the degraded
    queries of one (degradation, severity) and each trained restorer between conditions."""

    def __init__(self, config: ExperimentConfig, data: RetrievalData, data_key: str,
                 retriever: TrainedModel, gallery_key: str, indexes: dict[str, GalleryIndex],
                 device: torch.device, models_dir: Path, timings: dict[str, float]) -> None:
        self.config, self.data, self.data_key = config, data, data_key
        self.retriever, self.gallery_key, self.indexes = retriever, gallery_key, indexes
        self.gallery_embeddings = next(iter(indexes.values())).embeddings  # (G, D), raw
        self.device, self.models_dir, self.timings = device, models_dir, timings
        self.store = ConditionStore(config.out_dir / ".conditions")
        self.grids: dict[str, Tensor] = {}
        self.computed = self.reused = 0
        self._degraded: tuple[tuple[str, int], DegradedQueries] | None = None
        self._gallery: tuple[tuple[str, int], DegradedQueries, dict[str, GalleryIndex]] | None
        self._gallery = None
        self.per_query: PerQuery = {}
        self.recalls: list[IndexRecall] = []  # approximate index vs exact, per computed one
        self.reused_names: list[str] = []
        self._restorers: dict[tuple[str, str], TrainedModel] = {}
        self._adapted: tuple[tuple, torch.nn.Module, dict[str, GalleryIndex] | None] | None = None
        count = len(data.queries)
        self.grid_index = torch.linspace(0, count - 1, min(GRID_QUERIES, count)).long()
        self._scoring_code = source_hash(*SCORING_CODE)
        self._degrading_code = source_hash("degradations")

    def train_restorers(self, plan: list[Condition]) -> None:
        """Train (or reuse) every restorer ``plan`` needs now, in plan order: under torchrun
        all ranks train them together before rank 0 evaluates alone."""
        for condition in plan:
            if condition.restorer is not None:
                self.restorer(condition)

    def run(self, plan: list[Condition]) -> list[ResultRow]:
        rows: list[ResultRow] = []
        for condition in plan:
            rows += self.evaluate(condition)
        return rows

    def key(self, condition: Condition, restorer: TrainedModel | None) -> str:
        """Everything that decides a condition's figures."""
        salt: list[object] = [self.retriever.content_key, self.gallery_key, self.data_key,
                              list(self.config.metrics), list(self.config.ks), self._scoring_code,
                              list(self.config.measures), self.config.degrade_side]
        if self.config.index != "exact":  # (exact keys stay those of earlier runs)
            salt += [self.config.index, sorted(self.config.index_options.items()),
                     index_seed(self.config)]
        if condition.severity is not None:
            salt += [degradation_seed(self.config.seed, condition.severity), self._degrading_code]
            if self.config.degrade_side != "query":
                salt.append(gallery_degradation_seed(self.config.seed, condition.severity))
            if self.config.queries_dir is not None:  # the exported set's exact values
                images = self.degraded(condition).images.contiguous().numpy()
                salt.append(hashlib.sha256(images.tobytes()).hexdigest())
        if restorer is not None:
            salt.append(restorer.content_key)
        return condition.key(*salt)

    def reuse(self, condition: Condition) -> list[ResultRow] | None:
        """The finished condition's rows from the store (counted, per-query scores kept), or
        None; its restorer is trained or built here first, to key it."""
        return self._lookup(condition)[2]

    def _lookup(self, condition: Condition
                ) -> tuple[TrainedModel | None, str, list[ResultRow] | None]:
        restorer = self.restorer(condition) if condition.restorer is not None else None
        key = self.key(condition, restorer)
        cached = self.store.load(condition, key)
        per_query = self._load_per_query(condition, key) if cached is not None else None
        if cached is None or per_query is None:
            return restorer, key, None
        self.reused += 1
        self.reused_names.append(condition.name)
        log.info("%s: reused the finished condition", condition.name)
        self.per_query.update(per_query)
        return restorer, key, cached

    def evaluate(self, condition: Condition) -> list[ResultRow]:
        restorer, key, cached = self._lookup(condition)
        if cached is not None:
            return cached
        tick = time.perf_counter()
        data = self.data
        side = self.config.degrade_side
        embed, indexes = self.embed, self.indexes
        gallery_images = data.gallery.images
        if condition.adaptation is not None:
            embed, indexes = self.adapted(condition)
        if side != "query" and condition.degradation is not None:
            gallery_images, indexes = self.gallery(condition, restorer)
        query_degraded = condition.degradation is not None and side != "gallery"
        result = evaluate_condition(
            condition, queries=data.queries.images, labels=data.queries.labels,
            embed=embed, indexes=indexes, ks=self.config.ks,
            degraded=self.degraded(condition) if query_degraded else None,
            restorer=restorer.model if restorer is not None else None, device=self.device,
            measures=self.config.measures, degrade_side=side,
            retriever_seen=(*self.config.train_degrade, *self.config.robust_train))
        per_query = {(condition, *which): values for which, values in result.per_query.items()}
        for metric, index in indexes.items():
            if not index.is_exact and result.embeddings is not None:
                recall, worst = measure_recall(index, result.embeddings, result.retrieved[metric],
                                               max(self.config.ks))
                self.recalls.append(IndexRecall(condition.name, metric, recall, worst))
        self.store.save(condition, key, result.rows)
        atomic_save({which[1:]: values for which, values in per_query.items()},
                    self._per_query_path(condition, key), checksum=True)
        self.per_query.update(per_query)
        first = result.retrieved[self.config.metrics[0]]
        k_grid = min(5, max(self.config.ks))
        self.grids[condition.name] = retrieval_grid(
            result.images[self.grid_index], data.queries.labels[self.grid_index],
            gallery_images, data.gallery.labels, first[self.grid_index, :k_grid])
        self.timings[f"{condition.name}_s"] = time.perf_counter() - tick
        self.computed += 1
        return result.rows

    def embed(self, images: Tensor) -> Tensor:
        return extract_embeddings(self.retriever.model, images, device=self.device)

    def _per_query_path(self, condition: Condition, key: str) -> Path:
        return self.store.folder / f"{condition.name}-{key}.per_query.pt"

    def _load_per_query(self, condition: Condition, key: str) -> PerQuery | None:
        """The stored per-query scores of a finished condition, or None (then it is
        recomputed: the bootstrap intervals need them)."""
        path = self._per_query_path(condition, key)
        if not path.is_file():
            return None
        try:
            stored = verified_load(path)
            return {(condition, *which): values for which, values in stored.items()}
        except (CorruptFileError, AttributeError, TypeError) as exc:
            log.warning("per-query scores %s unusable (%s); recomputing the condition", path, exc)
            return None

    def gallery(self, condition: Condition, restorer: TrainedModel | None
                ) -> tuple[Tensor, dict[str, GalleryIndex]]:
        """The gallery images and indexes of a condition when the degradation is applied to
        the gallery (``degrade_side`` ``gallery`` or ``both``): the gallery degraded with its
        own seed stream (once per degradation and severity), restored by the condition's
        restorer for a restored condition, and re-embedded."""
        assert condition.degradation is not None and condition.severity is not None
        which = (condition.degradation, condition.severity)
        if self._gallery is None or self._gallery[0] != which:
            seed = gallery_degradation_seed(self.config.seed, condition.severity)
            degraded = degrade_queries(self.data.gallery.images, *which, seed=seed)
            self._gallery = (which, degraded, self._indexes_of(degraded.images))
        _, degraded, indexes = self._gallery
        if restorer is None:
            return degraded.images, indexes
        images = restore_images(restorer.model, degraded, self.device)
        return images, self._indexes_of(images)

    def _indexes_of(self, gallery: Tensor) -> dict[str, GalleryIndex]:
        embeddings = self.embed(gallery)
        return {metric: gallery_index(self.config, embeddings, self.data.gallery.labels, metric)
                for metric in self.config.metrics}

    def adapted(self, condition: Condition) -> tuple[Callable[[Tensor], Tensor],
                                                     dict[str, GalleryIndex]]:
        """The embedding function and indexes of an adapted condition: the retriever with
        BatchNorm statistics of the condition's degraded queries (made once per degradation
        and severity) embeds the queries, and for ``both`` the gallery as well."""
        which = (condition.degradation, condition.severity)
        if self._adapted is None or self._adapted[0] != which:
            model = adapt_batchnorm(self.retriever.model, self.degraded(condition).images,
                                    device=self.device)
            self._adapted = (which, model, None)
        _, model, both = self._adapted

        def embed(images: Tensor) -> Tensor:
            return extract_embeddings(model, images, device=self.device)

        if condition.adaptation == "queries":
            return embed, self.indexes
        if both is None:
            gallery = embed(self.data.gallery.images)
            both = {metric: gallery_index(self.config, gallery, self.data.gallery.labels,
                                          metric)
                    for metric in self.config.metrics}
            self._adapted = (which, model, both)
        return embed, both

    def degraded(self, condition: Condition) -> DegradedQueries:
        """The degraded queries of the condition's (degradation, severity), made once; with
        ``config.queries_dir`` read from its query set instead, which must verify and match the
        condition, the seed and the clean queries (else a one-line ConfigError)."""
        assert condition.degradation is not None and condition.severity is not None
        which = (condition.degradation, condition.severity)
        if self._degraded is None or self._degraded[0] != which:
            if self.config.queries_dir is not None:
                from robustret.query_sets import query_set_for

                made = query_set_for(self.config.queries_dir, *which, seed=self.config.seed,
                                     queries=self.data.queries)
                log.info("%s severity %d: degraded queries read from the query set in %s",
                         *which, self.config.queries_dir)
            else:
                seed = degradation_seed(self.config.seed, condition.severity)
                made = degrade_queries(self.data.queries.images, *which, seed=seed)
            self._degraded = (which, made)
        return self._degraded[1]

    def restorer(self, condition: Condition) -> TrainedModel:
        """The condition's restorer, trained or built once per (name, training degradation);
        a blind recipe once for all degradations."""
        from robustret.policy import BLIND, training_degradation
        from robustret.recipes import RECIPES

        assert condition.restorer is not None and condition.degradation is not None
        blind = condition.restorer in RECIPES and RECIPES[condition.restorer].blind
        target = BLIND if blind else training_degradation(condition.degradation)
        which = (condition.restorer, target)
        if which not in self._restorers:
            tick = time.perf_counter()
            self._restorers[which] = trained_restorer(
                condition.restorer, target, list(self.config.severities), self.config,
                self.data, self.data_key, self.device, self.models_dir, self.retriever,
                self.gallery_embeddings)
            self.timings[f"restorer_{'-'.join(which)}_s"] = time.perf_counter() - tick
        return self._restorers[which]


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
