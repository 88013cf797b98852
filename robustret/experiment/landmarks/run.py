"""The corrupted landmark benchmark: a benchmark's cropped queries, clean, degraded at each
severity and restored, searched against the whole gallery and scored by the protocol.

:func:`run_landmarks` = read the benchmark (:mod:`robustret.data.landmarks`) -> decode and crop
the queries -> embed the gallery (streamed, distractors included) -> for every condition
degrade (seeded as the main experiment: :func:`robustret.evaluation.pipeline.degrade_queries`
with :func:`~robustret.evaluation.pipeline.degradation_seed`, or read from exported query
sets), restore, embed, rank and score (:mod:`robustret.evaluation.landmarks`) -> report
(:mod:`robustret.report.landmarks`) and, asked, export the degraded query sets
(:mod:`robustret.experiment.landmarks.export`).

There is no training data in these benchmarks, so the retriever is not trained here: its
backbone comes from a local weights file (``weights``), or, without one, is a seeded untrained
network whose scores are a smoke test only (the report says so in bold).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import restoration
from degradations.groups import expand
from restoration import Restorer, knowledge_of
from robustret import __version__
from robustret.core.checks import ConfigError
from robustret.core.device import resolve_device
from robustret.core.rng import make_generator, stream_seed
from robustret.data import ImageSet
from robustret.data.landmark_images import load_images
from robustret.data.landmarks import (
    ClassicTruth,
    LandmarkBenchmark,
    load_landmarks,
    parse_landmark_spec,
)
from robustret.evaluation.landmarks import LandmarkRow, score_condition
from robustret.evaluation.pipeline import (
    DegradedQueries,
    Embed,
    degradation_seed,
    degrade_queries,
    restore_images,
)
from robustret.evaluation.results import Condition
from robustret.experiment.landmarks.export import export_sets, exported_queries, query_image_set
from robustret.experiment.landmarks.gallery import embed_gallery
from robustret.experiment.policy import restorers_for
from robustret.experiment.query_sets import set_folders
from robustret.models.retriever import build_retriever, init_retriever
from robustret.report.landmarks import summarise, summary_lines, table_lines, write_report
from robustret.retrieval import GalleryIndex, extract_embeddings
from robustret.retrieval.ranking import METRIC_NAMES
from robustret.retrieval.relevance import (
    QueryRelevance,
    Setup,
    classic_relevance,
    revisited_relevance,
)

log = logging.getLogger(__name__)

#: what ``restore`` may hold besides a classical restorer's name
RESTORE_CHOICES = ("none", "classical", "estimated")
UNTRAINED_NOTE = ("untrained retriever (no --weights): a seeded random backbone; these scores "
                  "are a smoke test of the pipeline, not a measurement of any method")


@dataclass(frozen=True)
class LandmarkConfig:
    """One run of the corrupted landmark benchmark.

    Attributes:
        dataset: ``oxford5k:PATH``, ``paris6k:PATH``, ``roxford5k:PATH`` or ``rparis6k:PATH``.
        out_dir: where results.md / results.json (and exported sets) go.
        degradations: degradation or group names (``study``, ``imagenet-c``, ...), expanded.
        severities: levels 1..5.
        restore: ``none``, ``classical`` (each degradation's classical baseline from the family
            policy), ``estimated`` (estimate-then-restore) and / or classical restorer names.
        restorer_files: saved restorers (``restoration.save``) applied to every degradation.
        image_size: every image (query crops too) is resized to this square.
        channels: ``rgb`` or ``gray``.
        metric: ``cosine`` (the field's inner product of normalised descriptors) or ``l2``.
        ks: the k of mP@k.
        seed: the degradations' draws and the untrained backbone's initialisation.
        backbone, weights: the retriever's backbone and its local weights file (None: untrained).
        distractors, gt_dir, image_dir: see :func:`robustret.data.landmarks.load_landmarks`.
        export: also write each (degradation, severity)'s degraded queries as a query set.
        queries_dir: score degraded queries read from exported sets instead of degrading.
        device: ``auto``, ``cpu``, ``cuda``...
        batch_size: images per forward pass.
    """

    dataset: str
    out_dir: Path = Path("experiments/results/landmarks")
    degradations: tuple[str, ...] = ("study",)
    severities: tuple[int, ...] = (3,)
    restore: tuple[str, ...] = ("classical",)
    restorer_files: tuple[Path, ...] = ()
    image_size: int = 128
    channels: str = "rgb"
    metric: str = "cosine"
    ks: tuple[int, ...] = (1, 5, 10)
    seed: int = 0
    backbone: str = "resnet34"
    weights: Path | None = None
    distractors: Path | None = None
    gt_dir: Path | None = None
    image_dir: Path | None = None
    export: bool = False
    queries_dir: Path | None = None
    device: str = "cpu"
    batch_size: int = 32

    def __post_init__(self) -> None:
        try:
            parse_landmark_spec(self.dataset)
            names = tuple(expand(self.degradations))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "degradations", names)
        bad = [s for s in self.severities if not 1 <= int(s) <= 5]
        if bad or not self.severities:
            raise ConfigError(f"severities must be levels 1..5; got {list(self.severities)}")
        known = [*RESTORE_CHOICES, *restoration.classical()]
        unknown = [r for r in self.restore if r not in known]
        if unknown:
            raise ConfigError(f"unknown restore choice(s) {unknown}; use {', '.join(known)}; a "
                              "trained network goes in as a saved file (--restorer-file)")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8; got {self.image_size}")
        if self.channels not in ("rgb", "gray"):
            raise ConfigError(f"channels must be rgb or gray; got {self.channels!r}")
        if self.metric not in METRIC_NAMES:
            raise ConfigError(f"metric must be one of {', '.join(METRIC_NAMES)}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be >= 1; got {list(self.ks)}")
        for path, what in [(self.weights, "weights file"),
                           *((p, "restorer file") for p in self.restorer_files)]:
            if path is not None and not Path(path).exists():
                raise ConfigError(f"{what} {path} does not exist")
        if self.export and self.queries_dir is not None:
            raise ConfigError("--export writes query sets and --queries reads them; use one")
        if self.queries_dir is not None:
            set_folders(self.queries_dir)  # a folder holding sets, or one line saying not

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings, JSON-ready."""
        return {name: (str(value) if isinstance(value, Path) else
                       [str(v) for v in value] if name == "restorer_files" else value)
                for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class LandmarkResult:
    """What :func:`run_landmarks` produced: the rows, the printed table and summary, the
    files."""

    rows: list[LandmarkRow]
    table: str
    summary: str
    paths: Mapping[str, Path]
    benchmark: LandmarkBenchmark
    notes: tuple[str, ...]


def relevance_by_setup(bench: LandmarkBenchmark) -> dict[Setup, list[QueryRelevance]]:
    """Per setup, each query's positives and junk: ``classic`` for Oxford5k / Paris6k, ``easy``,
    ``medium``, ``hard`` for the revisited benchmarks."""
    out: dict[Setup, list[QueryRelevance]] = {}
    for query in bench.queries:
        truth = query.truth
        if isinstance(truth, ClassicTruth):
            out.setdefault(Setup.CLASSIC, []).append(
                classic_relevance(truth.good, truth.ok, truth.junk))
        else:
            for setup, relevance in revisited_relevance(truth.easy, truth.hard,
                                                        truth.junk).items():
                out.setdefault(setup, []).append(relevance)
    return out


def build_embed(config: LandmarkConfig, device: torch.device) -> tuple[Embed, tuple[str, ...]]:
    """The retriever's embedding function, and the notes the report must carry."""
    channels = 1 if config.channels == "gray" else 3
    try:  # an unknown backbone, a weights file that does not fit it: the user's input
        model = build_retriever(config.backbone, num_classes=1, in_channels=channels,
                                weights=config.weights)
    except (KeyError, ValueError) as exc:
        raise ConfigError(str(exc.args[0] if exc.args else exc)) from None
    notes: tuple[str, ...] = ()
    if config.weights is None:
        init_retriever(model, make_generator(stream_seed(config.seed, "landmarks/init")))
        log.warning("%s", UNTRAINED_NOTE.upper())
        notes = (UNTRAINED_NOTE,)
    model = model.to(device).eval()

    def embed(images: Tensor) -> Tensor:
        return extract_embeddings(model, images, batch_size=config.batch_size, device=device)

    return embed, notes


def _restorers(config: LandmarkConfig, degradation: str,
               files: Mapping[str, Restorer]) -> list[tuple[str, Restorer]]:
    names: list[str] = []
    for choice in config.restore:
        chosen = (restorers_for(degradation, "classical") if choice == "classical"
                  else [] if choice == "none" else [choice])
        names += [n for n in chosen if n not in names]
    return [(name, restoration.build(name)) for name in names] + list(files.items())


def load_restorers(paths: Sequence[Path], device: torch.device) -> dict[str, Restorer]:
    """The saved restorers of ``--restorer-file``, by file stem.

    Raises:
        ConfigError: a file that holds no restorer, or weights that do not fit it.
    """
    try:
        return {Path(p).stem: restoration.load(p, device) for p in paths}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def read_benchmark(config: LandmarkConfig) -> tuple[LandmarkBenchmark, Tensor]:
    """The benchmark and its cropped, resized queries (Q, C, S, S) in [0, 1].

    Raises:
        ConfigError: a malformed or refused ground-truth file, an undecodable image (the
            readers' ``ValueError``, one line naming the file).
        FileNotFoundError: a missing folder, list or image.
    """
    try:
        bench = load_landmarks(config.dataset, distractors=config.distractors,
                               gt_dir=config.gt_dir, image_dir=config.image_dir)
        queries = load_images([q.file for q in bench.queries], config.image_size,
                              config.channels, boxes=[q.box for q in bench.queries])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return bench, queries


def plan(config: LandmarkConfig) -> list[Condition]:
    """Clean, then per degradation and severity the degraded queries (restored rows are added
    per degradation by :func:`run_landmarks`)."""
    return [Condition("clean"), *(Condition("degraded", d, int(s)) for d in config.degradations
                                  for s in config.severities)]


def run_landmarks(config: LandmarkConfig, *, embed: Embed | None = None) -> LandmarkResult:
    """Run the benchmark of ``config`` and write its report.

    Args:
        config: the run.
        embed: ``(N, C, H, W) -> (N, D)``; None builds the retriever of ``config`` (tests give
            a known function).
    Returns:
        :class:`LandmarkResult`.
    Raises:
        ConfigError, FileNotFoundError, ValueError: bad input, named.
    """
    device = resolve_device(config.device)
    bench, queries = read_benchmark(config)
    log.info("%s", bench.describe())
    files = load_restorers(config.restorer_files, device)
    notes: tuple[str, ...] = ()
    cached = embed is None  # the cache key names the configured retriever, not a given embed
    if embed is None:
        embed, notes = build_embed(config, device)
    gallery, reused = embed_gallery(bench, embed, config, cached=cached)
    log.info("gallery: %d embeddings %s", len(gallery), "reused from the cache" if reused
             else "computed")
    index = GalleryIndex(gallery, torch.zeros(len(gallery), dtype=torch.int64), config.metric)
    relevance = relevance_by_setup(bench)
    image_set = query_image_set(bench, queries)

    def score(condition: Condition, images: Tensor, knowledge: str | None = None
              ) -> list[LandmarkRow]:
        return score_condition(condition, images, embed=embed, index=index,
                               relevance=relevance, ks=config.ks, knowledge=knowledge)

    rows = score(Condition("clean"), queries)
    for condition in plan(config)[1:]:
        degraded = _degraded(config, condition, image_set)
        rows += score(condition, degraded.images)
        for name, restorer in _restorers(config, condition.degradation, files):
            restored = restore_images(restorer.to(device), degraded, device)
            rows += score(Condition("restored", condition.degradation, condition.severity, name),
                          restored, knowledge_of(restorer))
    meta = {**_meta(config, bench), "gallery_embeddings": "reused from the cache" if reused
            else "computed"}
    paths = dict(write_report(config.out_dir, rows, meta, notes=notes))
    if config.export:
        paths["queries"] = export_sets(config.out_dir / "queries", bench, image_set, config)
    return LandmarkResult(rows, "\n".join(table_lines(rows, markdown=False)),
                          "\n".join(summary_lines(summarise(rows), markdown=False)), paths, bench,
                          notes)


def _degraded(config: LandmarkConfig, condition: Condition, queries: ImageSet
              ) -> DegradedQueries:
    """The condition's degraded queries: drawn as the main experiment draws them, or read from
    the exported set of that condition (verified against these clean queries)."""
    assert condition.degradation is not None and condition.severity is not None
    if config.queries_dir is not None:
        return exported_queries(config.queries_dir, condition.degradation, condition.severity,
                                seed=config.seed, queries=queries)
    return degrade_queries(queries.images, condition.degradation, condition.severity,
                           seed=degradation_seed(config.seed, condition.severity))


def _meta(config: LandmarkConfig, bench: LandmarkBenchmark) -> dict[str, Any]:
    return {"dataset": config.dataset, "format": bench.format.value,
            "version": __version__, "threads": torch.get_num_threads(),
            "gallery": len(bench.gallery_files), "distractors": bench.distractors,
            "queries": len(bench.queries), "config": config.to_dict(),
            "retriever": ("untrained (seeded)" if config.weights is None
                          else f"{config.backbone} from {config.weights}")}

