"""Which restorer serves which degradation: the pairings, in one table.

:data:`POLICY` maps a degradation *family* (the ``family`` class attribute of a registered
degradation: ``noise``, ``blur``, ``resolution``) to

- the toolkit's best *learned* restorer for it (``--restore oracle``; ``auto`` until it
  became :data:`AUTO`, one restorer that reads nothing drawn), chosen by measurement
  (docs/results.md, sections 00, 00c, 00i and 00j): ``oracle_hybrid-objects`` (the family's
  front end + a three-scale residual told each image's severity, trained through two ResNet
  stages and the embedding, on more objects than the gallery's where the data is the built-in
  generator's, the severest levels drawn more often) for noise, the same network trained
  mostly on the severest levels and for twice the steps, on the gallery alone
  (``oracle_hybrid-long``) for low resolution, the plain ``hybrid`` for blur, whose Wiener front
  end already gets each image's blur. All three are told each query's drawn degradation
  (severity, noise kind or Haar level; the blur's ``a``, ``b``): ``oracle`` is an upper
  bound, not what a real photo without parameters gets;
- the front end a ``hybrid`` starts from: the family's classical filter where it helps
  (median for impulse noise, Wiener with the drawn blur), the degraded image itself for low
  resolution (the Haar approximation put back at full size already *is* the inverse Haar
  transform with the detail bands zeroed, and bicubic smoothing of it costs retrieval accuracy:
  recovery -0.31 in docs/results.md, section 1);
- what a hybrid is told about each image (``restoration.hybrid.CONDITIONS``): the severity and
  the noise kind for noise, the Haar level and the severity for low resolution, nothing more
  for blur;
- the network the study pairs with it (``--restore study``, the study's pixel-trained
  configuration): the denoising autoencoder for the noise family, SRCNN for blur and low
  resolution;
- what a family's networks are trained on: one model for all noises (the study's ``noise``
  mixture), otherwise the degradation itself;
- the classical baseline (``--restore classical``), with per-degradation exceptions.

==============  ========================  =========  ===================  =========================
family          ``oracle``                ``study``  trained on           classical (hybrid front
                                                                          end; hybrid condition)
==============  ========================  =========  ===================  =========================
``noise``       ``oracle_hybrid-objects`` ``dae``    ``noise`` (mixture)  ``median`` (salt_pepper,
                                                                          the mixture); ``nlm``
                                                                          gaussian_noise;
                                                                          ``bilateral`` speckle
                                                                          (front: ``median``;
                                                                          severity, kind)
``blur``        ``hybrid``                ``srcnn``  itself               ``wiener`` (gets the
                                                                          drawn ``a``, ``b``;
                                                                          front: ``wiener``; none)
``resolution``  ``oracle_hybrid-long``    ``srcnn``  itself               ``bicubic`` (gets the
                                                                          drawn ``level``; front:
                                                                          ``identity``; level,
                                                                          severity)
==============  ========================  =========  ===================  =========================

A row *serves* a degradation of its family that draws every parameter the row's restorers are
told (:func:`told`: the hybrid's condition and what its front end reads; what a degradation
draws is ``degradations.drawn_params``): the study's six are served. The corruption suite's
members of these families are not (``shot_noise``, ``impulse_noise``: no noise ``kind``;
``gaussian_blur``, ``defocus_blur``, ``zoom_blur``, ``glass_blur``, ``line_motion_blur``: no
``a``, ``b``; ``pixelate``: no Haar ``level``), and the families ``weather`` and ``digital``
(``fog``, ``snow``, ``spatter``, ``brightness``, ``contrast``, ``saturate``, ``jpeg``,
``elastic_transform``) and a degradation without a family have no row. Such a degradation is
not an error; a note is logged and

- ``oracle`` gives its family's classical baseline (``median`` for the noises, ``wiener``
  with its assumed blur for the blurs, ``bicubic`` for ``pixelate``), and where the family has
  none, no restorer at all: its table has clean and degraded rows only (nothing is measured to
  pick a learned restorer by, and training every network for each of them is not what it is
  for); ``auto`` gives :data:`AUTO`, as for every degradation;
- ``classical`` gives that baseline (or nothing);
- ``study`` and ``all`` give every network, each trained on that degradation itself (a hybrid
  with the ``identity`` front, told nothing), and ``all`` the baseline too.

The blind recipe is trained on the study's degradations only (:func:`blind_mixture`): the
corruption suite stays unseen, as ImageNet-C's protocol asks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import degradations
import restoration
from degradations.groups import GROUPS, PROTOCOLS
from degradations.noise import MIXTURE_KINDS
from robustret.core.checks import ConfigError
from robustret.experiment.recipes import base_recipes, canonical, restorer_names

log = logging.getLogger(__name__)

MODES = ("none", "auto", "oracle", "study", "classical", "all")
"""Restore modes besides a single restorer name. ``auto`` is :data:`AUTO` for every
degradation; ``oracle`` is the family's learned recipe told each query's drawn degradation (an
upper bound; :data:`POLICY`'s ``learned``), and for the ``wild`` set ``oracle_route``."""

AUTO = "estimated"
"""What ``--restore auto`` gives every degradation: one restorer for every query that reads
nothing the degradation drew, chosen by measurement (docs/results.md, "The wild query set":
on the wild set and the study's families it beats the blind recipe). Choosing a restorer *per
family* would already read the query set's label, so ``auto`` is the same for all. Its rows in a
run also map the embeddings of queries estimated low-resolution
(:mod:`robustret.experiment.embedding_routes`, ``--embedding-map``)."""


@dataclass(frozen=True)
class FamilyPolicy:
    """The restorers of one degradation family.

    Attributes:
        network: the network the study pairs with the family (``restoration.networks()``),
            what ``--restore study`` runs.
        classical: the family's classical baseline (``restoration.classical()``).
        hybrid_front: the front end of the family's ``hybrid`` (a classical restorer or
            ``identity``).
        hybrid_condition: what the family's hybrids are told about each image's degradation
            (``restoration.hybrid.CONDITIONS``: ``severity``, the noise ``kind``, the
            low-resolution ``level``); empty: nothing beyond what the front end reads.
        learned: the toolkit's best learned recipe for the family (``--restore oracle``), a
            name of :func:`robustret.experiment.recipes.recipe_names`, chosen by measurement.
        trained_on: the one degradation the family's networks are trained on; None: each
            degradation trains its own.
        classical_by_degradation: degradations of the family served by another baseline.
    """

    network: str
    classical: str
    hybrid_front: str
    hybrid_condition: tuple[str, ...] = ()
    learned: str = "hybrid"
    trained_on: str | None = None
    classical_by_degradation: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}))


POLICY: Mapping[str, FamilyPolicy] = MappingProxyType({
    "noise": FamilyPolicy(
        network="dae", classical="median", hybrid_front="median", trained_on="noise",
        hybrid_condition=("severity", "kind"), learned="oracle_hybrid-objects",
        classical_by_degradation=MappingProxyType({"gaussian_noise": "nlm",
                                                   "speckle": "bilateral"})),
    "blur": FamilyPolicy(network="srcnn", classical="wiener", hybrid_front="wiener"),
    "resolution": FamilyPolicy(network="srcnn", classical="bicubic", hybrid_front="identity",
                               hybrid_condition=("level", "severity"),
                               learned="oracle_hybrid-long"),
})
"""Family -> its restorers (the module table)."""


def pairings(choose: str) -> str:
    """``choose`` (``learned`` or ``network``) of each family in words, for help texts:
    e.g. ``"oracle_hybrid-objects for noise, hybrid for blur, oracle_hybrid-long for
    resolution"``."""
    return ", ".join(f"{getattr(rule, choose)} for {family}" for family, rule in POLICY.items())


def family_of(degradation: str) -> str | None:
    """The family of the registered ``degradation`` (``degradations.family``).

    Returns:
        The family name, or None where the degradation declares none.
    Raises:
        ConfigError: ``degradation`` is not registered; the message lists the names.
    """
    if degradation not in degradations.DEGRADATIONS:
        raise ConfigError(f"unknown degradation {degradation!r}; available: "
                          f"{', '.join(degradations.available())}")
    family = degradations.family(degradation)
    return family if isinstance(family, str) and family else None


def told(rule: FamilyPolicy) -> tuple[str, ...]:
    """What a row's restorers are told about each image, sorted: its hybrid's condition and
    the parameters its hybrid front end reads (the Wiener filter's blur ``a``, ``b``)."""
    front = restoration.RESTORERS.get(rule.hybrid_front)
    return tuple(sorted({*rule.hybrid_condition, *getattr(front, "uses_params", ())}))


def _family_rule(degradation: str) -> FamilyPolicy | None:
    family = family_of(degradation)
    return POLICY.get(family) if family is not None else None


def _policy(degradation: str) -> FamilyPolicy | None:
    """The row that serves ``degradation``: its family's, where ``degradation`` draws every
    parameter the row's restorers are told; None otherwise (a note is logged)."""
    rule = _family_rule(degradation)
    if rule is None:
        log.info("no restorer pairing for degradation %r (family %r; known: %s): networks are "
                 "trained on it directly, oracle falls back to no restorer", degradation,
                 degradations.family(degradation), ", ".join(POLICY))
        return None
    missing = sorted(set(told(rule)) - set(degradations.drawn_params(degradation)))
    if missing:
        log.info("degradation %r does not draw %s, which the %s family's restorers are told: "
                 "networks are trained on it directly, oracle falls back to the classical %s",
                 degradation, ", ".join(missing), degradations.family(degradation),
                 _classical(rule, degradation))
        return None
    return rule


def serves(degradation: str) -> bool:
    """Whether its family's row serves ``degradation`` (it draws every parameter of
    :func:`told`); False for a family without a row.

    Raises:
        ConfigError: ``degradation`` is not registered.
    """
    return _policy(degradation) is not None


def classical_for(degradation: str) -> str | None:
    """The classical baseline for ``degradation`` (its family's, served or not); None where
    its family has none.

    Raises:
        ConfigError: ``degradation`` is not registered.
    """
    return _classical(_family_rule(degradation), degradation)


def _classical(rule: FamilyPolicy | None, degradation: str) -> str | None:
    if rule is None:
        return None
    return rule.classical_by_degradation.get(degradation, rule.classical)


def hybrid_front_for(degradation: str) -> str:
    """The front end of a ``hybrid`` serving ``degradation`` (its training degradation's
    family's ``hybrid_front``; ``identity`` where no row serves it or for the blind mixture
    :data:`BLIND`).

    Raises:
        ConfigError: ``degradation`` is neither registered nor :data:`BLIND`.
    """
    if degradation == BLIND:
        return "identity"
    rule = _policy(degradation)
    return rule.hybrid_front if rule is not None else "identity"


def hybrid_condition_for(degradation: str) -> tuple[str, ...]:
    """What a ``hybrid`` serving ``degradation`` is conditioned on (its family's
    ``hybrid_condition``); nothing where no row serves it, or for the blind mixture
    :data:`BLIND` (a blind restorer is told nothing about the degradation).

    Raises:
        ConfigError: ``degradation`` is neither registered nor :data:`BLIND`.
    """
    if degradation == BLIND:
        return ()
    rule = _policy(degradation)
    return rule.hybrid_condition if rule is not None else ()


def training_degradation(degradation: str) -> str:
    """What a network restorer for ``degradation`` is trained on.

    One model serves every noise the noise row serves (trained on the study's ``noise``
    mixture); any other degradation, including one no row serves, trains on itself.

    Raises:
        ConfigError: ``degradation`` is not registered.
    """
    rule = _policy(degradation)
    if rule is None or rule.trained_on is None:
        return degradation
    return rule.trained_on


BLIND = "mixture"
"""The training target of a blind recipe (:func:`blind_mixture`), in its cache names."""

#: the study's noise mixture and the noises it draws from (``degradations.noise.MIXTURE_KINDS``)
MIXTURES: Mapping[str, tuple[str, ...]] = MappingProxyType({"noise": MIXTURE_KINDS})


def seen_in_training(target: str) -> tuple[str, ...]:
    """The degradations a network trained on ``target`` has seen, sorted: ``target`` itself
    (a degradation name or :data:`BLIND`, the study's mixture) and every degradation a mixture
    draws from (the ``noise`` mixture: ``gaussian_noise``, ``salt_pepper``, ``speckle``)."""
    targets = blind_mixture() if target == BLIND else [target]
    return tuple(sorted({name for name in targets for name in (name, *MIXTURES.get(name, ()))}))


def retriever_seen(*trained_on: str) -> tuple[str, ...]:
    """The degradations a retriever trained or fine-tuned on ``trained_on`` (``--train-degrade``,
    ``--robust-train``) has seen, sorted: each with the members of a mixture
    (:func:`seen_in_training`), so a retriever tuned on ``noise`` has seen ``gaussian_noise``."""
    return tuple(sorted({name for target in trained_on for name in seen_in_training(target)}))


def blind_mixture() -> list[str]:
    """What a blind restorer learns: one draw per batch from these degradations, the training
    degradation of each of the study's degradations (the group ``study``), once each, sorted:
    ``lowres``, ``motion_blur``, ``noise``. The corruption suite is left unseen (it is what a
    blind restorer is tested on, not trained on)."""
    return sorted({training_degradation(name) for name in GROUPS["study"]})


def restorers_for(degradation: str, mode: str) -> list[str]:
    """The restorers applied to ``degradation`` under restore ``mode``.

    Args:
        degradation: a registered degradation name.
        mode: ``none`` (no restorer), ``auto`` (:data:`AUTO` for every degradation: one
            restorer that reads nothing the degradation drew), ``oracle`` (the family's best
            learned recipe, told the drawn degradation, an upper bound; where no row serves
            the degradation its family's classical baseline, or nothing; ``oracle_route`` for
            the ``wild`` set), ``study`` (the study's pixel-trained network for the family;
            every network where no row serves it), ``classical`` (the family's classical
            baseline; ``estimated`` for ``wild``), ``all`` (every base recipe, not the
            research variants, then the classical baseline), or one registered restorer name (an
            earlier release's recipe name is translated).
    Returns:
        Registry names of ``restoration``, in the order to run them (may be empty).
    Raises:
        ConfigError: unknown degradation or mode; the message lists the valid ones.
    """
    mode = canonical(mode)
    if mode not in MODES and mode not in restorer_names():
        raise ConfigError(f"unknown restore mode {mode!r}; use one of {', '.join(MODES)} or a "
                          f"restorer name: {', '.join(restorer_names())}")
    if mode == "none":
        family_of(degradation)  # still a checked name
        return []
    if mode not in MODES:
        family_of(degradation)
        return [mode]
    if mode == "auto":
        family_of(degradation)
        return [AUTO]
    if degradation in PROTOCOLS and mode in ("oracle", "classical"):
        return ["oracle_route" if mode == "oracle" else "estimated"]
    rule = _policy(degradation)
    baseline = classical_for(degradation)
    extra = [baseline] if baseline is not None else []
    if mode in ("oracle", "study"):
        if rule is None:  # no row serves it: auto's fallback, or every network
            return extra if mode != "study" else restoration.networks()
        return [rule.network if mode == "study" else rule.learned]
    if mode == "classical":
        return extra
    return [*base_recipes(), *extra]
