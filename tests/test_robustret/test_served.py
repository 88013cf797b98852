"""The run's record of which restorer served which rows, and where its weights are."""

from __future__ import annotations

from pathlib import Path

import pytest

import restoration
from robustret.core.checksums import file_digest
from robustret.evaluation.results import Condition, ResultRow
from robustret.experiment.conditions import Expert
from robustret.experiment.record import ResolvedRun
from robustret.experiment.served import ServedExpert, ServedRestorer, served_restorers
from robustret.experiment.trained import TrainedModel


class _Loop:
    """What :func:`served_restorers` asks of a finished ConditionLoop: each condition's
    restorer, built once per (name, training target) as the loop builds it, and what it saw."""

    def __init__(self, models: dict[str, TrainedModel],
                 experts: dict[str, dict[str, Expert]] | None = None) -> None:
        self.models = models
        self.composites = experts or {}
        self.asked: list[Condition] = []

    def restorer(self, condition: Condition) -> TrainedModel:
        self.asked.append(condition)
        return self.models[condition.restorer]

    def restorer_seen(self, condition: Condition) -> tuple[str, ...]:
        return ("noise",) if condition.restorer == "hybrid" else ()

    def experts(self, condition: Condition) -> dict[str, Expert]:
        return self.composites.get(condition.restorer, {})


def _row(query: str, degradation: str | None = None, restorer: str | None = None,
         metric: str = "l2") -> ResultRow:
    condition = Condition(query, degradation, None if degradation is None else 3, restorer)
    return ResultRow(condition, metric, 1, 0.5)


def test_each_restorer_is_recorded_once_with_its_rows_and_checkpoint(tmp_path: Path) -> None:
    network = restoration.build("hybrid", front="median", widths=(4, 4),
                                condition=["severity", "kind"])
    checkpoint = restoration.save(network, tmp_path / "hybrid-noise-k" / "last.pt")
    untrained = TrainedModel(restoration.build("hybrid"), "hybrid-lowres-k",
                             tmp_path / "never-written" / "last.pt", "statedict")
    loop = _Loop({
        "hybrid": TrainedModel(network, "hybrid-noise-k", checkpoint, file_digest(checkpoint)),
        "median": TrainedModel(restoration.build("median"), "median", None, "filter"),
        "srcnn": untrained})
    rows = [_row("clean"), _row("degraded", "speckle"),
            *(_row("restored", name, "hybrid", metric)
              for name in ("speckle", "salt_pepper") for metric in ("l2", "cosine")),
            _row("restored", "speckle", "median"), _row("restored", "lowres", "srcnn")]
    hybrid, median, srcnn = served_restorers(loop, rows)  # type: ignore[arg-type]
    assert hybrid == ServedRestorer("hybrid", "noise", ("speckle", "salt_pepper"), "oracle",
                                    ("noise",), str(checkpoint), file_digest(checkpoint))
    assert hybrid.choice == "hybrid:noise"
    assert median == ServedRestorer("median", None, ("speckle",), "blind")
    assert median.choice == "median"
    # zero epochs wrote no checkpoint: recorded, but nothing to load
    assert srcnn.trained_on == "lowres" and srcnn.checkpoint is None and srcnn.sha256 is None
    assert all(condition.query == "restored" for condition in loop.asked)


def test_the_record_reads_back_and_older_records_have_none() -> None:
    served = (ServedRestorer("blind", "mixture", ("noise", "lowres"), "blind",
                             ("lowres", "noise"), "/cache/blind/last.pt", "ab" * 32),
              ServedRestorer("estimated", None, ("noise",), "estimated"))
    resolved = ResolvedRun("cpu", 2, "rk", "dk", "/cache/r.pt", "gk", 30, 10, ("a", "b"),
                           {"l2": {"backend": "torch", "metric": "l2"}}, served)
    written = resolved.to_json()
    assert written["restorers"][0]["checkpoint"] == "/cache/blind/last.pt"
    assert ResolvedRun.from_json(written) == resolved
    older = {key: value for key, value in written.items() if key != "restorers"}
    assert ResolvedRun.from_json(older).restorers == ()
    assert "restorers" not in ResolvedRun.from_json(older).to_json()  # as runs wrote it


@pytest.mark.parametrize("missing", ["restorer", "trained_on", "degradations", "knowledge"])
def test_a_record_without_a_key_is_refused(missing: str) -> None:
    values = ServedRestorer("dae", "noise", ("noise",), "blind").to_json()
    del values[missing]
    with pytest.raises(KeyError):
        ServedRestorer.from_json(values)


def test_the_loop_s_training_target_names_a_blind_recipe_s_mixture(tmp_path: Path) -> None:
    model = restoration.build("dae", widths=(4, 4, 4, 4, 4))
    checkpoint = restoration.save(model, tmp_path / "last.pt")
    loop = _Loop({"blind": TrainedModel(model, "blind-mixture-k", checkpoint,
                                        file_digest(checkpoint))})
    rows = [_row("restored", "motion_blur", "blind"), _row("restored", "gaussian_noise", "blind")]
    (blind,) = served_restorers(loop, rows)  # type: ignore[arg-type]
    assert blind.choice == "blind:mixture" and blind.knowledge == "blind"
    assert blind.degradations == ("motion_blur", "gaussian_noise")
    assert blind.sha256 == file_digest(checkpoint)


def test_a_composite_is_recorded_with_each_expert_s_checkpoint(tmp_path: Path) -> None:
    """estimated_hybrid has no checkpoint of its own: its record names its experts' files
    (an expert whose training wrote none is recorded without one)."""
    network = restoration.build("hybrid", front="median", widths=(4, 4),
                                condition=["severity", "kind"])
    checkpoint = restoration.save(network, tmp_path / "oracle_hybrid-noise-k" / "last.pt")
    noise = TrainedModel(network, "oracle_hybrid-noise-k", checkpoint, file_digest(checkpoint))
    lowres = TrainedModel(restoration.build("hybrid"), "oracle_hybrid-long-lowres-k",
                          tmp_path / "never-written" / "last.pt", "statedict")
    composite = TrainedModel(restoration.build("estimated"), "estimated_hybrid-k", None, "ck")
    loop = _Loop({"estimated_hybrid": composite},
                 {"estimated_hybrid": {"noise": Expert("oracle_hybrid", "noise", noise),
                                       "resolution": Expert("oracle_hybrid-long", "lowres",
                                                            lowres)}})
    rows = [_row("restored", "speckle", "estimated_hybrid"),
            _row("restored", "wild", "estimated_hybrid")]
    (served,) = served_restorers(loop, rows)  # type: ignore[arg-type]
    assert served.choice == "estimated_hybrid" and served.composite
    assert served.knowledge == "estimated" and served.checkpoint is None
    assert served.degradations == ("speckle", "wild")
    assert served.experts == (
        ServedExpert("noise", "oracle_hybrid", "noise", str(checkpoint), file_digest(checkpoint)),
        ServedExpert("resolution", "oracle_hybrid-long", "lowres"))
    assert served.experts[0].choice == "oracle_hybrid:noise"
    plain = served_restorers(_Loop({"median": TrainedModel(restoration.build("median"),
                                                           "median", None, "filter")}),
                             [_row("restored", "speckle", "median")])  # type: ignore[arg-type]
    assert plain[0].experts == () and not plain[0].composite


def test_a_composite_s_record_reads_back_and_older_records_have_no_experts() -> None:
    served = ServedRestorer(
        "estimated_hybrid", None, ("wild",), "estimated", ("lowres", "noise"),
        experts=(ServedExpert("noise", "oracle_hybrid", "noise", "/cache/n/last.pt", "cd" * 32),
                 ServedExpert("resolution", "oracle_hybrid-long", "lowres")))
    written = served.to_json()
    assert written["experts"][0] == {"family": "noise", "restorer": "oracle_hybrid",
                                     "trained_on": "noise", "checkpoint": "/cache/n/last.pt",
                                     "sha256": "cd" * 32}
    assert ServedRestorer.from_json(written) == served
    older = {key: value for key, value in written.items() if key != "experts"}
    assert ServedRestorer.from_json(older).experts == ()
    del written["experts"][1]["trained_on"]
    with pytest.raises(KeyError):
        ServedRestorer.from_json(written)
