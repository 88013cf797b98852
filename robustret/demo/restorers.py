"""The restorers the page offers: ``identity``, the classical filters, every restorer the run
trained (from its verified checkpoints; a composite such as ``estimated_hybrid`` from its
experts' checkpoints) and ``auto`` (what the run's ``--restore auto`` used).

A :class:`RestorerMenu` holds them by the name the form sends (``median``, ``hybrid:noise``,
``blind:mixture``, ``auto``) with the label the page shows, which says what each knows of the
degradation (``restoration.knowledge_of``: ``oracle``, ``estimated``, ``blind``) and, for a
trained one, the families it learned: ``hybrid (noise, oracle)``. :meth:`RestorerMenu.pick`
refuses, in one sentence, a restorer that cannot run on a query: an oracle one on an image
searched as it is (degradation :data:`NONE`: nothing was drawn, so there are no parameters to
read), or one that needs a parameter the chosen degradation does not draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import degradations
import restoration
from restoration.routed import ROUTED_FAMILIES
from robustret.core.checks import ConfigError
from robustret.core.checksums import CorruptFileError, file_digest, verify_file
from robustret.demo.errors import DemoError
from robustret.experiment.experts import compose
from robustret.experiment.served import ServedExpert, ServedRestorer

#: the degradation choice "the query as it is": nothing is applied and nothing is drawn
NONE = "none"
#: the restorer choice "what the run's ``--restore auto`` used for this degradation"
AUTO = "auto"


@dataclass(frozen=True)
class Choice:
    """One restorer the page offers.

    Attributes:
        name: what the form sends (``median``, ``hybrid:noise``).
        label: what the page shows (``hybrid (noise, oracle)``).
        knowledge: ``restoration.knowledge_of`` of the restorer.
        model: the restorer, ``eval()`` mode, on the service's device.
        families: the degradation families a trained one learned; empty for a filter.
        served: the degradations the run restored with it; empty for a filter.
        experts: a composite's learned experts, ``(family, "recipe:trained_on")`` in route
            order; empty for any other restorer.
    """

    name: str
    label: str
    knowledge: str
    model: restoration.Restorer
    families: tuple[str, ...] = ()
    served: tuple[str, ...] = ()
    experts: tuple[tuple[str, str], ...] = ()

    @property
    def trained(self) -> bool:
        return bool(self.families)

    def to_json(self) -> dict[str, Any]:
        """What the options API says of it."""
        return {"name": self.name, "label": self.label, "knowledge": self.knowledge,
                "trained": self.trained, "families": list(self.families),
                "reads": list(self.model.reads_params()), "served": list(self.served),
                "experts": dict(self.experts)}


def families_of(names: Sequence[str]) -> tuple[str, ...]:
    """The sorted families of the registered degradations in ``names`` (others skipped)."""
    return tuple(sorted({degradations.family(name) for name in names
                         if name in degradations.DEGRADATIONS}))


def untrained_choices(device: torch.device) -> list[Choice]:
    """``identity`` and every classical filter (``restoration.classical()``), each built."""
    choices = []
    for name in [restoration.IDENTITY, *restoration.classical()]:
        model = restoration.build(name).to(device).eval()
        knowledge = restoration.knowledge_of(model)
        label = ("identity (no restoration)" if name == restoration.IDENTITY
                 else f"{name} ({knowledge})")
        choices.append(Choice(name, label, knowledge, model))
    return choices


def load_trained(served: ServedRestorer, device: torch.device, channels: int) -> Choice | None:
    """The choice of a restorer the run trained, from its checkpoint (a composite: from each
    of its experts'); None for a filter or a network whose training wrote no checkpoint
    (nothing to load: not offered), or a composite with such an expert.

    Each file must verify against its ``.sha256`` sidecar and be the very file the run's rows
    were computed with (its ``sha256`` in the record), and take ``channels``-channel images.

    Raises:
        ConfigError: missing, damaged, replaced or unusable, in one line naming the file.
    """
    if served.composite:
        model = _load_composite(served, device, channels)
        if model is None:
            return None
    elif served.checkpoint is None:
        return None
    else:
        model = _load_verified(served.checkpoint, served.sha256, device, channels,
                               f"({served.choice})")
    families = families_of(served.seen) or families_of([served.trained_on or ""])
    return Choice(served.choice, f"{served.restorer} ({'+'.join(families)}, {served.knowledge})",
                  served.knowledge, model, families or ("unknown",), served.degradations,
                  tuple((expert.family, expert.choice) for expert in served.experts))


def _load_composite(served: ServedRestorer, device: torch.device, channels: int
                    ) -> restoration.Restorer | None:
    """``estimated_hybrid`` as the run built it: the estimate routes each image to the expert
    of its estimated family (each loaded and verified), a family without one to
    :class:`~restoration.routed.EstimateThenRestore`'s default; None where an expert's training
    wrote no checkpoint."""
    routes: dict[str, restoration.Restorer] = {}
    for expert in served.experts:
        if expert.checkpoint is None:
            return None
        if expert.family not in ROUTED_FAMILIES:
            raise ConfigError(f"the run's {served.choice} routes {expert.family!r} to its "
                              f"expert {expert.choice}, but the page routes only "
                              f"{', '.join(ROUTED_FAMILIES)}; serve the run with the robustret "
                              "version that wrote it")
        routes[expert.family] = _load_verified(expert.checkpoint, expert.sha256, device,
                                               channels, _expert_of(served, expert))
    return compose(routes).to(device).eval()


def _expert_of(served: ServedRestorer, expert: ServedExpert) -> str:
    """How an error names an expert: ``(estimated_hybrid's noise expert oracle_hybrid:noise)``."""
    return f"({served.choice}'s {expert.family} expert {expert.choice})"


def _load_verified(checkpoint: str, sha256: str | None, device: torch.device,
                   channels: int, which: str) -> restoration.Restorer:
    """The restorer saved in ``checkpoint``, verified against its sidecar and the run's
    ``sha256`` (where recorded), taking ``channels``-channel images; ``which`` names it in an
    error (``(hybrid:noise)``).

    Raises:
        ConfigError: missing, damaged, replaced or unusable, in one line naming the file.
    """
    path = Path(checkpoint)
    what = f"the run's restorer checkpoint {path} {which}"
    if not path.is_file():
        raise ConfigError(f"{what} is missing (set ROBUSTRET_CACHE to the run's cache, or re-run "
                          "the experiment's command to rebuild it)")
    try:
        verify_file(path, required=True)
        if sha256 is not None and file_digest(path) != sha256:
            raise CorruptFileError(path, "it is not the file the run's rows were computed with "
                                         "(its SHA-256 differs from results.json's)")
        model = restoration.load(path, device)
    except (ValueError, OSError) as exc:  # CorruptFileError is a ValueError
        raise ConfigError(f"{what} cannot be trusted: {exc}; re-run the experiment's command "
                          "to rebuild it") from exc
    wanted = model.input_channels()
    if wanted is not None and wanted != channels:
        raise ConfigError(f"{what} restores {wanted}-channel images but the run's data has "
                          f"{channels}; is this the run's cache?")
    return model


def _unique_labels(choices: list[Choice], trained_on: Mapping[str, str | None]) -> list[Choice]:
    """``choices`` with a label shared by two of them made unique by what each learned."""
    counts: dict[str, int] = {}
    for choice in choices:
        counts[choice.label] = counts.get(choice.label, 0) + 1
    return [choice if counts[choice.label] == 1 else
            replace(choice, label=f"{choice.label[:-1]}, trained on {trained_on[choice.name]})")
            for choice in choices]


class RestorerMenu:
    """The page's restorers by name, in the order it lists them (``auto`` first when the run
    used it, then identity and the filters, then the run's trained restorers).

    Args:
        untrained: :func:`untrained_choices`.
        trained: the run's trained restorers (:func:`load_trained`).
        auto: the run's ``--restore auto`` choice per degradation it restored (a name of
            ``untrained`` or ``trained``); empty: the run did not use ``auto``, not offered.
    """

    def __init__(self, untrained: Sequence[Choice], trained: Sequence[Choice] = (),
                 auto: Mapping[str, str] | None = None) -> None:
        self.choices = {choice.name: choice for choice in (*untrained, *trained)}
        self.auto = {degradation: name for degradation, name in (auto or {}).items()
                     if name in self.choices}

    @classmethod
    def of_run(cls, served: Sequence[ServedRestorer], restore: str, device: torch.device,
               channels: int) -> RestorerMenu:
        """The menu of a finished run: its ``served`` restorers (``results.json``), loaded and
        verified, and ``auto`` where the run's ``restore`` mode was ``auto``.

        Raises:
            ConfigError: a trained restorer's checkpoint is missing or damaged.
        """
        loaded = [load_trained(entry, device, channels) for entry in served]
        trained = _unique_labels([choice for choice in loaded if choice is not None],
                                 {entry.choice: entry.trained_on for entry in served})
        auto = ({degradation: entry.choice for entry in served
                 for degradation in entry.degradations} if restore == AUTO else {})
        return cls(untrained_choices(device), trained, auto)

    def names(self) -> list[str]:
        """Every name the form may send, in page order."""
        return [*([AUTO] if self.auto else []), *self.choices]

    def to_json(self) -> list[dict[str, Any]]:
        """The options API's ``restorer_choices``, in page order; ``auto``'s knowledge is
        that of the run's choices where they share one, else None."""
        auto = []
        if self.auto:
            used = [self.choices[name] for name in dict.fromkeys(self.auto.values())]
            known = {choice.knowledge for choice in used}
            auto = [{"name": AUTO,
                     "label": f"auto (the run's choice: {', '.join(c.label for c in used)})",
                     "knowledge": known.pop() if len(known) == 1 else None,
                     "trained": any(choice.trained for choice in used), "families": [],
                     "reads": [], "served": sorted(self.auto), "experts": {}}]
        return [*auto, *(choice.to_json() for choice in self.choices.values())]

    def pick(self, name: str, degradation: str) -> Choice:
        """The restorer ``name`` for a query degraded by ``degradation`` (:data:`NONE`: as it
        is); ``auto`` resolves to the run's choice for that degradation.

        Raises:
            DemoError: unknown name, or a restorer that cannot run on such a query.
        """
        if name == AUTO and self.auto:
            choice = self._auto(degradation)
        elif name in self.choices:
            choice = self.choices[name]
        else:
            raise DemoError(f"unknown restorer {name!r}; one of {', '.join(self.names())}")
        reads = choice.model.reads_params()
        if degradation == NONE and choice.knowledge == "oracle":
            raise DemoError(f"{choice.label} reads each image's drawn parameters "
                            f"({', '.join(reads)}) and an image searched as it is (degradation "
                            f"none) has none; pick an estimated or blind restorer")
        if degradation != NONE:
            drawn = degradations.drawn_params(degradation)
            missing = [p for p in choice.model.required_params() if p not in drawn]
            if missing:
                raise DemoError(f"{choice.label} needs each image's {', '.join(missing)}, which "
                                f"{degradation} does not draw; pick a restorer that needs only "
                                f"what it draws ({', '.join(drawn)}) or nothing")
        return choice

    def _auto(self, degradation: str) -> Choice:
        """What the run's ``auto`` used for ``degradation``; else its one restorer where it
        used one for everything, or what it used for another of the family; for :data:`NONE`,
        its one restorer that is no oracle."""
        if degradation == NONE:
            usable = list(dict.fromkeys(name for name in self.auto.values()
                                        if self.choices[name].knowledge != "oracle"))
            if len(usable) == 1:
                return self.choices[usable[0]]
            used = ", ".join(dict.fromkeys(self.choices[n].label for n in self.auto.values()))
            why = ("they all read each image's drawn parameters and an image searched as it is "
                   "has none" if not usable else "more than one of them could serve it")
            raise DemoError(f"auto cannot choose for degradation none: the run's auto used "
                            f"{used}, and {why}; pick a restorer")
        if degradation in self.auto:
            return self.choices[self.auto[degradation]]
        if len(set(self.auto.values())) == 1:  # one restorer for everything the run restored
            return self.choices[next(iter(self.auto.values()))]
        family = degradations.family(degradation)
        for served, name in self.auto.items():
            if served in degradations.DEGRADATIONS and degradations.family(served) == family:
                return self.choices[name]
        raise DemoError(f"auto: the run restored no degradation of the {family} family (it "
                        f"restored {', '.join(self.auto)}); pick a restorer")
