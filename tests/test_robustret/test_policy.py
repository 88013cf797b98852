"""robustret.experiment.policy: which restorer serves which degradation, from one table."""

from __future__ import annotations

import logging

import pytest
import torch

import degradations
import restoration
import restoration.hybrid
from robustret.core.checks import ConfigError
from robustret.experiment import policy
from robustret.experiment.recipes import base_recipes, recipe_names

NOISE_CONDITION = ("severity", "kind")
STUDY = {
    # degradation: (study, classical, trained on, hybrid front end, auto, hybrid condition)
    "noise": ("dae", "median", "noise", "median", "oracle_hybrid-objects", NOISE_CONDITION),
    "gaussian_noise": ("dae", "nlm", "noise", "median", "oracle_hybrid-objects", NOISE_CONDITION),
    "salt_pepper": ("dae", "median", "noise", "median", "oracle_hybrid-objects", NOISE_CONDITION),
    "speckle": ("dae", "bilateral", "noise", "median", "oracle_hybrid-objects", NOISE_CONDITION),
    "motion_blur": ("srcnn", "wiener", "motion_blur", "wiener", "hybrid", ()),
    "lowres": ("srcnn", "bicubic", "lowres", "identity", "oracle_hybrid-long",
               ("level", "severity")),
}


class _Fog(degradations.Degradation):
    """A user's degradation of a family the policy does not know (test only)."""

    family = "weather"
    severities = tuple({"density": d} for d in (0.1, 0.2, 0.3, 0.4, 0.5))

    def __init__(self, density: float = 0.3) -> None:
        super().__init__()
        self.density = density

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None,
                **_: object) -> torch.Tensor:
        return ((1 - self.density) * images + self.density * 0.5).clamp(0, 1)


class _Unfamiliar(_Fog):
    family = None


class _MyNoise(_Fog):
    """A user's noise that tells its kind, as the study's noises do: the noise row serves it."""

    family = "noise"

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, *,
                      size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        return {"kind": torch.zeros(batch_size, dtype=torch.int64)}


class _MyUntoldNoise(_Fog):
    """A user's noise that draws no kind: the noise row's hybrid could not be told it."""

    family = "noise"


@pytest.mark.parametrize("name", sorted(STUDY))
def test_the_study_pairing(name: str) -> None:
    study, classical, trained_on, front, best, condition = STUDY[name]
    assert policy.restorers_for(name, "study") == [study]
    assert policy.restorers_for(name, "oracle") == [best]  # the measured best learned recipe
    assert policy.restorers_for(name, "auto") == [policy.AUTO]  # one no-oracle restorer
    assert policy.hybrid_front_for(name) == front
    assert policy.hybrid_condition_for(name) == condition
    assert policy.restorers_for(name, "classical") == [classical]
    assert policy.classical_for(name) == classical
    assert policy.restorers_for(name, "all") == [*base_recipes(), classical]
    assert policy.restorers_for(name, "none") == []
    assert policy.training_degradation(name) == trained_on


def test_the_study_is_served_and_every_degradation_gets_registered_restorers() -> None:
    for name in degradations.GROUPS["study"]:
        assert policy.family_of(name) in policy.POLICY and policy.serves(name), name
    for name in degradations.available():  # the corruption suite too: no mode raises
        for mode in policy.MODES:
            assert set(policy.restorers_for(name, mode)) <= set(recipe_names()) | set(
                restoration.available()), (name, mode)
    for rule in policy.POLICY.values():
        assert rule.network in restoration.networks()
        assert rule.learned in recipe_names()
        assert rule.hybrid_front in {*restoration.classical(), "identity"}
        assert set(rule.hybrid_condition) <= set(restoration.hybrid.CONDITIONS)
        assert {rule.classical, *rule.classical_by_degradation.values()} <= set(
            restoration.classical())
        assert rule.trained_on is None or rule.trained_on in degradations.available()


def test_auto_reads_nothing_drawn_and_the_wild_set_has_its_oracle_and_classical() -> None:
    assert restoration.knowledge_of(restoration.build(policy.AUTO)) != "oracle"
    for name in (*degradations.GROUPS["study"], "wild", "fog"):
        assert policy.restorers_for(name, "auto") == [policy.AUTO]
    assert policy.restorers_for("wild", "oracle") == ["oracle_route"]
    assert policy.restorers_for("wild", "classical") == ["estimated"]
    assert restoration.knowledge_of(restoration.build("oracle_route")) == "oracle"


def test_a_single_restorer_name_is_a_mode() -> None:
    for name in restoration.available():
        assert policy.restorers_for("lowres", name) == [name]


def test_unknown_mode_and_unknown_degradation_say_what_is_valid() -> None:
    with pytest.raises(ConfigError, match="unknown restore mode .autoo..*none, auto, oracle, "
                                          "study, classical, all.*bicubic"):
        policy.restorers_for("noise", "autoo")
    with pytest.raises(ConfigError, match="unknown degradation 'blurr'; available: .*lowres"):
        policy.restorers_for("blurr", "auto")
    with pytest.raises(ConfigError, match="unknown degradation"):
        policy.training_degradation("blurr")


@pytest.mark.parametrize("cls", [_Fog, _Unfamiliar], ids=["weather", "no family"])
def test_a_degradation_without_a_policy_entry_is_tolerated(
        cls: type, caplog: pytest.LogCaptureFixture) -> None:
    with degradations.DEGRADATIONS.temporarily("test_fog", cls):
        with caplog.at_level(logging.INFO, logger="robustret.experiment.policy"):
            assert policy.restorers_for("test_fog", "oracle") == []  # no restorer: no row
        assert policy.restorers_for("test_fog", "auto") == [policy.AUTO]
        assert policy.restorers_for("test_fog", "study") == restoration.networks()
        assert not policy.serves("test_fog")
        assert policy.hybrid_front_for("test_fog") == "identity"
        assert policy.hybrid_condition_for("test_fog") == ()
        assert "no restorer pairing for degradation 'test_fog'" in caplog.text
        assert policy.restorers_for("test_fog", "all") == base_recipes()
        assert policy.restorers_for("test_fog", "classical") == []
        assert policy.classical_for("test_fog") is None
        assert policy.training_degradation("test_fog") == "test_fog"
        assert policy.restorers_for("test_fog", "median") == ["median"]
    assert "test_fog" not in degradations.available()


def test_a_new_degradation_of_a_known_family_gets_the_family_pairing() -> None:
    with degradations.DEGRADATIONS.temporarily("test_my_noise", _MyNoise):
        assert policy.family_of("test_my_noise") == "noise" and policy.serves("test_my_noise")
        assert policy.restorers_for("test_my_noise", "study") == ["dae"]
        assert policy.restorers_for("test_my_noise", "oracle") == ["oracle_hybrid-objects"]
        assert policy.hybrid_condition_for("test_my_noise") == NOISE_CONDITION
        assert policy.hybrid_front_for("test_my_noise") == "median"
        assert policy.classical_for("test_my_noise") == "median"  # the family's default
        assert policy.training_degradation("test_my_noise") == "noise"
    assert "test_my_noise" not in degradations.available()


#: degradation -> (oracle, classical): the corruption suite's members of the noise, blur and
#: resolution families draw none of what their row's restorers are told (kind; a, b; level)
NOT_SERVED = {
    "shot_noise": ("median", "median"), "impulse_noise": ("median", "median"),
    "gaussian_blur": ("wiener", "wiener"), "defocus_blur": ("wiener", "wiener"),
    "line_motion_blur": ("wiener", "wiener"), "pixelate": ("bicubic", "bicubic"),
    "fog": (None, None), "jpeg": (None, None), "saturate": (None, None),
}


@pytest.mark.parametrize("name", sorted(NOT_SERVED))
def test_a_degradation_no_row_serves_falls_back_to_its_classical_baseline_or_nothing(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    auto, classical = NOT_SERVED[name]
    with caplog.at_level(logging.INFO, logger="robustret.experiment.policy"):
        assert not policy.serves(name)
        assert policy.restorers_for(name, "oracle") == ([auto] if auto else [])
    assert policy.restorers_for(name, "auto") == [policy.AUTO]
    assert name in caplog.text
    assert policy.classical_for(name) == classical
    assert policy.restorers_for(name, "classical") == ([classical] if classical else [])
    assert policy.restorers_for(name, "study") == restoration.networks()
    assert policy.restorers_for(name, "all") == [*base_recipes(), *([classical] * bool(
        classical))]
    # its networks learn it alone, and a hybrid is told nothing the degradation cannot give
    assert policy.training_degradation(name) == name
    assert policy.hybrid_front_for(name) == "identity" and policy.hybrid_condition_for(name) == ()


def test_a_noise_that_draws_no_kind_is_not_served_by_the_noise_row() -> None:
    with degradations.DEGRADATIONS.temporarily("test_untold", _MyUntoldNoise):
        assert policy.told(policy.POLICY["noise"]) == ("kind", "severity")
        assert not policy.serves("test_untold")
        assert policy.restorers_for("test_untold", "oracle") == ["median"]
        assert policy.training_degradation("test_untold") == "test_untold"


def test_the_blind_mixture_is_the_study_s_and_leaves_the_corruption_suite_unseen() -> None:
    assert policy.blind_mixture() == ["lowres", "motion_blur", "noise"]


def test_a_retriever_tuned_on_a_mixture_has_seen_its_members() -> None:
    """--robust-train noise: the rows' retriever_seen names the noises it drew, so ImageNet-C's
    gaussian_noise counts as seen in the report."""
    assert policy.retriever_seen("noise") == ("gaussian_noise", "noise", "salt_pepper", "speckle")
    assert policy.retriever_seen("motion_blur", "gaussian_noise") == (
        "gaussian_noise", "motion_blur")
    assert policy.retriever_seen() == ()


def test_the_blind_mixture_is_told_nothing() -> None:
    assert policy.hybrid_front_for(policy.BLIND) == "identity"
    assert policy.hybrid_condition_for(policy.BLIND) == ()


def test_recipe_names_say_what_a_restorer_is_and_old_names_still_work() -> None:
    """Every recipe carries its kind; the oracle ones say so in their name; an earlier
    release's name is translated, for --restore and for the training settings alike."""
    from robustret.experiment.recipes import (
        ALIASES,
        VARIANTS,
        RecipeKind,
        canonical,
        recipe,
        train_config,
    )

    for name in recipe_names():
        kind = recipe(name).kind
        assert isinstance(kind, RecipeKind)
        assert (kind is RecipeKind.ORACLE) == name.startswith("oracle_"), name
    assert set(VARIANTS).isdisjoint(base_recipes())  # variants are not a zoo of top names
    for old, new in ALIASES.items():
        assert canonical(old) == new and recipe(old) == recipe(new)
        assert policy.restorers_for("noise", old) == [new]
        assert train_config(old, "quick") == train_config(new, "quick")


def test_oracle_names_the_learned_recipes_told_the_drawn_degradation() -> None:
    """``--restore oracle`` is the per-family learned recipes (an earlier release's ``auto``) by
    the name of what it is; every restorer it gives for the study's six reads the drawn
    degradation, and ``auto`` is none of them."""
    import restoration
    from degradations.groups import GROUPS

    for name in GROUPS["study"]:
        oracle = policy.restorers_for(name, "oracle")
        assert oracle and oracle != policy.restorers_for(name, "auto")
    assert policy.restorers_for("fog", "oracle") == []
    assert restoration.knowledge_of(restoration.build("wiener")) == "oracle"
