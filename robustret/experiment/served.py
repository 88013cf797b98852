"""Which restorer served which rows of a run, and where its weights are: the record a reader
needs to restore a new image exactly as the run did (the web page offers them).

:func:`served_restorers` is called once at the end of a run
(:func:`robustret.experiment.runner.run`); ``results.json["resolved"]["restorers"]`` holds
one :meth:`ServedRestorer.to_json` object per restorer the run used, trained or not, in the
order its rows first name them. A trained one names the checkpoint the rows were computed
with and that file's SHA-256 (what the rows are keyed by,
:func:`robustret.experiment.trained.weights_key`), so a reader can refuse a file that is not
the one the run used. A composite restorer (``estimated_hybrid``: an estimate routes each
query to a learned expert) has no checkpoint of its own: its record lists its experts
(:class:`ServedExpert`), each with its checkpoint and SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from restoration import knowledge_of
from robustret.evaluation.results import Condition, ResultRow
from robustret.experiment.conditions import ConditionLoop
from robustret.experiment.trained import TrainedModel


@dataclass(frozen=True)
class ServedExpert:
    """One learned expert inside a composite restorer.

    Attributes:
        family: the estimated family it restores (the composite's route: ``noise``,
            ``blur``, ``resolution``).
        restorer: the recipe it was trained as (``oracle_hybrid``).
        trained_on: what it learned (a degradation, or a mixture).
        checkpoint: its ``last.pt``; None where training wrote none (zero epochs).
        sha256: that file's SHA-256; None where there is no checkpoint.
    """

    family: str
    restorer: str
    trained_on: str
    checkpoint: str | None = None
    sha256: str | None = None

    @property
    def choice(self) -> str:
        """``restorer:trained_on``, as :attr:`ServedRestorer.choice` names a network."""
        return f"{self.restorer}:{self.trained_on}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"family": self.family, "restorer": self.restorer,
                "trained_on": self.trained_on, "checkpoint": self.checkpoint,
                "sha256": self.sha256}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> ServedExpert:
        """Read :meth:`to_json`'s object.

        Raises:
            KeyError: a key is missing.
        """
        return cls(str(values["family"]), str(values["restorer"]), str(values["trained_on"]),
                   values.get("checkpoint"), values.get("sha256"))


@dataclass(frozen=True)
class ServedRestorer:
    """One restorer a run used.

    Attributes:
        restorer: the rows' ``restorer`` (a recipe name such as ``hybrid``, or a filter).
        trained_on: what a network learned (a degradation, or
            :data:`robustret.experiment.policy.BLIND`'s mixture); None for a filter.
        degradations: the run's degradations whose rows it restored, in plan order.
        knowledge: what it knows of each query's degradation (``restoration.knowledge_of``,
            the rows' ``knowledge``).
        seen: the degradations it was trained on (the rows' ``restorer_seen``); empty for a
            filter.
        checkpoint: the ``last.pt`` its rows were computed with; None for a filter, a
            network whose training wrote none (zero epochs) or a composite (see ``experts``).
        sha256: that file's SHA-256; None where there is no checkpoint.
        experts: a composite's learned experts, one per routed family, in route order; empty
            for any other restorer (and in records written before composites were recorded).
    """

    restorer: str
    trained_on: str | None
    degradations: tuple[str, ...]
    knowledge: str
    seen: tuple[str, ...] = ()
    checkpoint: str | None = None
    sha256: str | None = None
    experts: tuple[ServedExpert, ...] = ()

    @property
    def composite(self) -> bool:
        """Whether it is a composite of learned experts (its weights are theirs)."""
        return bool(self.experts)

    @property
    def choice(self) -> str:
        """A name unique within one run: ``restorer:trained_on`` for a network (``hybrid:noise``,
        ``blind:mixture``), the filter's own name otherwise."""
        return self.restorer if self.trained_on is None else f"{self.restorer}:{self.trained_on}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"restorer": self.restorer, "trained_on": self.trained_on,
                "degradations": list(self.degradations), "knowledge": self.knowledge,
                "seen": list(self.seen), "checkpoint": self.checkpoint, "sha256": self.sha256,
                "experts": [expert.to_json() for expert in self.experts]}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> ServedRestorer:
        """Read :meth:`to_json`'s object.

        Raises:
            KeyError: a key is missing; TypeError: a value of the wrong kind.
        """
        return cls(str(values["restorer"]), values["trained_on"],
                   tuple(values["degradations"]), str(values["knowledge"]),
                   tuple(values.get("seen", ())), values.get("checkpoint"),
                   values.get("sha256"),
                   tuple(ServedExpert.from_json(expert) for expert in values.get("experts", ())))


def served_restorers(loop: ConditionLoop, rows: Sequence[ResultRow]) -> tuple[ServedRestorer, ...]:
    """Every restorer the restored ``rows`` of a finished ``loop`` name, once per (restorer,
    training target), in the order the rows first name them.

    ``loop`` has built or trained each of them while it looked the conditions up (reused
    conditions included), so nothing is trained here. A composite's record lists its experts
    (:meth:`ConditionLoop.experts`).
    """
    served: dict[tuple[str, str | None], list[Condition]] = {}
    for row in rows:
        condition = row.condition
        if condition.restorer is None:
            continue
        trained = loop.restorer(condition)
        # what the loop trained it on: computed in that one place, never again here
        target = (ConditionLoop._training_target(condition)
                  if trained.checkpoint is not None else None)
        conditions = served.setdefault((condition.restorer, target), [])
        if condition not in conditions:
            conditions.append(condition)
    records = []
    for (name, target), conditions in served.items():
        trained = loop.restorer(conditions[0])
        checkpoint, sha256 = _weights(trained)
        experts = tuple(ServedExpert(family, expert.recipe, expert.trained_on,
                                     *_weights(expert.trained))
                        for family, expert in loop.experts(conditions[0]).items())
        records.append(ServedRestorer(
            restorer=name, trained_on=target,
            degradations=tuple(dict.fromkeys(c.degradation for c in conditions
                                             if c.degradation is not None)),
            knowledge=knowledge_of(trained.model), seen=loop.restorer_seen(conditions[0]),
            checkpoint=checkpoint, sha256=sha256, experts=experts))
    return tuple(records)


def _weights(trained: TrainedModel) -> tuple[str | None, str | None]:
    """The checkpoint ``trained`` was loaded from or saved to and its SHA-256 (its content
    key), or (None, None) where there is no such file."""
    checkpoint = trained.checkpoint
    if checkpoint is None or not checkpoint.is_file():
        return None, None
    return str(checkpoint), trained.content_key
