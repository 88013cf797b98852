"""The wild query set's breakdown (robustret/report/wild.py), on hand-made scores."""

from __future__ import annotations

import pytest
import torch

from degradations.wild import WILD_MEMBERS
from robustret.report.wild import part_masks, wild_breakdown, wild_markdown

NOISE, BLUR, LOWRES = (WILD_MEMBERS.index(n) for n in ("speckle", "realistic_motion_blur",
                                                       "lowres"))
#: six queries: two clean, two noisy, one blurred, one low-resolution
MEMBER = torch.tensor([-1, -1, NOISE, NOISE, BLUR, LOWRES])
CLEAN = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
DEGRADED = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
RESTORED = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])


def test_masks_split_by_family():
    masks = part_masks(MEMBER)
    assert masks["all"].tolist() == [True] * 6
    assert masks["clean"].tolist() == [True, True, False, False, False, False]
    assert masks["noise"].tolist() == [False, False, True, True, False, False]
    assert masks["blur"].tolist() == [False, False, False, False, True, False]
    assert masks["resolution"].tolist() == [False] * 5 + [True]


def test_each_part_has_its_loss_recovery_and_change():
    parts = wild_breakdown(MEMBER, CLEAN, DEGRADED, {"degraded": DEGRADED, "x (blind)": RESTORED})
    by = {(p.row, p.part): p for p in parts}
    assert len(parts) == 10  # two rows x five parts
    restored = by[("x (blind)", "all")]
    # clean 5/6, degraded 2/6, restored 4/6: (4 - 2) / (5 - 2) of the loss won back
    assert restored.queries == 6 and restored.recovery == pytest.approx(2 / 3)
    noise = by[("x (blind)", "noise")]
    assert (noise.clean, noise.degraded, noise.value) == (1.0, 0.0, 0.5)
    assert noise.recovery == pytest.approx(0.5)
    clean_part = by[("x (blind)", "clean")]
    assert clean_part.recovery is None  # nothing lost
    assert clean_part.change == pytest.approx(-0.5)  # the restorer broke a clean query
    assert by[("degraded", "resolution")].recovery is None  # the clean query failed too
    table = wild_markdown(parts, metric="l2", k=1)
    assert "| x (blind) | clean | 2 | 100.00 | 100.00 | 50.00 |  | -50.00 |" in table
    assert "| x (blind) | all | 6 | 83.33 | 33.33 | 66.67 | 0.67 | -16.67 |" in table


def test_no_rows_no_table():
    assert wild_markdown([], metric="l2", k=1) == ""
