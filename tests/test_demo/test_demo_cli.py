"""``python -m robustret.demo``: a folder that is no finished run is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustret.core.checks import ConfigError
from robustret.demo.__main__ import main
from robustret.demo.run import load_run


def test_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--run", str(tmp_path), "--port", "0"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "synthetic"}))
    missing = tmp_path / "gone" / "last.pt"
    (tmp_path / "results.json").write_text(
        json.dumps({"resolved": {"retriever_checkpoint": str(missing)}}))
    with pytest.raises(ConfigError, match="checkpoint .* is missing"):
        load_run(tmp_path, "cpu")


def test_unreadable_results(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "results.json").write_text("not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_run(tmp_path, "cpu")


def test_bad_port() -> None:
    with pytest.raises(SystemExit):
        main(["--run", "OUT", "--port", "70000"])
