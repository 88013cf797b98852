"""The wild query set's breakdown: each row of a ``wild`` run split by what each query drew.

A ``wild`` query set (:mod:`degradations.wild`) mixes clean queries with every family, so its
one degraded or restored figure hides whether a restorer helps the damaged queries and hurts
the clean ones. :func:`wild_breakdown` splits every figure by the queries' drawn family
(``clean``, ``noise``, ``blur``, ``resolution``) and sets beside it the clean condition's
score of the same queries: the loss a part suffers and what restoration wins back of it, and
for the clean part what a restorer costs queries that needed nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from torch import Tensor

from degradations.wild import CLEAN, WILD_FAMILIES, WILD_MEMBERS

#: the parts of a wild query set, in table order (``all``: every query)
PARTS: tuple[str, ...] = ("all", "clean", *WILD_FAMILIES)


@dataclass(frozen=True)
class WildPart:
    """One part of one wild row.

    Attributes:
        row: the row's label (``degraded``, or the restorer with its knowledge,
            ``estimated (estimated)``).
        part: a name of :data:`PARTS`.
        queries: how many queries the part holds.
        value: the row's mean per-query score over the part, in [0, 1].
        clean: the clean condition's mean score over the same queries.
        degraded: the degraded row's mean score over the same queries.
    """

    row: str
    part: str
    queries: int
    value: float
    clean: float
    degraded: float

    @property
    def recovery(self) -> float | None:
        """Share of the part's loss won back, ``(value - degraded) / (clean - degraded)``;
        None where the part lost nothing (the clean part: read :attr:`change` there)."""
        loss = self.clean - self.degraded
        return (self.value - self.degraded) / loss if loss > 1e-9 else None

    @property
    def change(self) -> float:
        """``value - clean``: what the row costs (negative) against the clean queries."""
        return self.value - self.clean

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "recovery": self.recovery, "change": self.change}


def part_masks(member: Tensor) -> dict[str, Tensor]:
    """(Q,) bool masks of :data:`PARTS` from the drawn ``member`` codes (Q,) int64 (-1 clean)."""
    member = member.cpu().long()
    masks = {"all": member >= CLEAN, "clean": member == CLEAN}
    for family, names in WILD_FAMILIES.items():
        codes = [WILD_MEMBERS.index(name) for name in names]
        masks[family] = sum((member == code for code in codes), member < CLEAN)
    return masks


def wild_breakdown(member: Tensor, clean: Tensor, degraded: Tensor,
                   rows: Mapping[str, Tensor]) -> list[WildPart]:
    """Every row split by part.

    Args:
        member: (Q,) int64 drawn member codes of the wild set (-1 clean).
        clean, degraded: (Q,) per-query scores of the clean and the degraded condition.
        rows: label -> (Q,) per-query scores, the degraded row and each restored one, in
            table order.

    Returns:
        One :class:`WildPart` per (row, part) with at least one query, rows outer.
    """
    out = []
    for label, scores in rows.items():
        for part, mask in part_masks(member).items():
            count = int(mask.sum())
            if count == 0:
                continue
            out.append(WildPart(label, part, count, float(scores[mask].float().mean()),
                                float(clean[mask].float().mean()),
                                float(degraded[mask].float().mean())))
    return out


def wild_markdown(parts: Sequence[WildPart], *, metric: str, k: int) -> str:
    """The breakdown as a markdown table: a line per (row, part), the clean and degraded
    scores of its queries, its score, its recovery and its change against clean."""
    if not parts:
        return ""
    lines = [f"### The wild query set by part ({metric}, top-{k}, %)", "",
             "| row | part | queries | clean | degraded | row | recovery | vs clean |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for item in parts:
        recovery = "" if item.recovery is None else f"{item.recovery:.2f}"
        lines.append(f"| {item.row} | {item.part} | {item.queries} | {100 * item.clean:.2f} | "
                     f"{100 * item.degraded:.2f} | {100 * item.value:.2f} | {recovery} | "
                     f"{100 * item.change:+.2f} |")
    return "\n".join(lines) + "\n"
