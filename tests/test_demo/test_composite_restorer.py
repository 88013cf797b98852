"""The page over a tiny finished run of the composite ``estimated_hybrid``: the run records
its experts' checkpoints, the page builds the composite from them (each verified) and restores
with it exactly as the run's composite does, and ``auto`` is whatever the run's ``auto`` was
(``demo_fixtures.make_composite_run``; each expert one epoch of a width-4 hybrid)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from demo_fixtures import make_composite_run, make_noisy_png, rerun

import restoration
from robustret.core.checksums import checksum_path, file_digest
from robustret.demo.__main__ import main
from robustret.demo.restorers import NONE
from robustret.demo.run import load_run
from robustret.demo.service import DemoService
from robustret.experiment import config as config_module
from robustret.experiment import policy
from robustret.experiment.experts import EXPERTS, estimated_hybrid
from robustret.experiment.recipes import ESTIMATED_HYBRID
from robustret.experiment.trained import TrainedModel

pytestmark = pytest.mark.slow  # the run trains a retriever and the experts (seconds)


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return make_composite_run()


@pytest.fixture(scope="module")
def service(run_dir: Path) -> DemoService:
    return load_run(run_dir, "cpu")


def _served(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    (served,) = results["resolved"]["restorers"]
    return served


def test_the_run_records_each_expert_s_checkpoint(run_dir: Path) -> None:
    served = _served(run_dir)
    assert served["restorer"] == ESTIMATED_HYBRID and served["knowledge"] == "estimated"
    assert served["checkpoint"] is None and served["sha256"] is None  # the experts' weights
    experts = {expert["family"]: expert for expert in served["experts"]}
    assert set(experts) == set(EXPERTS)
    for family, (recipe, trained_on, *_) in EXPERTS.items():
        assert (experts[family]["restorer"], experts[family]["trained_on"]) == (recipe,
                                                                               trained_on)
        assert file_digest(experts[family]["checkpoint"]) == experts[family]["sha256"]


def test_the_page_restores_as_the_run_s_composite(service: DemoService, run_dir: Path) -> None:
    """An upload as it is, and a query of the split degraded as the run did, are restored by
    the page exactly as :func:`estimated_hybrid` builds the composite from those checkpoints."""
    files = {(expert["restorer"], expert["trained_on"]): expert["checkpoint"]
             for expert in _served(run_dir)["experts"]}

    def load(recipe: str, target: str, _severities: list[int]) -> TrainedModel:
        path = Path(files[(recipe, target)])
        return TrainedModel(restoration.load(path), recipe, path, file_digest(path))

    direct = estimated_hybrid(load).model
    upload = service.search(service.parse({"degradation": NONE, "restorer": ESTIMATED_HYBRID,
                                           "k": "3"}, make_noisy_png()))
    query = service.search(service.parse({"query_index": "1", "degradation": "gaussian_noise",
                                          "severity": "5", "restorer": ESTIMATED_HYBRID}))
    for result in (upload, query):
        assert result.restorer.name == ESTIMATED_HYBRID
        assert result.restorer.label.startswith("estimated_hybrid (")
        assert result.restorer.label.endswith(", estimated)")
        _, degraded, restored = (row.image for row in result.rows)
        with torch.no_grad():
            expected = direct(degraded[None])[0].clamp(0, 1)
        assert torch.allclose(restored, expected, atol=1e-6)
        assert not torch.allclose(restored, degraded, atol=1e-3)  # an expert restored it


@pytest.mark.parametrize(("auto", "choice"), [("median", "median"), ("blind", "blind:mixture"),
                                              (ESTIMATED_HYBRID, ESTIMATED_HYBRID)])
def test_the_page_s_auto_is_the_run_s_whatever_auto_names(
        run_dir: Path, auto: str, choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--restore auto`` with policy.AUTO a filter, a recipe or the composite: the page's
    ``auto`` restores an upload as it is with what the run's auto used."""
    monkeypatch.setattr(policy, "AUTO", auto)
    monkeypatch.setattr(config_module, "AUTO", auto)  # where the config reads it
    out = rerun(run_dir, f"auto-{auto}", "--restore", "auto")
    (served,) = json.loads((out / "results.json").read_text())["resolved"]["restorers"]
    if auto == ESTIMATED_HYBRID:  # its experts reused from the first run: nothing retrained
        assert served["experts"] == _served(run_dir)["experts"]
    service = load_run(out, "cpu")
    assert service.restorers.names()[0] == "auto"
    result = service.search(service.parse({"degradation": NONE, "restorer": "auto", "k": "3"},
                                          make_noisy_png()))
    assert result.restorer.name == choice
    assert service.restorers.pick("auto", "lowres").name == choice  # any degradation


def test_a_damaged_expert_is_refused_before_the_page_is_served(
        run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def never_serve(_app: object) -> None:
        raise AssertionError("the page was served with an unverified expert")

    monkeypatch.setattr("robustret.demo.app.make_server", never_serve)
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(run_dir / "config.json", out / "config.json")
    results = json.loads((run_dir / "results.json").read_text())
    expert = results["resolved"]["restorers"][0]["experts"][-1]
    checkpoint = tmp_path / "expert" / "last.pt"
    checkpoint.parent.mkdir()
    shutil.copy(expert["checkpoint"], checkpoint)
    shutil.copy(checksum_path(expert["checkpoint"]), checksum_path(checkpoint))
    expert["checkpoint"] = str(checkpoint)
    (out / "results.json").write_text(json.dumps(results))
    data = bytearray(checkpoint.read_bytes())
    data[-64] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    assert main(["--run", str(out), "--port", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert str(checkpoint) in err[-1] and "cannot be trusted" in err[-1]
    assert f"{ESTIMATED_HYBRID}'s {expert['family']} expert" in err[-1]
