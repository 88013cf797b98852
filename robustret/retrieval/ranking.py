"""Ranking vocabulary shared by the exact and the approximate indexes: the metrics (one table,
:data:`METRICS`, that every other list of metric names derives from) and the deterministic
order of tied results.

May import: torch and ``robustret.core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import Tensor

from robustret.core.checks import table_entry


@dataclass(frozen=True)
class Metric:
    """A ranking metric.

    Attributes:
        name: its name in configurations, flags, ``results.json`` and CSV (``"l2"``).
        larger_is_closer: whether a larger score means closer (a similarity).
        title: how a table's column names it (``"L2"``).
    """

    name: str
    larger_is_closer: bool
    title: str = ""

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)


#: every ranking metric by name, in the order tables and ``--metric both`` list them; adding a
#: metric is one entry here (and its score in :mod:`robustret.retrieval.index`)
METRICS: Mapping[str, Metric] = MappingProxyType({metric.name: metric for metric in (
    Metric("l2", larger_is_closer=False, title="L2"),
    Metric("cosine", larger_is_closer=True, title="cosine"),
)})
#: the metric names, in table order: ``("l2", "cosine")``
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name`` (``"l2"`` or ``"cosine"``).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    return table_entry(METRICS, name, "metric")


def order_ties(values: Tensor, indices: Tensor, descending: bool) -> tuple[Tensor, Tensor]:
    """Re-order each row of (n, k) results by (score, index); distinct scores keep their order."""
    indices, perm = indices.sort(dim=1)
    values = values.gather(1, perm)
    values, perm = values.sort(dim=1, descending=descending, stable=True)
    return values, indices.gather(1, perm)
