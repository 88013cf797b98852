"""``estimated_hybrid``: estimate each query's degradation, then restore it with a *learned*
expert fed the estimate.

:class:`restoration.routed.EstimateThenRestore` routes each image by its estimated family
(:mod:`restoration.estimate`); here every route is a learned hybrid (:data:`EXPERTS`), trained
on every severity and told at test time the *estimated* severity, noise kind, Haar level or
blur in place of the drawn ones; they learn with the drawn parameters (the variants trained on
the estimate are not chosen: :data:`~robustret.experiment.recipes.EXPERT_RECIPES` says why).
The blur expert's Wiener front end runs in zero phase here (:data:`BLUR_FRONT_PHASE`). An
image estimated clean
passes unchanged. Nothing the degradation drew is read, so its rows say ``estimated``: it is
what a real photo allows, as long as the estimate is right. The experts train on the gallery
alone (the built-in renderer's extra objects are not used), so any data set can run it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from types import MappingProxyType

from degradations import SEVERITY_LEVELS
from restoration.base import Restorer
from restoration.classical import WienerDeblur
from restoration.routed import EstimateThenRestore
from robustret.core.keys import fingerprint, source_hash
from robustret.experiment.policy import seen_in_training
from robustret.experiment.recipes import ESTIMATED_HYBRID, EXPERT_RECIPES
from robustret.experiment.trained import TrainedModel

#: routed family -> (recipe, what it trains on): the learned experts of ``estimated_hybrid``
EXPERTS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "noise": (EXPERT_RECIPES[0], "noise"),
    "blur": (EXPERT_RECIPES[1], "motion_blur"),
    "resolution": (EXPERT_RECIPES[2], "lowres"),
})
#: the phase of the blur expert's Wiener front end in the composite: it learned with the drawn
#: blur, but is given the estimate, whose sign is arbitrary; in zero phase the sharp result sits
#: where the blurred image is centred whatever the sign (``restoration.classical.WienerDeblur``)
BLUR_FRONT_PHASE = "zero"
#: the severities the experts learn: all of them (they are told each image's severity)
EXPERT_SEVERITIES = tuple(SEVERITY_LEVELS)

Train = Callable[[str, str, list[int]], TrainedModel]
"""``train(recipe, training degradation, severities)``: a trained (or reused) restorer."""


def estimated_hybrid(train: Train) -> TrainedModel:
    """The composite restorer, its experts trained (or reused) by ``train``.

    Returns:
        A :class:`~robustret.experiment.trained.TrainedModel` without a checkpoint of its own
        (its experts have theirs); its content key names each expert's and the routing code.
    """
    experts = {family: train(recipe, target, list(EXPERT_SEVERITIES))
               for family, (recipe, target) in EXPERTS.items()}
    model = compose({family: expert.model for family, expert in experts.items()})
    device = next(next(iter(experts.values())).model.parameters()).device
    parts = [(family, expert.key, expert.content_key) for family, expert in experts.items()]
    key = fingerprint(ESTIMATED_HYBRID, parts, BLUR_FRONT_PHASE)
    return TrainedModel(model.to(device).eval(), key, None,
                        fingerprint(key, source_hash("restoration")))


def compose(models: Mapping[str, Restorer]) -> EstimateThenRestore:
    """The composite from its experts' models, by routed family (a family without one keeps
    :class:`~restoration.routed.EstimateThenRestore`'s default route). A Wiener front end of
    the blur expert runs in :data:`BLUR_FRONT_PHASE` (on a copy: ``models`` are left as they
    are). The run and the web page both build it here."""
    routes = dict(models)
    blur = routes.get("blur")
    if blur is not None and isinstance(getattr(blur, "front", None), WienerDeblur):
        blur = copy.deepcopy(blur)
        blur.front.phase = BLUR_FRONT_PHASE
        routes["blur"] = blur
    return EstimateThenRestore(**routes)


def experts_seen() -> tuple[str, ...]:
    """The degradations the experts were trained on, sorted."""
    return tuple(sorted({name for _, target in EXPERTS.values()
                         for name in seen_in_training(target)}))
