"""The loop over a run's conditions: each condition's key, its reuse from the condition
store, its degraded, adapted and restored queries, and its evaluation; plus the run's data
and gallery index. :func:`robustret.experiment.runner.run` drives it serially, and
:mod:`robustret.experiment.jobs` in worker processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from robustret.core.checks import ConfigError
from robustret.core.io import CorruptFileError, atomic_save, verified_load
from robustret.core.keys import fingerprint, source_hash
from robustret.core.rng import stream_seed
from robustret.data import RetrievalData, load
from robustret.evaluation.pipeline import (
    DegradedQueries,
    degradation_seed,
    degrade_queries,
    evaluate_condition,
    gallery_degradation_seed,
    restore_images,
)
from robustret.evaluation.results import DEGRADE_SIDE_TABLE, Condition, ResultRow
from robustret.experiment.condition_store import ConditionStore
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.embedding_routes import (
    MAP_IMAGES,
    MAPS_TRAINED_ON,
    ResolutionMaps,
    training_subset,
)
from robustret.experiment.experts import (
    EXPERT_SEVERITIES,
    EXPERTS,
    estimated_hybrid,
    experts_seen,
)
from robustret.experiment.policy import (
    AUTO,
    BLIND,
    retriever_seen,
    seen_in_training,
    training_degradation,
)
from robustret.experiment.query_sets import query_set_for
from robustret.experiment.recipes import ESTIMATED_HYBRID, RECIPES, recipe_names
from robustret.experiment.trained import (
    TrainedModel,
    trained_restorer,
)
from robustret.models.adaptation import adapt_batchnorm
from robustret.report.grids import retrieval_grid
from robustret.report.index_report import (
    IndexRecall,
    measure_recall,
)
from robustret.retrieval import GalleryIndex, extract_embeddings
from robustret.retrieval.ann import index_spec
from robustret.retrieval.index_kinds import INDEX_KINDS
from robustret.retrieval.metrics import K_FREE

log = logging.getLogger(__name__)

GRID_QUERIES = 8
#: the code that turns a trained model and queries into figures
SCORING_CODE = ("robustret.evaluation.pipeline", "robustret.retrieval.metrics",
                "robustret.retrieval", "robustret.evaluation.results", "robustret.core.batching",
                "robustret.models.adaptation")
#: ``{(condition, metric, measure, k): (Q,) per-query scores}`` (see ConditionResult)
PerQuery = dict[tuple[Condition, str, str, "int | None"], Tensor]


@dataclass(frozen=True)
class Expert:
    """A learned restorer inside a composite one (``estimated_hybrid``'s route of a family).

    Attributes:
        recipe: the recipe it was trained as (``oracle_hybrid``).
        trained_on: what it learned (a degradation, or a mixture).
        trained: the model, its cache key, checkpoint and content key.
    """

    recipe: str
    trained_on: str
    trained: TrainedModel


def index_seed(config: ExperimentConfig) -> int:
    """The seed of the approximate index's training sample: the ``"index"`` stream."""
    return stream_seed(config.seed, "index")


def check_index(config: ExperimentConfig, gallery_size: int) -> None:
    """An approximate index's options against the gallery size, before any training."""
    kind = INDEX_KINDS[config.index]
    if not kind.approximate:
        return
    try:
        index_spec(kind.backend, gallery_size, None, config.index_options)
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
    kind = INDEX_KINDS[config.index]
    if not kind.approximate:
        return GalleryIndex(embeddings, labels, metric, backend=kind.backend)
    try:
        return GalleryIndex(embeddings, labels, metric, backend=kind.backend,
                            options=config.index_options, seed=index_seed(config))
    except ValueError as exc:
        raise ConfigError(f"index {config.index}: {exc}") from exc


def load_data(config: ExperimentConfig) -> RetrievalData:
    """The data set of ``config``; a data set that cannot be read is a :class:`ConfigError`."""
    try:
        return load(config.dataset, image_size=config.image_size, per_class=config.per_class,
                    seed=config.seed, **config.dataset_options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dataset {config.dataset!r}: {exc}") from exc


class ConditionLoop:
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
        self._restorers: dict[tuple[str, ...], TrainedModel] = {}
        self._maps: ResolutionMaps | None = None
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
            if DEGRADE_SIDE_TABLE[self.config.degrade_side].gallery:
                salt.append(gallery_degradation_seed(self.config.seed, condition.severity))
            if self.config.queries_dir is not None:  # the exported set's exact values
                images = self.degraded(condition).images.contiguous().numpy()
                salt.append(hashlib.sha256(images.tobytes()).hexdigest())
        if restorer is not None:
            salt.append(restorer.content_key)
        if self.maps_embeddings(condition):
            salt.append(self.resolution_maps().key())
        return condition.key(*salt)

    def maps_embeddings(self, condition: Condition) -> bool:
        """Whether ``condition``'s query embeddings go through the resolution maps
        (``--embedding-map resolution``): :data:`AUTO`'s restored queries searched against
        the clean gallery, not adapted."""
        return (self.config.embedding_map == "resolution" and condition.query == "restored"
                and condition.restorer == AUTO and condition.adaptation is None
                and self.config.degrade_side == "query")

    def resolution_maps(self) -> ResolutionMaps:
        """The run's :class:`ResolutionMaps`, on the gallery's training part (built once;
        each level's map is learned when first met)."""
        if self._maps is None:
            limit = self.config.retriever.max_images
            images, clean = self.data.gallery.images, self.gallery_embeddings
            if limit is not None:
                images, clean = images[:limit], clean[:limit]
            if len(images) > MAP_IMAGES:
                subset = training_subset(len(images))
                images, clean = images[subset], clean[subset]
            self._maps = ResolutionMaps(self.embed, images, clean,
                                        fingerprint(self.retriever.content_key, self.gallery_key))
        return self._maps

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
        # what the retriever and the restorer saw are labels of the rows, not figures (not in
        # the key): the current rule's, so a store written under an older rule reads as a new
        # run would
        seen = self.retriever_seen()
        restorer_seen = self.restorer_seen(condition) if restorer is not None else ()
        return restorer, key, [dataclasses.replace(
            row, retriever_seen=seen, restorer_seen=restorer_seen if row.knowledge else ())
            for row in cached]

    def retriever_seen(self) -> tuple[str, ...]:
        """The degradations the run's retriever was trained or fine-tuned on, mixtures with
        their members (:func:`~robustret.experiment.policy.retriever_seen`)."""
        return retriever_seen(*self.config.train_degrade, *self.config.robust_train)

    def evaluate(self, condition: Condition) -> list[ResultRow]:
        restorer, key, cached = self._lookup(condition)
        if cached is not None:
            return cached
        tick = time.perf_counter()
        data = self.data
        side = self.config.degrade_side
        degrades = DEGRADE_SIDE_TABLE[side]
        embed, indexes = self.embed, self.indexes
        gallery_images = data.gallery.images
        if condition.adaptation is not None:
            embed, indexes = self.adapted(condition)
        if self.maps_embeddings(condition):
            embed = self.resolution_maps().routed(embed)
        if degrades.gallery and condition.degradation is not None:
            gallery_images, indexes = self.gallery(condition, restorer)
        query_degraded = condition.degradation is not None and degrades.queries
        result = evaluate_condition(
            condition, queries=data.queries.images, labels=data.queries.labels,
            embed=embed, indexes=indexes, ks=self.config.ks,
            degraded=self.degraded(condition) if query_degraded else None,
            restorer=restorer.model if restorer is not None else None, device=self.device,
            measures=self.config.measures, degrade_side=side,
            retriever_seen=self.retriever_seen(),
            restorer_seen=self.restorer_seen(condition) if restorer is not None else ())
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
                made = query_set_for(self.config.queries_dir, *which, seed=self.config.seed,
                                     queries=self.data.queries)
                log.info("%s severity %d: degraded queries read from the query set in %s",
                         *which, self.config.queries_dir)
            else:
                seed = degradation_seed(self.config.seed, condition.severity)
                made = degrade_queries(self.data.queries.images, *which, seed=seed)
            self._degraded = (which, made)
        return self._degraded[1]

    @staticmethod
    def _training_target(condition: Condition) -> str:
        """What the condition's restorer is trained on: the study's mixture (:data:`BLIND`)
        for a blind recipe, else :func:`training_degradation` of the condition's."""
        assert condition.restorer is not None and condition.degradation is not None
        blind = condition.restorer in RECIPES and RECIPES[condition.restorer].blind
        return BLIND if blind else training_degradation(condition.degradation)

    def restorer_seen(self, condition: Condition) -> tuple[str, ...]:
        """What the condition's restorer was trained on (:func:`seen_in_training`), and the
        degradation the resolution maps learned from where they serve it; empty for a filter
        that is not trained."""
        if condition.restorer == ESTIMATED_HYBRID:
            return experts_seen()
        maps = MAPS_TRAINED_ON if self.maps_embeddings(condition) else ()
        if condition.restorer not in recipe_names():
            return maps
        return (*seen_in_training(self._training_target(condition)), *maps)

    def experts(self, condition: Condition) -> dict[str, Expert]:
        """The learned experts inside the condition's composite restorer (``estimated_hybrid``)
        by the family whose route each is, as the loop trained (or reused) them; empty for any
        other restorer (:data:`~robustret.experiment.experts.EXPERTS`: every route is one).
        The loop's own look-up, so the models the composite was built from."""
        if condition.restorer != ESTIMATED_HYBRID:
            return {}
        return {family: Expert(recipe, target,
                               self._trained(recipe, target, list(EXPERT_SEVERITIES)))
                for family, (recipe, target) in EXPERTS.items()}

    def restorer(self, condition: Condition) -> TrainedModel:
        """The condition's restorer, trained or built once per (name, training degradation);
        a blind recipe once for all degradations."""
        assert condition.restorer is not None
        if condition.restorer == ESTIMATED_HYBRID:  # learned experts, every severity; once
            if (ESTIMATED_HYBRID,) not in self._restorers:
                self._restorers[(ESTIMATED_HYBRID,)] = estimated_hybrid(self._trained)
            return self._restorers[(ESTIMATED_HYBRID,)]
        return self._trained(condition.restorer, self._training_target(condition),
                             list(self.config.severities))

    def _trained(self, name: str, target: str, severities: list[int]) -> TrainedModel:
        """Restorer ``name`` trained on ``target`` at ``severities`` (or built), once."""
        which = (name, target, *map(str, severities))
        if which not in self._restorers:
            tick = time.perf_counter()
            self._restorers[which] = trained_restorer(
                name, target, severities, self.config, self.data, self.data_key, self.device,
                self.models_dir, self.retriever, self.gallery_embeddings)
            self.timings[f"restorer_{name}-{target}_s"] = time.perf_counter() - tick
        return self._restorers[which]


