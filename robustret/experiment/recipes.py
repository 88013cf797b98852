"""Restorer recipes: a network of ``restoration`` plus how it is trained, under one name.

A recipe name is what ``--restore`` and the configuration's ``[restorers.NAME]`` sections use,
and it says what the restorer is (its :class:`RecipeKind`):

==================  ===============  ======================================================
name                kind             what it is
==================  ===============  ======================================================
``dae``, ``srcnn``  study            the study's networks, pixel loss
``dae_retrieval``,  retrieval-aware  the same networks with a feature term through the
``srcnn_retrieval``                  frozen retriever of the experiment
``hybrid``          hybrid           the family's classical filter + a small learned residual
``oracle_hybrid``   oracle           a deeper hybrid told each image's drawn severity (and
                                     noise kind or Haar level): an upper bound, since no real
                                     query carries those
``blind``           blind            one autoencoder for every family, degradation unknown
==================  ===============  ======================================================

Research variants of a recipe are named ``BASE-VARIANT`` and live in :data:`VARIANTS` (e.g.
``oracle_hybrid-objects``: trained on ten more rendered objects per category); the names of
earlier releases still work (:data:`ALIASES`, e.g. ``hybrid_unet_objects``). Every trainable
restorer of the registry is also a recipe of its own name (pixel loss, the profile's preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import restoration
from robustret.train.restorer_config import RestorerTrainConfig


class RecipeKind(str, Enum):
    """What a recipe is, in the words of the tables: the closed vocabulary of recipe kinds."""

    STUDY = "study"
    RETRIEVAL_AWARE = "retrieval-aware"
    HYBRID = "hybrid"
    ORACLE = "oracle"
    BLIND = "blind"
    NETWORK = "network"  # a registered network without a recipe of its own: pixel loss


@dataclass(frozen=True)
class Recipe:
    """One way to train one network.

    Attributes:
        name: the recipe's name (``--restore NAME``).
        model: the network, a name of ``restoration.networks()``.
        kind: what the recipe is (:class:`RecipeKind`).
        overrides: training settings replacing the model's profile preset
            (fields of :class:`robustret.train.restorer_config.RestorerTrainConfig`).
        summary: one line for the docs and ``--help``.
        blind: trained once on the mixture of the study's families
            (:func:`robustret.experiment.policy.blind_mixture`) and applied to any degraded
            query without knowing its degradation; otherwise trained per degradation (or family).
        quick: settings for the quick profile, applied after ``overrides`` (the paper
            profile keeps its own schedule).
        sweep: settings for the quick profile when one model learns several severities at
            once (``--severity all``), applied after ``overrides``: a longer schedule than the
            network's quick preset for the harder task; the paper profile keeps its own.
    """

    name: str
    model: str
    kind: RecipeKind
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    summary: str = ""
    blind: bool = False
    quick: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    sweep: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


#: the feature term of the retrieval-aware recipes (weight lambda, layers); see docs/restoration.md
RETRIEVAL_LOSS: Mapping[str, Any] = MappingProxyType(
    {"feature_weight": 1.0, "feature_layers": ("embedding",), "crop_size": None})

#: the deeper hybrid's feature term: activations of two ResNet stages and the embedding (denser
#: targets than the embedding alone), and its three-scale body (receptive field about 50 px)
MULTI_LAYER_LOSS: Mapping[str, Any] = MappingProxyType({
    **RETRIEVAL_LOSS, "feature_layers": ("layer1", "layer2", "embedding"),
    "model_options": MappingProxyType({"body": "unet", "widths": [16, 32, 64]})})

#: the unet hybrids' quick schedule: 8 epochs at one severity (the main job stays within 10 CPU
#: minutes), 24 with the lr halved every 8 when one model learns several severities, then
#: validated after every fourth epoch and the last (validation does not steer training)
UNET_QUICK: Mapping[str, Any] = MappingProxyType({"epochs": 8})
UNET_SWEEP: Mapping[str, Any] = MappingProxyType({"epochs": 24, "lr_step": 8, "val_every": 4})

#: ``hybrid``'s sweep schedule: 6 epochs, lr halved every 2 (the quick preset's 10 epochs,
#: halved every 4, cost blur's restorer 126-138 s of the three-family sweep's 30-minute budget
#: while it recovered 0.88-0.91 of the blur loss; docs/results.md, section 00k)
HYBRID_SWEEP: Mapping[str, Any] = MappingProxyType({"epochs": 6, "lr_step": 2, "val_every": 2})

#: ``oracle_hybrid-long``'s sweep schedule: twice the steps of :data:`UNET_SWEEP`, each
#: learning-rate phase twice as long (docs/results.md, section 00i: low resolution's recovery
#: rose on every seed, 0.35 -> 0.49 over seeds 0-2, with 48 epochs, lr halved every 16)
LONG_SWEEP: Mapping[str, Any] = MappingProxyType({**UNET_SWEEP, "epochs": 48, "lr_step": 16})

#: ``oracle_hybrid-objects``'s sweep schedule: :data:`UNET_SWEEP` with ten more rendered objects
#: per category to train on (``extra_objects``; built-in data only, docs/restoration.md): noise's
#: restorer generalised poorly from the gallery's objects to the query objects; and each batch's
#: severity drawn in proportion to it (``severity_bias`` 1): most of noise's remaining loss was
#: at severities 4 and 5 (docs/results.md, section 00j). An epoch is 1,024 images either way.
OBJECTS_SWEEP: Mapping[str, Any] = MappingProxyType(
    {**UNET_SWEEP, "extra_objects": 10, "severity_bias": 1.0})

#: ``oracle_hybrid-severe``'s ``severity_bias``: severity 5 drawn 25 times as often as severity 1
#: (docs/results.md, section 00c: low resolution loses most of its accuracy at severity 5, and
#: bias 2 won more of it back than the uniform draw over seeds 0, 1 and 2)
SEVERE_BIAS = 2.0

#: the severe recipes' loss: :data:`MULTI_LAYER_LOSS` with :data:`SEVERE_BIAS`
SEVERE_LOSS: Mapping[str, Any] = MappingProxyType({**MULTI_LAYER_LOSS,
                                                   "severity_bias": SEVERE_BIAS})

RECIPES: Mapping[str, Recipe] = MappingProxyType({
    "dae": Recipe("dae", "dae", RecipeKind.STUDY,
                  summary="the study's denoising autoencoder, pixel MSE"),
    "srcnn": Recipe("srcnn", "srcnn", RecipeKind.STUDY, summary="the study's SRCNN, pixel MSE"),
    "dae_retrieval": Recipe(
        "dae_retrieval", "dae", RecipeKind.RETRIEVAL_AWARE, RETRIEVAL_LOSS,
        "the autoencoder trained with pixel MSE + retriever feature loss"),
    "srcnn_retrieval": Recipe(
        "srcnn_retrieval", "srcnn", RecipeKind.RETRIEVAL_AWARE, RETRIEVAL_LOSS,
        "SRCNN trained with pixel MSE + retriever feature loss"),
    "hybrid": Recipe("hybrid", "hybrid", RecipeKind.HYBRID, RETRIEVAL_LOSS,
                     "the family's classical filter + a learned residual, pixel + feature loss",
                     sweep=HYBRID_SWEEP),
    "oracle_hybrid": Recipe(
        "oracle_hybrid", "hybrid", RecipeKind.ORACLE, MULTI_LAYER_LOSS,
        "the family's classical filter + a three-scale residual told each image's drawn "
        "severity (and noise kind or resolution level), pixel + multi-layer feature loss",
        quick=UNET_QUICK, sweep=UNET_SWEEP),
    "blind": Recipe("blind", "dae", RecipeKind.BLIND, RETRIEVAL_LOSS,
                    "one autoencoder for every family (pixel + feature loss), degradation unknown",
                    blind=True),
})
"""The recipes a user types: each name says what the restorer is."""

VARIANTS: Mapping[str, Recipe] = MappingProxyType({
    "oracle_hybrid-objects": Recipe(
        "oracle_hybrid-objects", "hybrid", RecipeKind.ORACLE, MULTI_LAYER_LOSS,
        "oracle_hybrid trained besides the gallery on ten more rendered objects per category, "
        "severity s drawn in proportion to s, when it learns several severities (built-in data)",
        quick=UNET_QUICK, sweep=OBJECTS_SWEEP),
    "oracle_hybrid-severe": Recipe(
        "oracle_hybrid-severe", "hybrid", RecipeKind.ORACLE, SEVERE_LOSS,
        "oracle_hybrid with each batch's severity s drawn with probability proportional to "
        f"s ** {SEVERE_BIAS:g} when it learns several (the severest levels most often)",
        quick=UNET_QUICK, sweep=UNET_SWEEP),
    "oracle_hybrid-long": Recipe(
        "oracle_hybrid-long", "hybrid", RecipeKind.ORACLE, SEVERE_LOSS,
        "oracle_hybrid-severe with twice its steps when it learns several severities "
        f"({LONG_SWEEP['epochs']} epochs, lr halved every {LONG_SWEEP['lr_step']})",
        quick=UNET_QUICK, sweep=LONG_SWEEP),
    "oracle_hybrid-estimated": Recipe(
        "oracle_hybrid-estimated", "hybrid", RecipeKind.ORACLE,
        {**MULTI_LAYER_LOSS, "params_from": "estimated"},
        "oracle_hybrid trained on each image's *estimated* severity and noise kind or level "
        "(the estimate in the loop, RestorerTrainConfig.params_from): estimated_hybrid's noise "
        "expert, fed estimates there; alone it is given the drawn ones, as oracle_hybrid is",
        quick=UNET_QUICK, sweep=UNET_SWEEP),
    "oracle_hybrid-long-estimated": Recipe(
        "oracle_hybrid-long-estimated", "hybrid", RecipeKind.ORACLE,
        {**SEVERE_LOSS, "params_from": "estimated"},
        "oracle_hybrid-long trained on each image's estimated Haar level and severity: "
        "estimated_hybrid's low-resolution expert",
        quick=UNET_QUICK, sweep=LONG_SWEEP),
})
"""Research variants (``BASE-VARIANT``): measured in docs/results.md, chosen by
:mod:`robustret.experiment.policy` where they won; not part of ``--restore all``."""

ALIASES: Mapping[str, str] = MappingProxyType({
    "dae_feat": "dae_retrieval",
    "srcnn_feat": "srcnn_retrieval",
    "hybrid_unet": "oracle_hybrid",
    "hybrid_unet_objects": "oracle_hybrid-objects",
    "hybrid_unet_severe": "oracle_hybrid-severe",
    "hybrid_unet_long": "oracle_hybrid-long",
})
"""Names of earlier releases -> today's: configuration files and commands keep working."""


def canonical(name: str) -> str:
    """Today's name of recipe or restorer ``name`` (an earlier release's name is translated;
    any other name is returned as it is)."""
    return ALIASES.get(name, name)


def base_recipes() -> list[str]:
    """The recipes ``--restore all`` runs: the table's and one per trainable restorer not in
    it, sorted (not the research variants)."""
    return sorted(set(RECIPES) | set(restoration.networks()))


def recipe_names() -> list[str]:
    """Every recipe: :func:`base_recipes` and the research variants, sorted."""
    return sorted({*base_recipes(), *VARIANTS})


ESTIMATED_HYBRID = "estimated_hybrid"
"""The composite of :mod:`robustret.experiment.experts`: the estimate routes each query to a
learned hybrid fed the estimated degradation."""
#: the recipes of its learned experts (noise, blur, low resolution); they learn every severity,
#: so they train with their several-severity (``sweep``) schedule, on the drawn parameters. The
#: variants trained on the estimate (``oracle_hybrid-estimated``, ``-long-estimated``) are not
#: the experts: the noise one won back less (docs/results.md, seed 0), the low-resolution one
#: is not measured yet. The blur expert could not learn from its estimate anyway: the estimate's
#: sign is arbitrary, a Wiener front end given the other sign returns the sharp image shifted by
#: the blur, and a pixel loss against the unshifted clean image would teach the network to smear
EXPERT_RECIPES = ("oracle_hybrid", "hybrid", "oracle_hybrid-long")


def restorer_names() -> list[str]:
    """What ``--restore`` accepts besides its modes: every recipe, every untrained restorer of
    the registry (the classical filters, ``identity``) and :data:`ESTIMATED_HYBRID`, sorted."""
    return sorted(set(recipe_names()) | set(restoration.available()) | {ESTIMATED_HYBRID})


def recipe(name: str) -> Recipe:
    """The recipe called ``name`` (an earlier release's name is translated).

    Raises:
        KeyError: not a recipe (the message lists them).
    """
    name = canonical(name)
    if name in RECIPES:
        return RECIPES[name]
    if name in VARIANTS:
        return VARIANTS[name]
    if name in restoration.networks():
        return Recipe(name, name, RecipeKind.NETWORK, summary=f"{name}, pixel MSE")
    raise KeyError(f"unknown restorer recipe {name!r}; available: {', '.join(recipe_names())}")


def train_config(name: str, profile: str, degrade: str = "noise", *, sweep: bool = False,
                 **overrides: Any) -> RestorerTrainConfig:
    """The training settings of recipe ``name`` under ``profile``: the network's preset, then
    the recipe's overrides (under the quick profile its ``quick`` settings, and with
    ``sweep``, one model for several severities, its ``sweep`` settings), then ``overrides``.

    Raises:
        KeyError: not a recipe (the message lists them).
    """
    chosen = recipe(name)
    preset = RestorerTrainConfig.paper if profile == "paper" else RestorerTrainConfig.quick
    quick = profile != "paper"
    settings = {**dict(chosen.overrides), **(dict(chosen.quick) if quick else {}),
                **(dict(chosen.sweep) if quick and sweep else {})}
    if isinstance(settings.get("model_options"), Mapping):
        settings["model_options"] = dict(settings["model_options"])
    return preset(chosen.model, degrade, **{**settings, **overrides})
