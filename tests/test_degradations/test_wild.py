"""The wild query set (degradations/wild.py): per image clean, or a random family, variant and
severity, replayable from its recorded parameters."""

from __future__ import annotations

import pytest
import torch

import degradations
from degradations.wild import CLEAN, REALISTIC, WILD_FAMILIES, WILD_MEMBERS
from robustret.core.rng import make_generator


def _draw(count: int = 400, severity: int = 5, **overrides):
    images = torch.rand(count, 1, 32, 32, generator=make_generator(1))
    out, params = degradations.apply_indexed(images, "wild", severity, seed=7,
                                             indices=torch.arange(count), return_params=True,
                                             **overrides)
    return images, out, params


def test_proportions_follow_the_protocol():
    _, _, params = _draw(1200)
    member = params["member"]
    clean = (member == CLEAN).float().mean().item()
    assert abs(clean - 0.2) < 0.04  # binomial sd at n=1200 is 0.012
    family_of = {i: family for family, names in WILD_FAMILIES.items()
                 for i, name in enumerate(WILD_MEMBERS) if name in names}
    degraded = member[member != CLEAN].tolist()
    shares = {family: sum(family_of[m] == family for m in degraded) / len(degraded)
              for family in WILD_FAMILIES}
    assert all(abs(share - 1 / 3) < 0.05 for share in shares.values()), shares
    assert set(degraded) == set(range(len(WILD_MEMBERS)))  # every variant is drawn
    severity = params["member_severity"]
    assert set(severity[member != CLEAN].tolist()) == {1, 2, 3, 4, 5}
    assert (severity[member == CLEAN] == 0).all()


def test_clean_images_are_untouched_and_degraded_ones_are_their_members():
    images, out, params = _draw(60)
    for i in range(60):
        code, level = int(params["member"][i]), int(params["member_severity"][i])
        if code == CLEAN:
            assert torch.equal(out[i], images[i])
            continue
        expected = degradations.build_module(WILD_MEMBERS[code], level).forward_indexed(
            images[i:i + 1], 0, [int(params["subseed"][i])])
        # equal up to the FFT's batch-size rounding (the study's blur: ~2e-7 at 32 px)
        torch.testing.assert_close(out[i:i + 1], expected, atol=1e-6, rtol=0)


def test_member_columns_hold_the_members_draws():
    images, _, params = _draw(80)
    for i in range(80):
        name = WILD_MEMBERS[int(params["member"][i])] if params["member"][i] >= 0 else None
        if name in ("motion_blur", "realistic_motion_blur"):
            _, drawn = degradations.build_module(name, int(params["member_severity"][i])
                                                 ).forward_indexed(
                images[i:i + 1], 0, [int(params["subseed"][i])], return_params=True)
            assert params["a"][i] == drawn["a"][0] and params["b"][i] == drawn["b"][0]
        elif name is None or name.endswith("noise") or name in ("salt_pepper", "speckle"):
            assert params["a"][i] == 0 and params["b"][i] == 0
        assert (params["kind"][i] >= 0) == (name in ("gaussian_noise", "salt_pepper",
                                                     "speckle"))


def test_options_restrict_the_draw():
    _, _, params = _draw(300, severity=2, realistic=False, families="noise,blur",
                         clean_fraction=0.0)
    names = {WILD_MEMBERS[m] for m in params["member"].tolist()}
    assert CLEAN not in params["member"].tolist()
    assert not names & REALISTIC and "lowres" not in names
    assert set(params["member_severity"].tolist()) == {1, 2}  # the level caps the severity


@pytest.mark.parametrize("overrides, match", [
    ({"clean_fraction": 1.5}, "clean_fraction"),
    ({"families": "noise,fog"}, "families"),
    ({"max_severity": 6}, "max_severity"),
])
def test_bad_options_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        degradations.build_module("wild", 3, **overrides)


def test_wild_is_a_protocol_not_a_member_of_all():
    assert "wild" in degradations.available()
    assert "wild" not in degradations.GROUPS["all"]
    assert degradations.expand(["wild"]) == ["wild"]
