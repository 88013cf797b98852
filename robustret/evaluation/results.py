"""Typed values between the stages of a run: the experiment ``Condition`` and its ``ResultRow``s.

A condition is one line of the study's table (clean queries; degraded queries; degraded then
restored queries); a result row is one figure of it (a metric, a measure and its k). Report,
sweep summary, TensorBoard logging and the notebooks read rows through :func:`select`, never by
parsing strings, and ``results.json`` is written from :meth:`ResultRow.to_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from degradations import DEGRADATIONS
from degradations.groups import ALL, groups_of
from restoration.base import KNOWLEDGE
from robustret.core.keys import fingerprint
from robustret.retrieval.metrics import K_FREE, MEASURES
from robustret.retrieval.ranking import METRIC_NAMES


@dataclass(frozen=True)
class QueryKind:
    """What the queries of a condition are.

    Attributes:
        name: its name in ``results.json``, CSV and the table (``"restored"``).
        degraded: the queries are degraded: the condition names a degradation and severity.
        restored: a restorer's output: the condition names the restorer.
        adapted: searched by a retriever adapted on them: the condition names the side.
    """

    name: str
    degraded: bool = True
    restored: bool = False
    adapted: bool = False


#: every query kind by name, in the table's order within a degradation and severity
QUERY_KIND_TABLE: Mapping[str, QueryKind] = MappingProxyType({kind.name: kind for kind in (
    QueryKind("clean", degraded=False),
    QueryKind("degraded"),
    QueryKind("restored", restored=True),
    QueryKind("adapted", adapted=True),
)})
QUERY_KINDS: tuple[str, ...] = tuple(QUERY_KIND_TABLE)
#: which side a test-time adapted retriever embeds: the queries only, or the gallery too
ADAPTATION_SIDES: tuple[str, ...] = ("queries", "both")


@dataclass(frozen=True)
class DegradeSide:
    """Where a run applies the degradation (and the restorer): ``degrade_side``.

    Attributes:
        name: its name in configurations, ``--degrade-side``, ``results.json`` and CSV.
        queries: the queries are degraded.
        gallery: the gallery is degraded (and re-embedded), with its own seed stream.
    """

    name: str
    queries: bool
    gallery: bool


#: every degrade side by name: ``query`` (the study), ``gallery`` (clean queries against a
#: degraded gallery) and ``both``
DEGRADE_SIDE_TABLE: Mapping[str, DegradeSide] = MappingProxyType({side.name: side for side in (
    DegradeSide("query", queries=True, gallery=False),
    DegradeSide("gallery", queries=False, gallery=True),
    DegradeSide("both", queries=True, gallery=True),
)})
DEGRADE_SIDES: tuple[str, ...] = tuple(DEGRADE_SIDE_TABLE)


@dataclass(frozen=True, order=True)
class Condition:
    """One query condition of an experiment.

    Attributes:
        query: ``"clean"``, ``"degraded"``, ``"restored"`` or ``"adapted"`` (degraded queries
            searched by a retriever whose BatchNorm statistics were re-estimated on them).
        degradation: the degradation name (None for clean queries).
        severity: its level 1..5 (None for clean queries).
        restorer: the restorer name (only for restored queries).
        adaptation: for adapted queries, which side the adapted retriever embeds:
            ``"queries"`` or ``"both"`` (the gallery too).
    """

    query: str
    degradation: str | None = None
    severity: int | None = None
    restorer: str | None = None
    adaptation: str | None = None

    def __post_init__(self) -> None:
        if self.query not in QUERY_KINDS:
            raise ValueError(f"query must be one of {', '.join(QUERY_KINDS)}; got {self.query!r}")
        kind = QUERY_KIND_TABLE[self.query]
        degraded = kind.degraded
        if degraded != (self.degradation is not None) or degraded != (self.severity is not None):
            raise ValueError(f"a {self.query} condition needs degradation and severity "
                             f"{'set' if degraded else 'unset'}; got {self}")
        if kind.restored != (self.restorer is not None):
            raise ValueError(f"only restored conditions name a restorer; got {self}")
        if kind.adapted != (self.adaptation is not None):
            raise ValueError(f"only adapted conditions name an adaptation side; got {self}")
        if self.adaptation is not None and self.adaptation not in ADAPTATION_SIDES:
            raise ValueError(f"adaptation must be one of {', '.join(ADAPTATION_SIDES)}; "
                             f"got {self.adaptation!r}")

    @property
    def name(self) -> str:
        """A short readable name: ``clean``, ``noise-s3``, ``noise-s3-dae``."""
        parts = [self.degradation or "clean"]
        if self.severity is not None:
            parts.append(f"s{self.severity}")
        if self.restorer is not None:
            parts.append(self.restorer)
        if self.adaptation is not None:
            parts.append(f"adapted-{self.adaptation}")
        return "-".join(parts)

    def key(self, *salt: object) -> str:
        """Cache key of this condition's result: its fields and ``salt`` (seeds, model keys,
        code hashes: whatever else decides the figures)."""
        return fingerprint(dataclasses.asdict(self), *salt)

    def sort_key(self) -> tuple[str, int, int, str]:
        """The study's table order: clean first, then per degradation and severity the
        degraded queries followed by each restorer."""
        return (self.degradation or "", self.severity or 0, QUERY_KINDS.index(self.query),
                self.restorer or self.adaptation or "")


@dataclass(frozen=True)
class ResultRow:
    """One figure of the table.

    Attributes:
        condition: what was measured.
        metric: ``"l2"`` or ``"cosine"``.
        k: the k of a k-measure (``topk``, ``precision``, ``recall``); None for the k-free
            measures (``map``, ``map_at_r``, ``r_precision``).
        accuracy: the measure's value in [0, 1] (also :attr:`value`); for ``topk`` the
            study's top-k matching accuracy, hence the name.
        reused: True when the figure came from the finished-condition cache of an earlier run.
        measure: a name of :data:`robustret.retrieval.metrics.MEASURES`.
        degrade_side: where the degradation was applied: ``query`` (the study), ``gallery``
            or ``both``.
        retriever_seen: the degradations the retriever saw in training (``train_degrade``
            augmentation and ``robust_train`` fine-tuning), sorted; empty: trained on clean
            images only. A degradation of the row that is not in it is *unseen*.

    Derived, not stored: :attr:`groups`, the named groups of the row's degradation.
    """

    condition: Condition
    metric: str
    k: int | None
    accuracy: float
    reused: bool = False
    measure: str = "topk"
    degrade_side: str = "query"
    retriever_seen: tuple[str, ...] = ()
    knowledge: str | None = None
    restorer_seen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "retriever_seen", tuple(sorted(set(self.retriever_seen))))
        object.__setattr__(self, "restorer_seen", tuple(sorted(set(self.restorer_seen))))
        if self.restorer_seen and self.condition.query != "restored":
            raise ValueError(f"only a restored row has a trained restorer; got restorer_seen="
                             f"{self.restorer_seen!r} for a {self.condition.query} row")
        if self.knowledge is not None and self.condition.query != "restored":
            raise ValueError(f"only a restored row says what its restorer knew; got "
                             f"knowledge={self.knowledge!r} for a {self.condition.query} row")
        if self.knowledge is not None and self.knowledge not in KNOWLEDGE:
            raise ValueError(f"knowledge must be one of {', '.join(KNOWLEDGE)}; got "
                             f"{self.knowledge!r}")

        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy ({self.measure}) must be in [0, 1]; got {self.accuracy}")
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}; got {self.measure!r}")
        if self.measure in K_FREE:
            if self.k is not None:
                raise ValueError(f"{self.measure} has no k; got k={self.k!r}")
        elif isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive integer; got {self.k!r}")
        if self.degrade_side not in DEGRADE_SIDES:
            raise ValueError(f"degrade_side must be one of {', '.join(DEGRADE_SIDES)}; "
                             f"got {self.degrade_side!r}")

    @property
    def value(self) -> float:
        """The measure's value in [0, 1] (the same number as :attr:`accuracy`)."""
        return self.accuracy

    # flat accessors, so rows read like the table's columns
    @property
    def query(self) -> str:
        return self.condition.query

    @property
    def degradation(self) -> str | None:
        return self.condition.degradation

    @property
    def severity(self) -> int | None:
        return self.condition.severity

    @property
    def restorer(self) -> str | None:
        return self.condition.restorer

    @property
    def adaptation(self) -> str | None:
        return self.condition.adaptation

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups of the row's degradation (:mod:`degradations.groups`, ``all`` left
        out): ``("study", "imagenet-c")`` for ``gaussian_noise``, ``("imagenet-c",)`` for
        ``fog``; empty for clean rows and for a degradation in no named group or not
        registered here."""
        name = self.condition.degradation
        if name is None or name not in DEGRADATIONS:
            return ()
        return tuple(group for group in groups_of(name) if group != ALL)

    def to_dict(self) -> dict[str, Any]:
        """The row as ``results.json`` stores it (flat keys). Every row has ``measure`` and
        ``value``, and ``accuracy`` as well (the same number: readers written before measures
        existed keep working; for a ``topk`` row it is the study's accuracy)."""
        return {**dataclasses.asdict(self.condition), "metric": self.metric, "k": self.k,
                "accuracy": self.accuracy, "reused": self.reused, "measure": self.measure,
                "value": self.accuracy, "degrade_side": self.degrade_side,
                "retriever_seen": list(self.retriever_seen), "groups": list(self.groups),
                "knowledge": self.knowledge, "restorer_seen": list(self.restorer_seen)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ResultRow:
        """Read a row written by :meth:`to_dict`; rows of older runs without ``measure``
        and ``value`` are top-k rows (``groups`` is derived again, not read).

        Raises:
            ValueError: a key is missing or a value is out of its range.
        """
        try:
            condition = Condition(values["query"], values["degradation"], values["severity"],
                                  values["restorer"], values.get("adaptation"))
            measure = str(values.get("measure", "topk"))
            value = values["value"] if "value" in values else values["accuracy"]
            k = values["k"]
            return cls(condition, str(values["metric"]), None if k is None else int(k),
                       float(value), bool(values.get("reused", False)), measure,
                       str(values.get("degrade_side", "query")),
                       tuple(values.get("retriever_seen", ())), values.get("knowledge"),
                       tuple(values.get("restorer_seen", ())))
        except KeyError as exc:
            raise ValueError(f"result row lacks {exc.args[0]!r}: {dict(values)}") from None


ROW_FIELDS = ("query", "degradation", "severity", "restorer", "adaptation", "metric", "k",
              "accuracy", "reused", "measure", "value", "degrade_side", "retriever_seen",
              "groups", "knowledge", "restorer_seen")


#: the row fields whose values form a closed vocabulary, and those values
CLOSED_FIELDS: Mapping[str, tuple[object, ...]] = MappingProxyType({
    "query": QUERY_KINDS,
    "adaptation": (None, *ADAPTATION_SIDES),
    "metric": METRIC_NAMES,
    "measure": MEASURES,
    "degrade_side": DEGRADE_SIDES,
    "knowledge": (None, *KNOWLEDGE),
})


def check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse a field rows do not have, or a value a closed field cannot take.

    Raises:
        ValueError: the message names the valid fields or values.
    """
    unknown = sorted(set(fields) - set(ROW_FIELDS))
    if unknown:
        raise ValueError(f"unknown row field(s) {', '.join(unknown)}; "
                         f"rows have {', '.join(ROW_FIELDS)}")
    for name, value in fields.items():
        valid = CLOSED_FIELDS.get(name)
        if valid is not None and value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid values: "
                             f"{', '.join(map(str, valid))}")


def select(rows: Iterable[ResultRow], **fields: Any) -> list[ResultRow]:
    """The rows whose fields equal ``fields`` (e.g. ``query="restored", metric="l2", k=1``).

    Raises:
        ValueError: a field name that rows do not have, or a value outside a closed field's
            vocabulary (``query``, ``adaptation``, ``metric``, ``measure``, ``degrade_side``;
            :data:`CLOSED_FIELDS`); the message lists the valid ones.
    """
    check_fields(fields)
    return [row for row in rows if all(getattr(row, k) == v for k, v in fields.items())]


def accuracy_of(rows: Iterable[ResultRow], **fields: Any) -> float:
    """The accuracy of the one row matching ``fields``: a top-k row unless ``fields`` names
    another ``measure`` (so a run that also reports precision@k reads as before).

    Raises:
        ValueError: an unknown field or value (see :func:`select`).
        LookupError: no row or more than one row matches.
    """
    found = select(rows, **({"measure": "topk"} | fields))
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows match {fields}; expected exactly one")
    return found[0].accuracy


def value_of(rows: Iterable[ResultRow], **fields: Any) -> float:
    """The value of the one row matching ``fields`` (e.g. ``measure="map", metric="l2"``).

    Raises:
        ValueError: an unknown field or value (see :func:`select`).
        LookupError: no row or more than one row matches.
    """
    found = select(rows, **fields)
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows match {fields}; expected exactly one")
    return found[0].value
