"""Report tables and files, sweep summaries and plots (configuration: test_config.py)."""

from __future__ import annotations

import csv
import json

import pytest

from robustret.evaluation.results import Condition, ResultRow
from robustret.report.files import read_rows, table_lines, write_results
from robustret.report.sweep import plot_sweep, summarise_sweep


def _rows() -> list[ResultRow]:
    rows = [ResultRow(Condition("clean"), "l2", k, acc) for k, acc in ((1, 0.9), (5, 0.95))]
    for severity, degraded, restored in ((1, 0.7, 0.8), (3, 0.5, 0.6)):
        for k in (1, 5):
            rows.append(ResultRow(Condition("degraded", "noise", severity), "l2", k, degraded))
            rows.append(ResultRow(Condition("restored", "noise", severity, "dae"), "l2", k,
                                  restored, reused=True))
    return rows


def test_table_follows_the_study_layout() -> None:
    lines = table_lines(_rows())
    assert lines[0] == "| query | degradation | severity | restorer | L2 top-1 | L2 top-5 |"
    body = [line.split(" | ")[0].strip("| ") for line in lines[2:]]
    assert body == ["clean", "degraded", "restored", "degraded", "restored"]
    assert "| 90.00 | 95.00 |" in lines[2]
    plain = table_lines(_rows(), markdown=False)
    assert plain[0].split() [:4] == ["query", "degradation", "severity", "restorer"]


def test_write_results_writes_three_consistent_files(tmp_path) -> None:
    rows = _rows()
    paths = write_results(tmp_path, rows, {"config": {"dataset": "synthetic"}, "seed": 0})
    data = json.loads(paths["json"].read_text())
    assert read_rows(data) == rows and data["seed"] == 0
    assert data["rows"][0] == {"query": "clean", "degradation": None, "severity": None,
                               "knowledge": None, "restorer_seen": [],
                               "restorer": None, "adaptation": None, "metric": "l2", "k": 1,
                               "accuracy": 0.9, "reused": False, "measure": "topk",
                               "value": 0.9, "degrade_side": "query", "retriever_seen": [],
                               "groups": []}
    with paths["csv"].open() as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == len(rows) and records[0]["query"] == "clean"
    assert records[0]["severity"] == "" and records[-1]["reused"] == "True"
    assert records[0]["retriever_seen"] == ""
    # each row names the groups of its degradation (degradations.groups), "all" left out
    assert data["rows"][2]["degradation"] == "noise" and data["rows"][2]["groups"] == ["study"]
    assert records[0]["groups"] == "" and records[2]["groups"] == "study"
    assert "L2 top-1" in paths["md"].read_text()


def test_a_row_names_the_groups_of_its_degradation() -> None:
    def groups(name: str | None) -> tuple[str, ...]:
        condition = Condition("clean") if name is None else Condition("degraded", name, 3)
        return ResultRow(condition, "l2", 1, 0.5).groups

    assert groups(None) == () and groups("lowres") == ("study",)
    assert groups("gaussian_noise") == ("study", "imagenet-c")
    assert groups("fog") == ("imagenet-c",) and groups("saturate") == ("held-out",)
    assert groups("no_longer_registered") == ()  # an old results.json still reads


def test_sweep_summary_mean_and_recovery() -> None:
    summary = summarise_sweep(_rows(), metric="l2", k=1)
    degraded = next(s for s in summary if s.restorer is None)
    restored = next(s for s in summary if s.restorer == "dae")
    assert degraded.mean_accuracy == pytest.approx(0.6) and degraded.severities == [1, 3]
    assert restored.mean_accuracy == pytest.approx(0.7)
    assert restored.recovery == pytest.approx((0.7 - 0.6) / (0.9 - 0.6))


def test_plot_sweep_writes_png_and_leaves_the_pyplot_backend_alone(tmp_path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    path = plot_sweep(_rows(), tmp_path / "sweep.png", metric="l2", k=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == before


def test_results_md_has_a_table_per_measure(tmp_path) -> None:
    rows = _rows() + [ResultRow(Condition("clean"), "l2", None, 0.8, measure="map"),
                      ResultRow(Condition("clean"), "l2", 1, 0.9, measure="precision")]
    assert table_lines(rows) == table_lines(_rows())  # the study's table: top-k only
    assert table_lines(rows, measure="map")[0] == (
        "| query | degradation | severity | restorer | L2 mAP |")
    paths = write_results(tmp_path, rows, {"config": {"dataset": "synthetic"}})
    md = paths["md"].read_text()
    assert "Mean average precision" in md and "L2 P@1" in md and "| 80.00 |" in md
    with paths["csv"].open() as handle:
        records = list(csv.DictReader(handle))
    assert records[-2]["measure"] == "map" and records[-2]["value"] == "0.8"
    assert read_rows(json.loads(paths["json"].read_text())) == rows


def _record():
    from robustret.experiment.config import ExperimentConfig
    from robustret.experiment.record import DerivedSeeds, ResolvedRun, RunRecord, Versions
    from robustret.report.summary import summarise_run

    config = ExperimentConfig(severities=(2, 3), degrade_side="both").resolved()
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.8),
            ResultRow(Condition("degraded", "noise", 2), "l2", 1, 0.6),
            ResultRow(Condition("degraded", "noise", 3), "l2", 1, 0.4)]
    return config, RunRecord(
        summary=tuple(summarise_run(rows)), config=config, command="python -m x --seed 0",
        seed=0, derived_seeds=DerivedSeeds({2: 11, 3: 12}, 7, {2: 21, 3: 22}, None),
        resolved=ResolvedRun("cpu", 4, "rk", "dk", "/cache/retriever.pt", "gk", 30, 10,
                             ("a", "b"), {"l2": {"backend": "torch", "metric": "l2"}}),
        computed=3, reused=0, world_size=1, versions=Versions("1.0", "2.3", "3.11.2"),
        timings={"load_data_s": 0.5, "total_s": 2.0})


def test_the_run_record_is_the_json_runs_have_always_written() -> None:
    config, record = _record()
    legacy = {  # the dict the runner built before RunRecord, key for key
        "summary": [score.to_dict() for score in record.summary],
        "config": config.to_dict(),
        "command": "python -m x --seed 0",
        "seed": 0,
        "derived_seeds": {"degrade": {2: 11, 3: 12}, "degrade_gallery": {2: 21, 3: 22},
                          "retriever": 7},
        "resolved": {"device": "cpu", "threads": 4, "retriever_key": "rk", "data_key": "dk",
                     "retriever_checkpoint": "/cache/retriever.pt", "gallery_key": "gk",
                     "gallery_size": 30, "query_size": 10, "classes": ["a", "b"],
                     "index": {"l2": {"backend": "torch", "metric": "l2"}}},
        "conditions": {"computed": 3, "reused": 0},
        "world_size": 1,
        "versions": {"robustret": "1.0", "torch": "2.3", "python": "3.11.2"},
        "timings": {"load_data_s": 0.5, "total_s": 2.0},
    }
    written = record.to_json()
    assert written == legacy
    assert json.dumps(written) == json.dumps(legacy)  # the same keys in the same order
    assert written["resolved"]["retriever_checkpoint"] == "/cache/retriever.pt"  # the web demo


def test_the_run_record_round_trips_through_results_json(tmp_path) -> None:
    from robustret.experiment.record import RunRecord

    _, record = _record()
    paths = write_results(tmp_path, [ResultRow(Condition("clean"), "l2", 1, 0.8)],
                          record.to_json())
    results = json.loads(paths["json"].read_text())
    again = RunRecord.from_json(results)
    assert json.dumps(again.to_json()) == json.dumps(record.to_json())
    assert again.derived_seeds == record.derived_seeds and again.config == record.config
    assert {k: v for k, v in results.items() if k != "rows"} == json.loads(
        json.dumps(record.to_json()))
