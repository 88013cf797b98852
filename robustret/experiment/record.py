"""The record of a run: what ``OUT/results.json`` holds beside its rows, typed.

:class:`RunRecord` is built once at the end of :func:`robustret.experiment.runner.run`;
:meth:`RunRecord.to_json` is the JSON object written (the rows are added by
:func:`robustret.report.files.write_results`) and :meth:`RunRecord.from_json` reads it back
from a parsed ``results.json``. Readers rely on its keys: the web demo reads
``results.json["resolved"]["retriever_checkpoint"]`` and ``["resolved"]["restorers"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robustret.experiment.config import ExperimentConfig
from robustret.experiment.served import ServedRestorer
from robustret.report.summary import SummaryScore


@dataclass(frozen=True)
class DerivedSeeds:
    """The seeds a run derived from its one ``seed`` (``results.json["derived_seeds"]``).

    Attributes:
        degrade: the query degradation's seed per severity.
        retriever: the retriever's training seed.
        degrade_gallery: the gallery degradation's seed per severity (None: the gallery is
            not degraded, ``degrade_side = "query"``; then the key is absent).
        index: the approximate index's seed (None for ``index = "exact"``; then absent).
    """

    degrade: Mapping[int, int]
    retriever: int
    degrade_gallery: Mapping[int, int] | None = None
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, keys in the order runs have always written them."""
        return {
            "degrade": dict(self.degrade),
            **({"degrade_gallery": dict(self.degrade_gallery)}
               if self.degrade_gallery is not None else {}),
            "retriever": self.retriever,
            **({"index": self.index} if self.index is not None else {}),
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> DerivedSeeds:
        """Read :meth:`to_json`'s object (severity keys may be JSON strings)."""
        def by_severity(seeds: Mapping[Any, int] | None) -> dict[int, int] | None:
            return None if seeds is None else {int(s): int(v) for s, v in seeds.items()}

        return cls(by_severity(values["degrade"]) or {}, int(values["retriever"]),
                   by_severity(values.get("degrade_gallery")), values.get("index"))


@dataclass(frozen=True)
class ResolvedRun:
    """What a run resolved at run time (``results.json["resolved"]``).

    Attributes:
        device: the torch device it ran on (``"cpu"``, ``"cuda:0"``).
        threads: torch's CPU threads (a network trained here depends on them).
        retriever_key, data_key, gallery_key: the cache keys of the retriever, the data
            and the gallery embeddings.
        retriever_checkpoint: the retriever checkpoint's path (the web demo loads it).
        gallery_size, query_size: images in the gallery and the queries.
        classes: the class names, in label order.
        index: each metric's gallery index description
            (:meth:`robustret.retrieval.GalleryIndex.describe`).
        restorers: every restorer the restored rows name, with the checkpoint a trained one
            was used from (:class:`~robustret.experiment.served.ServedRestorer`; the web demo
            loads them); empty (the key absent) for a run without restored rows and in the
            records of runs written before it existed.
    """

    device: str
    threads: int
    retriever_key: str
    data_key: str
    retriever_checkpoint: str
    gallery_key: str
    gallery_size: int
    query_size: int
    classes: tuple[str, ...]
    index: Mapping[str, Mapping[str, Any]]
    restorers: tuple[ServedRestorer, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, keys in the order runs have always written them."""
        return {
            "device": self.device,
            "threads": self.threads,
            "retriever_key": self.retriever_key,
            "data_key": self.data_key,
            "retriever_checkpoint": self.retriever_checkpoint,
            "gallery_key": self.gallery_key,
            "gallery_size": self.gallery_size,
            "query_size": self.query_size,
            "classes": list(self.classes),
            "index": {metric: dict(described) for metric, described in self.index.items()},
            **({"restorers": [served.to_json() for served in self.restorers]}
               if self.restorers else {}),
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> ResolvedRun:
        """Read :meth:`to_json`'s object."""
        return cls(**{**values, "classes": tuple(values["classes"]),
                      "index": {metric: dict(d) for metric, d in values["index"].items()},
                      "restorers": tuple(ServedRestorer.from_json(served)
                                         for served in values.get("restorers", ()))})


@dataclass(frozen=True)
class Versions:
    """The versions a run ran with (``results.json["versions"]``)."""

    robustret: str
    torch: str
    python: str

    def to_json(self) -> dict[str, str]:
        """JSON-ready."""
        return {"robustret": self.robustret, "torch": self.torch, "python": self.python}


@dataclass(frozen=True)
class RunRecord:
    """Everything ``results.json`` holds beside its rows.

    Attributes:
        summary: the summary scores (:mod:`robustret.report.summary`).
        config: the resolved configuration the run used.
        command: the command line (None when run from Python).
        seed: the one seed (``config.seed``).
        derived_seeds: the seeds derived from it.
        resolved: what was resolved at run time (device, keys, sizes, indexes).
        computed, reused: conditions computed in this run and reused from earlier ones
            (``results.json["conditions"]``).
        world_size: processes that ran it (torchrun; 1 otherwise).
        versions: robustret's, torch's and Python's versions.
        timings: seconds per stage.
    """

    summary: tuple[SummaryScore, ...]
    config: ExperimentConfig
    command: str | None
    seed: int
    derived_seeds: DerivedSeeds
    resolved: ResolvedRun
    computed: int
    reused: int
    world_size: int
    versions: Versions
    timings: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``results.json`` without its ``rows``, keys in the order runs
        have always written them."""
        return {
            "summary": [score.to_dict() for score in self.summary],
            "config": self.config.to_dict(),
            "command": self.command,
            "seed": self.seed,
            "derived_seeds": self.derived_seeds.to_json(),
            "resolved": self.resolved.to_json(),
            "conditions": {"computed": self.computed, "reused": self.reused},
            "world_size": self.world_size,
            "versions": self.versions.to_json(),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> RunRecord:
        """Read a parsed ``results.json`` (its ``rows`` are ignored: ``read_rows``).

        Raises:
            KeyError: a key of :meth:`to_json` is missing.
            ConfigError: its configuration is not valid.
        """
        return cls(
            summary=tuple(SummaryScore(**score) for score in values["summary"]),
            config=ExperimentConfig.from_dict(values["config"]),
            command=values["command"],
            seed=int(values["seed"]),
            derived_seeds=DerivedSeeds.from_json(values["derived_seeds"]),
            resolved=ResolvedRun.from_json(values["resolved"]),
            computed=int(values["conditions"]["computed"]),
            reused=int(values["conditions"]["reused"]),
            world_size=int(values["world_size"]),
            versions=Versions(**values["versions"]),
            timings=dict(values["timings"]),
        )
