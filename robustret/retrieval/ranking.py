"""Ranking vocabulary shared by the exact and the approximate indexes: the metrics and the
deterministic order of tied results.

May import: torch only.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Metric:
    """A ranking metric: its name and whether a larger score means closer."""

    name: str
    larger_is_closer: bool


METRICS: dict[str, Metric] = {
    "l2": Metric("l2", larger_is_closer=False),
    "cosine": Metric("cosine", larger_is_closer=True),
}


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name`` (``"l2"`` or ``"cosine"``).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}"
        ) from None


def order_ties(values: Tensor, indices: Tensor, descending: bool) -> tuple[Tensor, Tensor]:
    """Re-order each row of (n, k) results by (score, index); distinct scores keep their order."""
    indices, perm = indices.sort(dim=1)
    values = values.gather(1, perm)
    values, perm = values.sort(dim=1, descending=descending, stable=True)
    return values, indices.gather(1, perm)
