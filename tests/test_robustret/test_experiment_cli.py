"""The experiment CLI end to end on tiny data: exit codes, result files, caching."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from robustret.cli.experiment import main

ROW_KEYS = {"query", "degradation", "severity", "restorer", "adaptation", "metric", "k", "accuracy",
            "reused", "measure", "value", "degrade_side", "retriever_seen", "groups",
            "knowledge", "restorer_seen"}


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        f"folder:{data}",
        "--out",
        str(out),
        "--image-size",
        "32",
        "--retriever-epochs",
        "1",
        "--restorer-epochs",
        "1",
        "--backbone",
        "resnet18",
        "--seed",
        "0",
        "-q",
        *extra,
    ]


def test_end_to_end_writes_results_and_reuses_cache(
    tiny_folder: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    args = _args(
        tiny_folder, out, "--degrade", "gaussian_noise", "--restore", "oracle", "--topk", "1", "3"
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "query" in printed and "degraded" in printed and "restored" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    topk = [row for row in rows if row["measure"] == "topk"]
    assert topk and all(set(row) == ROW_KEYS for row in topk)
    assert all(set(row) == ROW_KEYS for row in rows)
    assert {row["measure"] for row in rows} == {"topk", "map", "precision"}  # the default
    assert all(0.0 <= row["value"] <= 1.0 for row in rows)
    assert all(row["accuracy"] == row["value"] for row in rows)
    every, rows = rows, topk
    assert {row["query"] for row in rows} == {"clean", "degraded", "restored"}
    assert {row["metric"] for row in rows} == {"l2", "cosine"} and {row["k"] for row in rows} == {
        1,
        3,
    }
    restored = [row for row in rows if row["query"] == "restored"]
    assert {row["restorer"] for row in restored} == {"oracle_hybrid-objects"} and {
        row["severity"] for row in restored
    } == {3}
    # what it knew and what it was trained on: told the drawn noise, trained on the mixture
    assert {row["knowledge"] for row in restored} == {"oracle"}
    assert all(row["restorer_seen"] == ["gaussian_noise", "noise", "salt_pepper", "speckle"]
               for row in restored)
    assert all(row["knowledge"] is None and row["restorer_seen"] == []
               for row in every if row["query"] != "restored")
    models = Path(results["resolved"]["retriever_checkpoint"]).parent.parent
    # the noise family's hybrid ...
    (trained,) = models.glob("oracle_hybrid-objects-noise-*/config.json")
    options = json.loads(trained.read_text())["model_options"]
    assert options["condition"] == ["severity", "kind"] and options["front"] == "median"
    assert (
        results["seed"] == 0
        and "config" in results
        and "versions" in results
        and "timings" in results
    )
    assert Path(results["resolved"]["retriever_checkpoint"]).is_file()
    assert results["resolved"]["threads"] == torch.get_num_threads()
    assert (out / "results.csv").read_text().startswith(
        "query,degradation,severity,restorer,adaptation,metric,k,accuracy,reused")
    assert "top-1" in (out / "results.md").read_text()
    assert list((out / "tb").glob("events.out.tfevents.*"))

    assert not any(row["reused"] for row in rows)
    assert results["conditions"] == {"computed": 3, "reused": 0}

    # Same command again: every condition is reused and the numbers are identical.
    assert main(args) == 0
    assert "3 reused" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert all(row["reused"] for row in again["rows"])
    assert [{**row, "reused": False} for row in again["rows"]] == every
    assert again["resolved"]["retriever_checkpoint"] == results["resolved"]["retriever_checkpoint"]


def _accuracies(path: Path) -> list[tuple]:
    rows = json.loads(path.read_text())["rows"]
    return [tuple(v for k, v in row.items() if k != "reused") for row in rows]


def test_config_json_of_a_run_reproduces_its_rows(tiny_folder: Path, tmp_path: Path) -> None:
    out, again = tmp_path / "run", tmp_path / "again"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(_args(tiny_folder, out, "--degrade", "lowres", "--restore", "classical",
                      "--no-tensorboard", *cache)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["retriever"]["epochs"] == 1 and config["image_size"] == 32
    # a fresh cache: the models are trained again from the resolved configuration alone
    assert main(["--config", str(out / "config.json"), "--out", str(again), "-q",
                 "--cache-dir", str(tmp_path / "cache2")]) == 0
    assert _accuracies(again / "results.json") == _accuracies(out / "results.json")
    assert json.loads((again / "config.json").read_text()) == {
        **config,
        "out_dir": str(again),
        "cache_dir": str(tmp_path / "cache2"),
    }


def test_a_change_to_the_degradation_code_recomputes_degraded_conditions(
        tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    import robustret.core.keys

    args = _args(tiny_folder, tmp_path / "run", "--degrade", "gaussian_noise", "--restore",
                 "median", "--no-tensorboard", "--cache-dir", str(tmp_path / "cache"))
    assert main(args) == 0
    first = json.loads((tmp_path / "run" / "results.json").read_text())
    assert first["conditions"] == {"computed": 3, "reused": 0}

    real = robustret.core.keys._hash_of
    edited = {"degradations": "an edit to degradations/"}
    monkeypatch.setattr(robustret.core.keys, "_hash_of",
                        lambda name: edited.get(name) or real(name))
    assert main(args) == 0
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    reused = {(row["query"], row["reused"]) for row in rows}
    assert reused == {("clean", True), ("degraded", False), ("restored", False)}


def test_an_internal_error_shows_its_traceback(tiny_folder: Path, tmp_path: Path,
                                               monkeypatch) -> None:
    import robustret.experiment.conditions

    def broken(*args, **kwargs):
        raise ValueError("an internal bug, not bad input")

    monkeypatch.setattr(robustret.experiment.conditions, "evaluate_condition", broken)
    with pytest.raises(ValueError, match="internal bug"):
        main(_args(tiny_folder, tmp_path / "run", "--restore", "none", "--no-tensorboard",
                   "--cache-dir", str(tmp_path / "cache")))


def test_topk_larger_than_the_gallery_is_one_line_before_training(tiny_folder: Path,
                                                                   tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    assert main(_args(tiny_folder, tmp_path / "run", "--topk", "1", "500", "--cache-dir",
                      str(cache))) == 2
    err = capsys.readouterr().err.strip()
    assert "larger than the gallery" in err and "\n" not in err
    assert not any(cache.glob("retriever-*"))


def test_severity_sweep_writes_plot(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert (
        main(
            _args(
                tiny_folder,
                out,
                "--degrade",
                "lowres",
                "--severity",
                "1",
                "5",
                "--restore",
                "classical",
                "--metric",
                "l2",
                "--no-tensorboard",
            )
        )
        == 0
    )
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert "recovery ratio" in (out / "results.md").read_text()
    assert {item["restorer"] for item in summary} == {None, "bicubic"}
    assert all(item["severities"] == [1, 5] for item in summary)


def test_unknown_degradation_exits_2_and_lists_choices(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--degrade", "blurr"])
    assert exit_info.value.code == 2
    assert "motion_blur" in capsys.readouterr().err


def test_bad_dataset_spec_is_one_clear_line(tmp_path: Path, capsys) -> None:
    assert (
        main(["--dataset", f"folder:{tmp_path / 'missing'}", "--out", str(tmp_path / "o"), "-q"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m robustret.experiment: error:") and "\n" not in err


def test_help_reads_like_documentation(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--degrade",
        "--severity",
        "--restore",
        "--metric",
        "--topk",
        "--profile",
        "--weights",
    ):
        assert flag in text


def test_help_names_what_auto_and_study_run(capsys) -> None:
    """The --restore help follows the policy table (it once still named the study's pairing
    as auto after auto changed)."""
    from robustret.experiment.policy import POLICY

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    from robustret.experiment.policy import AUTO

    assert f"auto (default; {AUTO} for every degradation" in text
    for family, rule in POLICY.items():
        assert f"{rule.learned} for {family}" in text.split("oracle (")[1].split("study (")[0]
        assert f"{rule.network} for {family}" in text.split("study (")[1]


def test_interrupt_exits_130_and_writes_no_result(tmp_path: Path, monkeypatch, capsys) -> None:
    import robustret.cli.experiment

    def interrupted(config, command=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(robustret.cli.experiment, "run", interrupted)
    out = tmp_path / "run"
    assert main(["--out", str(out), "-q"]) == 130
    assert "re-run the same command" in capsys.readouterr().err
    assert not (out / "results.json").exists()


def test_adapted_rows_are_their_own_conditions(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(_args(tiny_folder, out, "--degrade", "gaussian_noise", "--restore", "none",
                      "--adapt", "queries", "both", "--no-tensorboard", "--cache-dir",
                      str(tmp_path / "cache"))) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    kinds = [(row["query"], row["adaptation"]) for row in rows if row["metric"] == "l2"
             and row["k"] == 1 and row["measure"] == "topk"]
    assert kinds == [("clean", None), ("degraded", None), ("adapted", "queries"),
                     ("adapted", "both")]
    table = (out / "results.md").read_text()
    assert "bn:queries" in table and "bn:both" in table


def test_a_blind_restorer_is_trained_once_for_every_degradation(tiny_folder: Path,
                                                                 tmp_path: Path) -> None:
    from robustret.experiment.policy import blind_mixture

    assert blind_mixture() == ["lowres", "motion_blur", "noise"]
    cache = tmp_path / "cache"
    assert main(_args(tiny_folder, tmp_path / "run", "--degrade", "gaussian_noise", "lowres",
                      "--restore", "blind", "--no-tensorboard", "--cache-dir", str(cache))) == 0
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    restored = {row["degradation"] for row in rows if row["restorer"] == "blind"}
    assert restored == {"gaussian_noise", "lowres"}
    assert [p.name.split("-")[:2] for p in cache.glob("blind-*")] == [["blind", "mixture"]]


def test_seeds_write_per_seed_rows_and_a_summary(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(_args(tiny_folder, out, "--config", "experiments/configs/smoke.toml",
                      "--degrade", "gaussian_noise", "--restore", "none", "--topk", "1",
                      "--metric", "l2", "--seeds", "0", "1", "--no-tensorboard",
                      "--cache-dir", str(tmp_path / "cache"))) == 0
    for seed in (0, 1):
        per_seed = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        assert per_seed["seed"] == seed and per_seed["rows"]
    summary = json.loads((out / "seeds_summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    rows = summary["rows"]
    assert {(r["query"], r["measure"]) for r in rows} == {
        (q, m) for q in ("clean", "degraded") for m in ("topk", "map", "precision")}
    for row in rows:
        assert len(row["values"]) == 2 and row["std"] >= 0
        assert row["low"] <= row["mean"] + 1e-9 and row["mean"] <= row["high"] + 1e-9
    results = json.loads((out / "results.json").read_text())
    assert {row["seed"] for row in results["rows"]} == {0, 1} and results["summary"] == rows
    assert "95% bootstrap interval" in (out / "results.md").read_text()
    # one severity: no mean over severities (summarise_severity_means is tested on its own)
    assert summary["over_severities"] == [] and results["over_severities"] == []
    assert "Mean over severities" not in (out / "results.md").read_text()


@pytest.mark.parametrize("side", ["gallery", "both"])
def test_degrade_side_gallery_and_both_run(tiny_folder: Path, tmp_path: Path, side: str) -> None:
    out = tmp_path / "run"
    assert main(_args(tiny_folder, out, "--degrade", "gaussian_noise", "--restore", "auto",
                      "--topk", "1", "--metric", "l2", "--measures", "topk", "r_precision",
                      "--degrade-side", side, "--no-tensorboard",
                      "--cache-dir", str(tmp_path / "cache"))) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["degrade_side"] == side
    assert {row["degrade_side"] for row in results["rows"]} == {side}
    assert {row["query"] for row in results["rows"]} == {"clean", "degraded", "restored"}
    assert "degrade_gallery" in results["derived_seeds"]
    assert results["summary"] and f"applied to: {side}" in (out / "results.md").read_text()


def test_an_unknown_measure_exits_2(tmp_path: Path, capsys) -> None:
    from robustret.core.checks import ConfigError
    from robustret.experiment.config import ExperimentConfig

    with pytest.raises(SystemExit) as exit_info:
        main(["--measures", "ndcg", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "map_at_r" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="r_precision"):
        ExperimentConfig(measures=("topk", "mAP"))


def test_the_vocabularies_drive_the_choices_of_the_flags() -> None:
    from robustret.cli.experiment import build_parser
    from robustret.evaluation.results import ADAPTATION_SIDES, DEGRADE_SIDES
    from robustret.retrieval.index_kinds import INDEX_KINDS
    from robustret.retrieval.metrics import MEASURE_TABLE
    from robustret.retrieval.ranking import METRICS

    choices = {action.dest: list(action.choices) for action in build_parser()._actions
               if action.choices is not None}
    assert choices["measures"] == list(MEASURE_TABLE)
    assert choices["index"] == list(INDEX_KINDS)
    assert choices["metric"] == [*METRICS, "both"]
    assert choices["degrade_side"] == list(DEGRADE_SIDES)
    assert choices["adapt"] == ["none", *ADAPTATION_SIDES]



def test_degrade_takes_group_names_beside_family_names() -> None:
    import degradations
    from degradations.groups import GROUPS
    from robustret.cli.experiment import build_parser, config_from_args

    parser = build_parser()

    def chosen(*words: str) -> list[str]:
        return list(config_from_args(parser.parse_args(["--degrade", *words])).degradations)

    assert {"study", "imagenet-c", "held-out", "all"} <= set(
        next(a for a in parser._actions if a.dest == "degrade").choices)
    assert chosen("study") == list(GROUPS["study"])  # what "all" meant before the suite
    assert sorted(chosen("study")) == sorted(["gaussian_noise", "salt_pepper", "speckle",
                                              "noise", "lowres", "motion_blur"])
    assert chosen("all") == [n for n in degradations.available() if n != "wild"]
    assert len(chosen("all")) >= 22 and chosen("wild") == ["wild"]
    assert chosen("imagenet-c", "noise") == [*GROUPS["imagenet-c"], "noise"]
    assert chosen("fog", "held-out", "speckle") == ["fog", "speckle", "gaussian_blur", "spatter",
                                                    "saturate"]
    # the README's main run (make run: --degrade noise) and the default do today's work
    assert chosen("noise") == ["noise"]
    assert config_from_args(parser.parse_args([])).degradations == ("noise",)


def test_a_corruption_runs_end_to_end_with_the_default_restore(tiny_folder: Path,
                                                               tmp_path: Path) -> None:
    """The default restore (auto: one restorer reading nothing drawn) runs on families no
    policy row serves, shot_noise and fog (no row) alike; rows name the degradation's groups."""
    out = tmp_path / "run"
    assert main(_args(tiny_folder, out, "--degrade", "shot_noise", "fog", "--topk", "1",
                      "--metric", "l2", "--measures", "topk", "--no-tensorboard",
                      "--cache-dir", str(tmp_path / "cache"))) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    kinds = {(row["query"], row["degradation"], row["restorer"]) for row in rows}
    assert kinds == {("clean", None, None), ("degraded", "shot_noise", None),
                     ("restored", "shot_noise", "estimated"), ("degraded", "fog", None),
                     ("restored", "fog", "estimated")}
    assert {tuple(row["groups"]) for row in rows if row["degradation"] == "fog"} == {
        ("imagenet-c",)}


def test_every_index_kind_runs_from_the_command_line(tmp_path: Path) -> None:
    """Each ``--index`` kind end to end on one small data set (the approximate kinds once
    failed on every run seed, which is 64-bit, with an OverflowError inside FAISS); the exact
    FAISS index gives the exact search's rows."""
    pytest.importorskip("faiss")
    from conftest import write_class_folders

    from robustret.retrieval.index_kinds import INDEX_KINDS

    data = write_class_folders(tmp_path / "data", per_class=40)
    values = {}
    for kind in INDEX_KINDS:
        out = tmp_path / kind
        assert main(["--dataset", f"folder:{data}", "--out", str(out), "--image-size", "16",
                     "--retriever-epochs", "1", "--backbone", "resnet18", "--restore", "none",
                     "--degrade", "gaussian_noise", "--no-tensorboard", "-q", "--cache-dir",
                     str(tmp_path / "cache"), "--index", kind]) == 0, kind
        rows = json.loads((out / "results.json").read_text())["rows"]
        values[kind] = [(r["query"], r["metric"], r["measure"], r["k"], r["value"]) for r in rows]
    flat, exact = values["faiss-flat"], values["exact"]
    assert [row[:4] for row in flat] == [row[:4] for row in exact]
    assert [row[4] for row in flat] == pytest.approx([row[4] for row in exact], abs=1e-6)


def test_auto_maps_the_embeddings_of_low_resolution_queries(tiny_folder: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = _args(tiny_folder, out, "--degrade", "lowres", "--restore", "auto",
                 "--no-tensorboard", "--cache-dir", str(tmp_path / "cache"))

    def rows() -> dict[tuple[str, str], tuple[float, bool]]:
        found = json.loads((out / "results.json").read_text())["rows"]
        return {(row["query"], row["metric"]): (row["value"], row["reused"]) for row in found
                if row["measure"] == "map"}

    def restored_seen() -> list[str]:
        found = json.loads((out / "results.json").read_text())["rows"]
        return next(row["restorer_seen"] for row in found if row["query"] == "restored")

    assert main([*base, "--embedding-map", "none"]) == 0
    plain = rows()  # auto passes low resolution unchanged: the degraded figures
    assert plain[("restored", "l2")][0] == plain[("degraded", "l2")][0]
    assert restored_seen() == []  # a classical filter, trained on nothing
    assert main(base) == 0  # the default maps them: a condition of its own, computed
    mapped = rows()
    assert mapped[("degraded", "l2")] == (plain[("degraded", "l2")][0], True)
    assert mapped[("restored", "l2")][1] is False
    assert mapped[("restored", "l2")][0] != plain[("restored", "l2")][0]
    assert restored_seen() == ["lowres"]  # the maps learned from low-resolution images
    # a store written before the maps named what they saw: reused, relabelled
    for path in sorted((out / ".conditions").glob("*.json")):
        record = json.loads(path.read_text())
        for row in record["rows"]:
            row["restorer_seen"] = []
        path.write_text(json.dumps(record))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    assert main(base) == 0
    assert {reused for _, reused in rows().values()} == {True}
    assert restored_seen() == ["lowres"]
    assert json.loads((out / "config.json").read_text())["embedding_map"] == "resolution"
