"""The page over a tiny finished run that trained a restorer: the run records it, the page
offers it, restores an upload as it is with it and reproduces the run's rows; a damaged or
replaced checkpoint is refused in one line (the run: ``demo_fixtures.make_run``)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from demo_fixtures import DAMAGES, damage_file, make_png, make_run

import restoration
from robustret.core.checksums import checksum_path, file_digest
from robustret.demo.__main__ import main
from robustret.demo.app import create_app
from robustret.demo.run import load_run
from robustret.demo.service import DemoService
from robustret.evaluation.pipeline import degradation_seed, degrade_queries, restore_images

with warnings.catch_warnings():  # newer Starlette prefers httpx2 to httpx; both work
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow  # the run trains a retriever and a restorer (seconds)

LEARNED = "blind:mixture"
LABEL = "blind (blur+noise+resolution, blind)"


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return make_run()


@pytest.fixture(scope="module")
def service(run_dir: Path) -> DemoService:
    return load_run(run_dir, "cpu")


@pytest.fixture(scope="module")
def client(service: DemoService) -> TestClient:
    return TestClient(create_app(service))


def test_the_run_records_the_checkpoint_of_its_trained_restorer(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    (served,) = results["resolved"]["restorers"]
    restored = [row for row in results["rows"] if row["query"] == "restored"]
    assert {row["restorer"] for row in restored} == {served["restorer"]} == {"blind"}
    assert {row["knowledge"] for row in restored} == {served["knowledge"]} == {"blind"}
    assert all(row["restorer_seen"] == served["seen"] for row in restored)
    assert served["trained_on"] == "mixture" and served["degradations"] == ["gaussian_noise"]
    assert file_digest(served["checkpoint"]) == served["sha256"]


def test_options_offer_the_learned_restorer(client: TestClient) -> None:
    options = client.get("/api/options").json()
    assert LEARNED in options["restorers"] and "auto" not in options["restorers"]  # --restore blind
    (choice,) = [c for c in options["restorer_choices"] if c["name"] == LEARNED]
    assert choice["label"] == LABEL and choice["knowledge"] == "blind" and choice["trained"]


def test_an_upload_as_it_is_is_restored_by_the_learned_restorer(client: TestClient,
                                                                 run_dir: Path) -> None:
    response = client.post("/api/search", data={"degradation": "none", "restorer": LEARNED,
                                                "k": "3"},
                           files={"image": ("photo.png", make_png(), "image/png")})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["restorer"] == {"name": LEARNED, "label": LABEL, "knowledge": "blind"}
    assert answer["images"]["degraded"] == answer["images"]["original"]  # as it is
    assert answer["images"]["restored"] != answer["images"]["original"]
    assert answer["psnr"]["degraded"] is None and answer["psnr"]["restored"] is not None


def test_the_page_restores_the_queries_as_the_run_did(service: DemoService,
                                                      run_dir: Path) -> None:
    """Each query of the split, degraded and restored by the page, gets the run's top-1 hit:
    the mean over the split is the run's row."""
    results = json.loads((run_dir / "results.json").read_text())
    figures = {(row["query"], row["metric"]): row["value"] for row in results["rows"]
               if row["degradation"] == "gaussian_noise" and row["k"] == 1}
    served = results["resolved"]["restorers"][0]
    degraded = degrade_queries(service.query_images, "gaussian_noise", 3,
                               seed=degradation_seed(results["seed"], 3))
    restored = restore_images(restoration.load(served["checkpoint"]), degraded,
                              torch.device("cpu"))  # as the run's pipeline restores them
    hits: dict[str, list[float]] = {"degraded": [], "restored": []}
    for index in range(len(service.query_labels)):
        result = service.search(service.parse({
            "query_index": str(index), "degradation": "gaussian_noise", "severity": "3",
            "restorer": LEARNED, "metric": "l2", "k": "1"}))
        for row in result.rows[1:]:
            hits[row.name].append(row.hit_rate)
        assert torch.allclose(result.rows[2].image, restored[index].clamp(0, 1), atol=1e-6)
    for name, values in hits.items():
        assert sum(values) / len(values) == pytest.approx(figures[(name, "l2")], abs=1e-6)


def _copied_run(run_dir: Path, tmp_path: Path) -> Path:
    """The run folder copied, its restorer checkpoint (and sidecar) copied beside it, so that
    the test can damage the copy; returns the copied checkpoint."""
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(run_dir / "config.json", out / "config.json")
    results = json.loads((run_dir / "results.json").read_text())
    served = results["resolved"]["restorers"][0]
    checkpoint = tmp_path / "restorer" / "last.pt"
    checkpoint.parent.mkdir()
    shutil.copy(served["checkpoint"], checkpoint)
    shutil.copy(checksum_path(served["checkpoint"]), checksum_path(checkpoint))
    served["checkpoint"] = str(checkpoint)
    (out / "results.json").write_text(json.dumps(results))
    return checkpoint


@pytest.mark.parametrize("damage", [*DAMAGES, "retrained"])
def test_a_damaged_restorer_checkpoint_is_refused(run_dir: Path, tmp_path: Path, damage: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def never_serve(_app: object) -> None:
        raise AssertionError("the page was served with an unverified restorer")

    monkeypatch.setattr("robustret.demo.app.make_server", never_serve)
    checkpoint = _copied_run(run_dir, tmp_path)
    if damage in DAMAGES:
        damage_file(checkpoint, damage)
    else:  # other weights, with a sidecar that matches them: not the run's file
        model = restoration.load(checkpoint)
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        restoration.save(model, checkpoint)
    assert main(["--run", str(tmp_path / "run"), "--port", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert "restorer checkpoint" in err[-1] and str(checkpoint) in err[-1]
    assert ("is missing" if damage == "missing" else "cannot be trusted") in err[-1]


def test_a_run_written_before_the_record_offers_the_untrained_restorers_and_says_why(
        run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "older"
    out.mkdir()
    shutil.copy(run_dir / "config.json", out / "config.json")
    results = json.loads((run_dir / "results.json").read_text())
    del results["resolved"]["restorers"]
    (out / "results.json").write_text(json.dumps(results))
    with caplog.at_level("WARNING", logger="robustret.demo.run"):
        names = load_run(out, "cpu").restorers.names()
    assert LEARNED not in names and "estimated" in names
    assert "records no trained restorers" in caplog.text and "re-run" in caplog.text
