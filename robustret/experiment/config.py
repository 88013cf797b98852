"""The experiment configuration: one frozen dataclass, read from TOML or JSON, saved resolved.

Precedence: dataclass defaults < the profile's training presets < ``--config FILE`` (TOML, or
the JSON a run writes as ``OUT/config.json``) < explicit command-line flags. Unknown keys are a
:class:`~robustret.core.checks.ConfigError` listing the valid ones.

:meth:`ExperimentConfig.resolved` fills in everything the profile decides (image size, the
retriever's and every network restorer's training settings) and the seeds derived from the one
``seed``, once. The runner works on the resolved configuration only and saves it as
``OUT/config.json``; ``--config OUT/config.json`` repeats the run exactly.
:meth:`ExperimentConfig.validate` checks every name, path and value a user can get wrong
before any work starts.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import degradations
from degradations.groups import GROUPS, expand
from robustret.core.checks import ConfigError, check_writable_folder
from robustret.core.keys import fingerprint
from robustret.core.paths import cache_root
from robustret.core.rng import SEED_LIMIT, stream_seed
from robustret.data import LANDMARK_SCHEMES, SCHEMES
from robustret.evaluation.results import ADAPTATION_SIDES, DEGRADE_SIDES
from robustret.experiment.cluster import check_submitit
from robustret.experiment.config_files import load_config_file as read_config_file
from robustret.experiment.config_presets import (
    PROFILE_IMAGE_SIZE,
    PROFILES,
    check_profile,
    restorer_preset,
    retriever_preset,
    several,
)
from robustret.experiment.config_values import (
    as_int,
    as_ints,
    as_path,
    as_strings,
    check_device,
    index_options,
    plain,
)
from robustret.experiment.embedding_routes import EMBEDDING_MAPS
from robustret.experiment.policy import AUTO, MODES, restorers_for
from robustret.experiment.query_sets import check_query_sets
from robustret.experiment.recipes import (
    ESTIMATED_HYBRID,
    EXPERT_RECIPES,
    canonical,
    recipe,
    recipe_names,
    restorer_names,
)
from robustret.models.backbones import check_backbone
from robustret.models.descriptor import POOLINGS, WHITENINGS, DescriptorSpec
from robustret.retrieval.ann import import_faiss
from robustret.retrieval.index_kinds import INDEX_KINDS, INDEXES
from robustret.retrieval.metrics import MEASURES
from robustret.retrieval.ranking import METRIC_NAMES
from robustret.train.classifier import RetrieverTrainConfig
from robustret.train.metric_losses import RETRIEVER_LOSSES
from robustret.train.restorer_config import RestorerTrainConfig

#: ``--restore`` modes; any registered restorer name is accepted as well (that one restorer).
RESTORE_MODES = MODES
#: ``--metric``: the ranking metrics (:data:`robustret.retrieval.ranking.METRICS`)
METRICS = METRIC_NAMES
#: ``--index``: the gallery index and the GalleryIndex backend it builds ("exact" is the
#: torch search; the faiss-* ones but "faiss-flat" are approximate, :mod:`robustret.retrieval.ann`;
#: the table is :data:`robustret.retrieval.index_kinds.INDEX_KINDS`)
INDEX_BACKENDS = {name: kind.backend for name, kind in INDEX_KINDS.items()}
#: ``--executor``: where ``jobs`` evaluate conditions (:mod:`robustret.experiment.jobs`)
EXECUTORS = ("local", "submitit")
#: the largest ``image_size``: a 4096 x 4096 image is 64 MB as float32, per image
MAX_IMAGE_SIZE = 4096

__all__ = [
    "ADAPTATION_SIDES", "DEGRADE_SIDES", "EXECUTORS", "INDEXES", "POOLINGS", "RETRIEVER_LOSSES",
    "WHITENINGS",
    "INDEX_BACKENDS", "MEASURES", "METRICS", "PROFILES", "PROFILE_IMAGE_SIZE", "RESTORE_MODES",
    "ConfigError", "ExperimentConfig", "dataset_forms", "fingerprint", "load_config_file",
    "load_toml",
]


def dataset_forms() -> dict[str, str]:
    """How ``dataset`` names each scheme of :data:`robustret.data.SCHEMES` (read at each call,
    so a scheme is one entry there): ``"SCHEME:PATH"``, or ``"SCHEME"`` for a reader that
    takes no path (a built-in generator)."""
    return {name: name if "path" not in inspect.signature(reader).parameters else f"{name}:PATH"
            for name, reader in SCHEMES.items()}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one experiment run.

    Attributes:
        dataset: ``synthetic``, ``smallnorb:PATH`` or ``folder:PATH``.
        dataset_options: extra options of that reader (e.g. ``{"camera": 1}`` for smallNORB,
            ``{"instance_pattern": "obj(\\d+)__"}`` or ``{"decode": "lazy", "workers": 4}`` for a
            folder, view counts for ``synthetic``).
        degradations: names from ``degradations.available()`` and group names
            (``study``, ``imagenet-c``, ``held-out``, ``all``: :mod:`degradations.groups`),
            expanded into their members when the configuration is built (a saved
            ``config.json`` lists the degradations).
        severities: levels 1..5 (3 = the study's parameters).
        restore: ``none``, ``auto`` (one restorer that reads nothing drawn), ``oracle`` (the
            best learned restorer per family, told the drawn degradation), ``study`` (the
            study's pixel-trained pairing; all in :mod:`robustret.experiment.policy`),
            ``classical``, ``all``, or one registered restorer name.
        embedding_map: ``resolution`` (default): the rows of :data:`AUTO` also map the
            embedding of each query estimated low-resolution by its level's map, learned on
            the gallery's training part (:mod:`robustret.experiment.embedding_routes`);
            ``none``: they search with the embeddings as embedded.
        metrics: ``l2`` and/or ``cosine``.
        ks: the k of top-k matching accuracy (and of precision@k, recall@k).
        measures: what each condition reports (:data:`MEASURES`): ``topk`` (the study's hit
            rate), ``precision``, ``recall``, ``map`` (full ranking), ``map_at_r``,
            ``r_precision``.
        degrade_side: where the degradation (and the restorer) is applied: ``query`` (the
            study), ``gallery`` (clean queries against a degraded, re-embedded gallery) or
            ``both``.
        reference: a ``results.json`` of an earlier run; the summary then holds the
            corruption-error ratio against it (the mCE idea, with our own baseline).
        profile: ``quick`` (minutes on a laptop CPU) or ``paper`` (the study's schedule); it
            chooses the defaults of ``image_size``, ``retriever`` and ``restorers``.
        seed: the one seed every other seed derives from (named streams, :mod:`robustret.core.rng`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        out_dir: where results, logs and TensorBoard files go.
        weights: a local torchvision checkpoint to start the backbone from.
        backbone: retriever backbone (``resnet34`` as in the study; ``resnet18``, ``resnet50``,
            ``vgg19``, any torchvision classification model ``tv:NAME`` and, with timm
            installed, any timm model ``timm:NAME``;
            :func:`robustret.models.backbones.build_backbone`).
        pooling: ``avg`` (the backbone's own global pooling) or ``gem`` (GeM pooling,
            :mod:`robustret.models.descriptor`); part of the retriever's cache key.
        gem_p: GeM's exponent (its starting value when learned), >= 1.
        gem_learn: learn GeM's exponent with the network.
        whiten: ``none`` or ``pca`` (PCA-whitening learned on the gallery's training part,
            L2-normalised descriptors; part of the embeddings' and conditions' keys).
        dim: the descriptor size after PCA (needs ``whiten = "pca"``; None: all directions).
        retriever_loss: shortcut that overrides ``retriever.loss`` (``classifier``,
            ``triplet``, ``contrastive``, ``arcface``); folded in when resolved.
        image_size: resize images to this square size (None: the profile's default).
        per_class: cap on images per class in each split (None: all).
        train_degrade: degradations used as training augmentation for the retriever (it is
            trained from scratch with them).
        robust_train: degradations the trained retriever is then fine-tuned on, with the
            clean-vs-degraded embedding consistency term of :mod:`robustret.train.robust`
            (empty: no fine-tuning).
        robust_epochs: epochs of that fine-tuning.
        robust_consistency: weight of its consistency term (0: degraded cross-entropy only).
        retriever_epochs, restorer_epochs: shortcuts that override the epochs of ``retriever``
            and of every entry of ``restorers``; a resolved configuration has them folded in.
        cache_dir: where trained models are cached (None: ``robustret.core.paths.cache_dir()``).
        queries_dir: a query set folder written by ``python -m robustret.data export``
            (:mod:`robustret.experiment.query_sets`); the degraded queries of each condition
            are then read from it, verified, instead of drawn (None: drawn on the fly, identically).
        query_folder: a class-per-folder directory of real photos searched as queries as they
            are and restored by restorers that read nothing drawn, in place of the planned
            conditions (:mod:`robustret.experiment.photos`); None: the data's query split.
        tensorboard: write TensorBoard logs.
        index: the gallery index (:data:`INDEXES`): ``exact`` (the torch search), ``faiss-flat``
            (exact, faiss) or an approximate one, ``faiss-ivf``, ``faiss-ivfpq``,
            ``faiss-hnsw``; an approximate run also writes ``OUT/index.json``, its recall@k
            against exact search.
        index_options: the approximate index's parameters over its defaults from the gallery
            size (``{nlist = 64, nprobe = 8}``; :func:`robustret.retrieval.ann.index_spec`).
        adapt: test-time BatchNorm adaptation rows to add: ``queries`` (the retriever adapted
            on the degraded queries embeds them; the gallery keeps its embeddings) and/or
            ``both`` (the adapted retriever embeds the gallery too).
        retriever: the retriever's training settings (None: the profile's preset). In a file,
            a table of overrides of the preset (``[retriever]`` with ``epochs = 3``).
        restorers: each restorer recipe's training settings by name
        (:mod:`robustret.experiment.recipes`;
            None: the profile's presets); in a file, tables of overrides
            (``[restorers.dae]``). Their ``degrade``, ``severity``, ``dataset`` and ``device``
            are set per condition by the runner, and every ``seed`` inside a section is derived
            from ``seed`` (recomputed on load).
        jobs: how many conditions are evaluated at once (:mod:`robustret.experiment.jobs`):
            1 evaluates them in this process; N > 1 in N worker processes (``local``) or at most N
            jobs (``submitit``). The rows are those of ``jobs = 1``.
        executor: ``local`` (a process pool on this machine) or ``submitit`` (Slurm jobs, or
            submitit's ``local`` / ``debug`` cluster; the ``cluster`` extra).
        executor_options: for ``submitit`` only: ``cluster`` (``slurm``, ``local``,
            ``debug``; default: what submitit detects) and any ``update_parameters`` option
            (``timeout_min``, ``gpus_per_node``, ``slurm_partition``, ...).
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    degradations: tuple[str, ...] = ("noise",)
    severities: tuple[int, ...] = (3,)
    restore: str = "auto"
    embedding_map: str = "resolution"
    metrics: tuple[str, ...] = METRICS
    ks: tuple[int, ...] = (1, 5, 10)
    measures: tuple[str, ...] = ("topk", "map", "precision")
    degrade_side: str = "query"
    reference: Path | None = None
    profile: str = "quick"
    seed: int = 0
    device: str = "auto"
    out_dir: Path = Path("experiments/results/default")
    weights: Path | None = None
    backbone: str = "resnet34"
    pooling: str = "avg"
    gem_p: float = 3.0
    gem_learn: bool = True
    whiten: str = "none"
    dim: int | None = None
    retriever_loss: str | None = None
    image_size: int | None = None
    per_class: int | None = None
    train_degrade: tuple[str, ...] = ()
    robust_train: tuple[str, ...] = ()
    robust_epochs: int = 3
    robust_consistency: float = 1.0
    retriever_epochs: int | None = None
    restorer_epochs: int | None = None
    cache_dir: Path | None = None
    queries_dir: Path | None = None
    query_folder: Path | None = None
    tensorboard: bool = True
    adapt: tuple[str, ...] = ()
    index: str = "exact"
    index_options: dict[str, int] = field(default_factory=dict)
    retriever: RetrieverTrainConfig | None = None
    restorers: dict[str, RestorerTrainConfig] | None = None
    jobs: int = 1
    executor: str = "local"
    executor_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Normalise types (lists to tuples, strings to paths) and check simple values."""
        self._normalise_names()
        self._normalise_numbers()
        self._check_choices()

    def _normalise_names(self) -> None:
        set_ = object.__setattr__
        for name in ("dataset", "restore", "profile", "device", "backbone"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string; got {getattr(self, name)!r}")
        if not isinstance(self.dataset_options, Mapping):
            raise ConfigError(f"dataset_options must be a table; got {self.dataset_options!r}")
        set_(self, "dataset_options", dict(self.dataset_options))
        names = as_strings(self.degradations, "degradations")
        if any(name in GROUPS for name in names):  # unknown names are left to validate()
            names = tuple(expand(names, keep_unknown=True))
        set_(self, "degradations", names)
        set_(self, "train_degrade", as_strings(self.train_degrade, "train_degrade"))
        set_(self, "robust_train", as_strings(self.robust_train, "robust_train"))
        as_int(self.robust_epochs, "robust_epochs", 0)
        if (isinstance(self.robust_consistency, bool)
                or not isinstance(self.robust_consistency, (int, float))
                or self.robust_consistency < 0):
            raise ConfigError(f"robust_consistency must be a number >= 0; "
                              f"got {self.robust_consistency!r}")
        set_(self, "metrics", as_strings(self.metrics, "metrics"))
        set_(self, "measures", as_strings(self.measures, "measures"))
        bad_measures = [m for m in self.measures if m not in MEASURES]
        if bad_measures or not self.measures or len(set(self.measures)) != len(self.measures):
            raise ConfigError(f"measures must list names from {', '.join(MEASURES)}, once "
                              f"each; got {list(self.measures)}")
        if self.embedding_map not in EMBEDDING_MAPS:
            raise ConfigError(f"embedding_map must be one of {', '.join(EMBEDDING_MAPS)}; "
                              f"got {self.embedding_map!r}")
        if self.degrade_side not in DEGRADE_SIDES:
            raise ConfigError(f"degrade_side must be one of {', '.join(DEGRADE_SIDES)}; "
                              f"got {self.degrade_side!r}")
        set_(self, "adapt", as_strings(self.adapt, "adapt"))
        bad_sides = [s for s in self.adapt if s not in ADAPTATION_SIDES]
        if bad_sides or len(set(self.adapt)) != len(self.adapt):
            raise ConfigError(f"adapt must list {' and/or '.join(ADAPTATION_SIDES)}, once each; "
                              f"got {list(self.adapt)}")
        set_(self, "index_options", index_options(self.index, self.index_options))

    def _normalise_numbers(self) -> None:
        set_ = object.__setattr__
        set_(self, "severities", as_ints(self.severities, "severities", 1, 5))
        set_(self, "ks", as_ints(self.ks, "ks (top-k)", 1))
        as_int(self.seed, "seed", 0, SEED_LIMIT - 1)
        for name in ("out_dir", "weights", "cache_dir", "reference"):
            set_(self, name, as_path(getattr(self, name), name))
        if self.out_dir is None:
            raise ConfigError("out_dir must be a path; got None")
        set_(self, "queries_dir", as_path(self.queries_dir, "queries_dir"))
        set_(self, "query_folder", as_path(self.query_folder, "query_folder"))
        if self.image_size is not None:
            as_int(self.image_size, "image_size", 1, MAX_IMAGE_SIZE)
        if self.per_class is not None:
            as_int(self.per_class, "per_class", 1)
        for name in ("retriever_epochs", "restorer_epochs"):
            if getattr(self, name) is not None:
                as_int(getattr(self, name), name, 0)
        if not isinstance(self.tensorboard, bool):
            raise ConfigError(f"tensorboard must be true or false; got {self.tensorboard!r}")

    def _check_choices(self) -> None:
        set_ = object.__setattr__
        check_profile(self.profile)
        if not self.degradations:
            raise ConfigError("at least one degradation is needed")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            raise ConfigError(f"unknown metric {bad}; choose from {', '.join(METRICS)}")
        set_(self, "restore", canonical(self.restore))  # an earlier release's recipe name
        if self.retriever is not None and not isinstance(self.retriever, RetrieverTrainConfig):
            raise ConfigError(f"[retriever] must be a table of settings; got {self.retriever!r}")
        if self.restorers is not None:
            if not isinstance(self.restorers, Mapping):
                raise ConfigError(f"[restorers] must be a table of tables, one per recipe; got "
                                  f"{self.restorers!r}")
            for name, section in self.restorers.items():
                if not isinstance(section, RestorerTrainConfig):
                    raise ConfigError(f"[restorers.{name}] must be a table of settings; got "
                                      f"{section!r}")
            set_(self, "restorers", {canonical(k): v for k, v in self.restorers.items()})
        as_int(self.jobs, "jobs", 1)
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}; "
                              f"got {self.executor!r}")
        if not isinstance(self.executor_options, Mapping) or not all(
                isinstance(k, str) for k in self.executor_options):
            raise ConfigError(f"executor_options must be a table of submitit options; "
                              f"got {self.executor_options!r}")
        set_(self, "executor_options", dict(self.executor_options))
        if self.executor_options and self.executor != "submitit":
            raise ConfigError("executor_options are options of the submitit executor; set "
                              "executor = \"submitit\" or leave them out")
        try:
            self.descriptor  # noqa: B018 (checks pooling, gem_p, gem_learn, whiten, dim)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if self.retriever_loss is not None and self.retriever_loss not in RETRIEVER_LOSSES:
            raise ConfigError(f"retriever_loss must be one of {', '.join(RETRIEVER_LOSSES)}; "
                              f"got {self.retriever_loss!r}")
        if self.adapt and self.degrade_side != "query":
            raise ConfigError("adapt (test-time BatchNorm adaptation on the degraded queries) "
                              f"needs degrade_side 'query'; got {self.degrade_side!r}")

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def field_names(cls) -> list[str]:
        """The valid configuration keys."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExperimentConfig:
        """Build from plain values (a parsed TOML or JSON file merged with flags).

        ``retriever`` and ``restorers`` may be tables of overrides of the profile's presets.

        Raises:
            ConfigError: unknown keys (the message lists the valid ones) or bad values.
        """
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; "
                              f"valid keys: {', '.join(cls.field_names())}")
        values = dict(values)
        profile = check_profile(values.get("profile", "quick"))
        if isinstance(values.get("retriever"), Mapping):
            values["retriever"] = retriever_preset(profile, dict(values["retriever"]))
        if isinstance(values.get("restorers"), Mapping):
            values["restorers"] = {
                name: (restorer_preset(profile, name, dict(section),
                                       sweep=several(values.get("severities")))
                       if isinstance(section, Mapping) else section)
                for name, section in values["restorers"].items()
            }
        try:
            return cls(**values)
        except TypeError as exc:  # a value of the wrong kind deep inside a nested section
            raise ConfigError(f"bad configuration value: {exc}") from exc

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, tuples as lists); ``from_dict`` reads it back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "retriever" and value is not None:
                value = plain(dataclasses.asdict(value))
            elif f.name == "restorers" and value is not None:
                value = {name: plain(dataclasses.asdict(c)) for name, c in sorted(value.items())}
            else:
                value = plain(value)
            out[f.name] = value
        return out

    def key(self) -> str:
        """A fingerprint of the whole configuration."""
        return fingerprint(self.to_dict())

    @property
    def descriptor(self) -> DescriptorSpec:
        """The descriptor settings as one value (ValueError for a bad one)."""
        return DescriptorSpec(pooling=self.pooling, gem_p=self.gem_p, gem_learn=self.gem_learn,
                              whiten=self.whiten, dim=self.dim)

    # ------------------------------------------------------------------ resolution
    @property
    def is_resolved(self) -> bool:
        """True when the profile's choices and derived seeds are filled in."""
        return (self.retriever is not None and self.restorers is not None
                and self.retriever_epochs is None and self.restorer_epochs is None
                and self.retriever_loss is None)

    def resolved(self) -> ExperimentConfig:
        """The configuration with every profile default and derived seed filled in, once.

        ``image_size`` takes the profile's size when unset; ``retriever`` and every recipe of
        :func:`robustret.experiment.recipes.recipe_names` missing from ``restorers`` take the
        profile's presets;
        ``retriever_epochs`` / ``restorer_epochs`` are folded into them; the sections' seeds are
        the named streams ``"retriever"`` and ``"restorer"`` of ``seed``.
        """
        retriever = self.retriever or retriever_preset(self.profile, {})
        changes: dict[str, Any] = {"seed": stream_seed(self.seed, "retriever")}
        if self.retriever_epochs is not None:
            changes["epochs"] = self.retriever_epochs
        if self.retriever_loss is not None:
            changes["loss"] = self.retriever_loss
        try:
            retriever = dataclasses.replace(retriever, **changes)
        except ValueError as exc:  # e.g. a margin the chosen loss does not take
            raise ConfigError(f"[retriever]: {exc}") from exc
        restorers = dict(self.restorers or {})
        experts = canonical(self.restore) == ESTIMATED_HYBRID or (
            self.restore == "auto" and AUTO == ESTIMATED_HYBRID)
        for name in recipe_names():  # estimated_hybrid's experts learn every severity
            restorers.setdefault(name, restorer_preset(
                self.profile, name, {},
                sweep=several(self.severities) or (experts and name in EXPERT_RECIPES)))
        unknown = sorted(set(restorers) - set(recipe_names()))
        if unknown:
            raise ConfigError(f"restorers: {', '.join(unknown)} is not a restorer recipe; "
                              f"recipes: {', '.join(recipe_names())}")
        for name, section in restorers.items():
            if section.model != recipe(name).model:
                raise ConfigError(f"restorers.{name} trains model {section.model!r}; recipe "
                                  f"{name} is the network {recipe(name).model!r}")
            section_changes: dict[str, Any] = {"seed": stream_seed(self.seed, "restorer")}
            if self.restorer_epochs is not None:
                section_changes["epochs"] = self.restorer_epochs
            restorers[name] = dataclasses.replace(section, **section_changes)
        image_size = self.image_size or PROFILE_IMAGE_SIZE[self.profile]
        return self.replace(image_size=image_size, retriever=retriever, restorers=restorers,
                            retriever_epochs=None, restorer_epochs=None, retriever_loss=None)

    def validate(self) -> ExperimentConfig:
        """Check every name and path against the registries and the file system.

        Returns:
            ``self``, for chaining.
        Raises:
            ConfigError: unknown degradation, restorer, backbone or device; a weights file,
                data folder, output or cache folder that cannot be used. Each message says what
                to do.
        """
        self._validate_names()
        self._validate_dataset()
        self._validate_files()
        return self

    def _validate_names(self) -> None:
        """Degradations, restorers, backbone, device and the index against what is installed."""
        known = degradations.available()
        for label, names in (
            ("degradation", self.degradations),
            ("train_degrade", self.train_degrade),
            ("robust_train", self.robust_train),
        ):
            bad = [n for n in names if n not in known]
            if bad:
                groups = f" or a group: {', '.join(GROUPS)}" if label == "degradation" else ""
                raise ConfigError(f"unknown {label} {', '.join(map(repr, bad))}; "
                                  f"available: {', '.join(known)}{groups}")
        if self.restore not in [*RESTORE_MODES, *restorer_names()]:
            raise ConfigError(f"unknown restore mode {self.restore!r}; choose one of "
                              f"{', '.join(RESTORE_MODES)} or a restorer: "
                              f"{', '.join(restorer_names())}")
        for name in self.degradations:
            for restorer in restorers_for(name, self.restore):
                if restorer not in restorer_names():
                    raise ConfigError(f"restorer {restorer!r} for {name} is not registered; "
                                      f"available: {', '.join(restorer_names())}")
        try:
            check_backbone(self.backbone)
        except (KeyError, ValueError) as exc:
            raise ConfigError(exc.args[0]) from exc
        check_device(self.device)
        if INDEX_KINDS[self.index].needs_faiss:
            try:
                import_faiss()
            except ImportError as exc:
                raise ConfigError(f"index {self.index}: {exc}") from exc

    def _validate_dataset(self) -> None:
        """``dataset``: a scheme of :data:`robustret.data.SCHEMES`, with an existing folder
        unless it reads none."""
        scheme, _, location = self.dataset.partition(":")
        if scheme in LANDMARK_SCHEMES:  # a benchmark with its own protocol and command
            raise ConfigError(f"{scheme} is a landmark benchmark scored by its own protocol; run "
                              f"python -m robustret.experiment.landmarks --dataset {self.dataset}")
        forms = dataset_forms()
        if scheme not in forms or (forms[scheme] != scheme and not location):
            usage = [repr(form) for form in forms.values()]
            usage = " or ".join([", ".join(usage[:-1]), usage[-1]] if len(usage) > 1 else usage)
            raise ConfigError(f"unknown dataset {self.dataset!r}; use {usage}")
        if location and not Path(location).is_dir():
            raise ConfigError(f"dataset folder {location} does not exist; check the path "
                              f"after '{scheme}:'")

    def _validate_files(self) -> None:
        """The reference, weights and query set files, the executor, the writable folders."""
        if self.reference is not None and not self.reference.is_file():
            raise ConfigError(f"reference {self.reference} does not exist; pass the "
                              "results.json of an earlier run")
        if self.weights is not None and not self.weights.is_file():
            raise ConfigError(f"weights file {self.weights} does not exist; pass the path of a "
                              "local torchvision checkpoint or leave --weights out")
        if self.query_folder is not None and not self.query_folder.is_dir():
            raise ConfigError(f"query folder {self.query_folder} is not a directory; pass a "
                              "folder with one sub-folder of photos per gallery class")
        if self.query_folder is not None and self.queries_dir is not None:
            raise ConfigError("--query-folder and --queries both replace the queries; pass one")
        if self.queries_dir is not None:  # exists, manifests readable, checksums match
            if self.degrade_side != "query":
                raise ConfigError(f"--queries holds degraded queries only; it cannot be used "
                                  f"with degrade_side {self.degrade_side!r} (use query)")
            check_query_sets(self.queries_dir, self.degradations, self.severities, self.seed)
        if self.executor == "submitit":  # installed, cluster and options known to it
            check_submitit(self.out_dir, self.executor_options)
        for name, flag in (("out_dir", "--out"), ("cache_dir", "--cache-dir")):
            folder = getattr(self, name)
            if folder is not None:  # a file, inside a file, or read-only
                check_writable_folder(folder, name, flag)
        if self.cache_dir is None:  # the default model cache: trained models are written there
            check_writable_folder(cache_root() / "models", "the model cache",
                                  "--cache-dir or $ROBUSTRET_CACHE")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration or a run's ``config.json`` into a dict of settings
    (:func:`robustret.experiment.config_files.load_config_file`; a ``config.json`` of other
    code is read with one warning naming the settings it lacks)."""
    return read_config_file(path, settings=ExperimentConfig.field_names())


load_toml = load_config_file
