"""Named groups of degradations (degradations.groups): a closed vocabulary, defined once."""

from __future__ import annotations

import pytest
import torch

import degradations
from degradations import DEGRADATIONS, Degradation
from degradations.groups import GROUPS, PROTOCOLS, expand, group_names, groups_of
from robustret.core.checks import ConfigError

#: sorted, as --degrade all listed them before the corruption suite was registered
STUDY = ["gaussian_noise", "lowres", "motion_blur", "noise", "salt_pepper", "speckle"]
IMAGENET_C = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "line_motion_blur", "zoom_blur", "snow", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg",
]
HELD_OUT = ["speckle", "gaussian_blur", "spatter", "saturate"]


class _Haze(Degradation):
    severities = tuple({} for _ in range(5))

    def core(self, x, words, out):  # a test double: the identity
        return out.copy_(x)


def test_the_groups_and_their_members() -> None:
    assert group_names() == ["study", "imagenet-c", "held-out", "all"] == list(GROUPS)
    assert list(GROUPS["study"]) == STUDY
    assert list(GROUPS["imagenet-c"]) == IMAGENET_C and "frost" not in GROUPS["imagenet-c"]
    assert list(GROUPS["held-out"]) == HELD_OUT
    # every registered degradation but the protocols (wild mixes the others per image)
    assert list(GROUPS["all"]) == [n for n in degradations.available() if n not in PROTOCOLS]
    assert PROTOCOLS == ("wild",) and "wild" in degradations.available()
    # every member of a fixed group is registered; together they are the 22 built-in families
    # (the study's six and the corruption suite's sixteen; a test may register more)
    fixed = {name for group in ("study", "imagenet-c", "held-out") for name in GROUPS[group]}
    assert len(fixed) == 22 and fixed <= set(degradations.available())
    suite = {name for name in degradations.available()
             if degradations.DEGRADATIONS.get(name).__module__.startswith(
                 "degradations.corruptions.")}
    assert len(suite) == 16 and suite <= fixed


def test_expand_mixes_groups_and_names_in_order_once_each() -> None:
    assert expand(["study"]) == STUDY
    assert expand("held-out") == HELD_OUT
    assert expand(["fog", "study", "noise", "fog"]) == ["fog", *STUDY]
    assert expand(["imagenet-c", "held-out"]) == IMAGENET_C + HELD_OUT  # disjoint
    assert expand(["held-out", "study"]) == HELD_OUT + [n for n in STUDY if n != "speckle"]
    assert expand(["all"]) == [n for n in degradations.available() if n != "wild"]
    assert expand([]) == []
    assert degradations.expand is expand and degradations.GROUPS is GROUPS


@pytest.mark.parametrize("bad", ["frost", "ALL", "imagenet_c", ""])
def test_expand_refuses_unknown_names_listing_the_choices(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown degradation or group {bad!r}; groups: "
                                          "study, imagenet-c, held-out, all; degradations: "
                                          "brightness, "):
        expand(["noise", bad])
    assert issubclass(ConfigError, ValueError)


def test_groups_of() -> None:
    assert groups_of("gaussian_noise") == ("study", "imagenet-c", "all")
    assert groups_of("speckle") == ("study", "held-out", "all")
    assert groups_of("fog") == ("imagenet-c", "all")
    assert groups_of("saturate") == ("held-out", "all")
    assert groups_of("motion_blur") == ("study", "all")
    with pytest.raises(ConfigError, match="unknown degradation 'frost'; available: "):
        groups_of("frost")


def test_a_user_registered_degradation_is_in_all_only() -> None:
    with DEGRADATIONS.temporarily("test_haze", _Haze):
        assert "test_haze" in GROUPS["all"] and "test_haze" in expand(["all"])
        assert groups_of("test_haze") == ("all",)
        assert expand(["study", "test_haze"]) == [*STUDY, "test_haze"]
        out = degradations.apply(torch.rand(1, 1, 8, 8), "test_haze")
        assert out.shape == (1, 1, 8, 8)
    assert "test_haze" not in GROUPS["all"]


@pytest.mark.parametrize("group", ["all", "study"])
def test_a_group_name_cannot_be_registered_as_a_degradation(group: str) -> None:
    with pytest.raises(ValueError, match="other than all, study"):
        DEGRADATIONS.register(group)(_Haze)
    assert group not in degradations.available()
