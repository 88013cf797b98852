"""estimated_hybrid (robustret/experiment/experts.py): the estimate routes each query to a
learned expert fed the estimated degradation; end to end on the wild set of a tiny folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from robustret.cli.experiment import main
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.experts import EXPERTS, experts_seen


def test_the_experts_learn_every_severity_with_their_sweep_schedule() -> None:
    one = ExperimentConfig(degradations=("wild",), severities=(5,), restore="estimated_hybrid")
    plain = ExperimentConfig(degradations=("wild",), severities=(5,), restore="estimated")
    every = ExperimentConfig(degradations=("wild",), severities=(1, 2, 3, 4, 5),
                             restore="estimated")
    for recipe, _ in EXPERTS.values():
        sweep = one.resolved().restorers[recipe]
        assert sweep == every.resolved().restorers[recipe]  # the several-severity schedule
        assert sweep != plain.resolved().restorers[recipe]
    assert experts_seen() == ("gaussian_noise", "lowres", "motion_blur", "noise", "salt_pepper",
                              "speckle")


def test_the_experts_learn_the_drawn_parameters_and_their_variants_the_estimate() -> None:
    resolved = ExperimentConfig(degradations=("wild",), severities=(5,),
                                restore="estimated_hybrid").resolved().restorers
    assert {resolved[recipe].params_from for recipe, _ in EXPERTS.values()} == {"drawn"}
    # the estimate-in-the-loop variants differ from their bases in that alone
    resolved = ExperimentConfig(degradations=("wild",), severities=(1, 2, 3, 4, 5),
                                restore="estimated_hybrid").resolved().restorers
    for base in ("oracle_hybrid", "oracle_hybrid-long"):
        variant = resolved[f"{base}-estimated"]
        assert variant.params_from == "estimated"
        assert dataclasses.replace(variant, params_from="drawn") == resolved[base]


def test_it_runs_on_the_wild_set_and_says_it_estimated(tiny_folder: Path, tmp_path: Path,
                                                       monkeypatch) -> None:
    import robustret.experiment.conditions as conditions

    calls = []
    real = conditions.trained_restorer

    def recorded(name, target, severities, *args, **kwargs):
        calls.append((name, target, tuple(severities)))
        return real(name, target, severities, *args, **kwargs)

    monkeypatch.setattr(conditions, "trained_restorer", recorded)
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["--dataset", f"folder:{tiny_folder}", "--out", str(out), "--image-size", "32",
                 "--retriever-epochs", "1", "--restorer-epochs", "1", "--backbone", "resnet18",
                 "--degrade", "wild", "--severity", "5", "--restore", "estimated_hybrid",
                 "--topk", "1", "--metric", "l2", "--measures", "topk", "--no-tensorboard",
                 "--cache-dir", str(cache), "-q"]) == 0
    results = json.loads((out / "results.json").read_text())
    restored = [row for row in results["rows"] if row["query"] == "restored"]
    assert restored and all(row["restorer"] == "estimated_hybrid" for row in restored)
    assert {row["knowledge"] for row in restored} == {"estimated"}  # nothing drawn is read
    assert all(row["restorer_seen"] == list(experts_seen()) for row in restored)
    # each expert trained once, on every severity, as its recipe
    assert sorted(set(map(tuple, calls))) == sorted(
        (recipe, target, (1, 2, 3, 4, 5)) for recipe, target in EXPERTS.values())
    for recipe, target in EXPERTS.values():
        assert len(list(cache.glob(f"{recipe}-{target}-*"))) == 1
    parts = {part["part"] for part in results["wild_breakdown"]}
    assert parts <= {"all", "clean", "noise", "blur", "resolution"} and "all" in parts


def test_the_composite_s_blur_expert_ignores_the_estimate_s_sign() -> None:
    import torch

    import degradations
    import restoration
    from robustret.core.rng import make_generator
    from robustret.experiment.experts import compose

    torch.manual_seed(0)
    hybrid = restoration.build("hybrid", front="wiener", widths=[4]).eval()
    blurred, drawn = degradations.apply(torch.rand(4, 1, 32, 32), "motion_blur", 5,
                                        generator=make_generator(1), return_params=True)
    flipped = {"a": -drawn["a"], "b": -drawn["b"]}
    route = compose({"blur": hybrid}).routes["blur"]
    with torch.no_grad():  # the arbitrary sign of an estimate changes nothing
        torch.testing.assert_close(route(blurred, drawn), route(blurred, flipped), atol=1e-5,
                                   rtol=0)
        # the expert itself is left as it learned: the study's phase, the sign matters
        assert (hybrid(blurred, drawn) - hybrid(blurred, flipped)).abs().max() > 0.01
    assert compose({}).routes["blur"].phase == "zero"  # the classical default route
