"""Report tables and files, sweep summaries and plots, experiment config validation."""

from __future__ import annotations

import csv
import json

import pytest

from robustret.config import ExperimentConfig, fingerprint, load_toml
from robustret.report import make_row, table_lines, write_results
from robustret.sweep import plot_sweep, summarise_sweep


def _rows() -> list[dict]:
    rows = [make_row("clean", None, None, None, "l2", k, acc) for k, acc in ((1, 0.9), (5, 0.95))]
    for severity, degraded, restored in ((1, 0.7, 0.8), (3, 0.5, 0.6)):
        for k in (1, 5):
            rows.append(make_row("degraded", "noise", severity, None, "l2", k, degraded))
            rows.append(make_row("restored", "noise", severity, "dae", "l2", k, restored))
    return rows


def test_make_row_validates() -> None:
    with pytest.raises(ValueError, match="accuracy"):
        make_row("clean", None, None, None, "l2", 1, 1.5)
    with pytest.raises(ValueError, match="query"):
        make_row("enhanced", None, None, None, "l2", 1, 0.5)


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
    assert data["rows"] == rows and data["seed"] == 0
    with paths["csv"].open() as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == len(rows) and records[0]["query"] == "clean" and records[0]["severity"] == ""
    assert "L2 top-1" in paths["md"].read_text()


def test_sweep_summary_mean_and_recovery() -> None:
    summary = summarise_sweep(_rows(), metric="l2", k=1)
    degraded = next(s for s in summary if s["restorer"] is None)
    restored = next(s for s in summary if s["restorer"] == "dae")
    assert degraded["mean_accuracy"] == pytest.approx(0.6)
    assert restored["mean_accuracy"] == pytest.approx(0.7)
    assert restored["recovery"] == pytest.approx((0.7 - 0.6) / (0.9 - 0.6))


def test_plot_sweep_writes_png(tmp_path) -> None:
    path = plot_sweep(_rows(), tmp_path / "sweep.png", metric="l2", k=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_validation_and_unknown_keys(tmp_path) -> None:
    with pytest.raises(ValueError, match="severity"):
        ExperimentConfig(severities=(6,))
    with pytest.raises(ValueError, match="valid keys"):
        ExperimentConfig.from_dict({"degradation": "noise"})
    with pytest.raises(ValueError, match="restore"):
        ExperimentConfig(restore="magic")
    path = tmp_path / "c.toml"
    path.write_text('dataset = "synthetic"\nseverities = [1, 2]\n')
    config = ExperimentConfig.from_dict(load_toml(path))
    assert config.severities == (1, 2)
    assert config.to_dict()["out_dir"] == "experiments/results/default"
    assert fingerprint(config.to_dict()) == fingerprint(ExperimentConfig(severities=(1, 2)).to_dict())
    (tmp_path / "bad.toml").write_text("dataset = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(tmp_path / "bad.toml")
