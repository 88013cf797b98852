"""Shareable query sets: export, exact reproduction through ``--queries``, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from robustret.cli.data import main as data_main
from robustret.cli.experiment import main as experiment_main
from robustret.core.checks import ConfigError
from robustret.data import load
from robustret.evaluation.pipeline import degradation_seed, degrade_queries
from robustret.experiment.query_sets import load_query_set, query_set_for

COMMON = ["--image-size", "32", "--seed", "0"]


def _export(data: Path, out: Path, degrade: str = "gaussian_noise", *extra: str) -> int:
    return data_main(["export", "--dataset", f"folder:{data}", "--degrade", degrade,
                      "--severity", "3", *COMMON, "--out", str(out), *extra])


def _experiment(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(out), *COMMON, "--retriever-epochs", "1",
            "--backbone", "resnet18", "--restore", "none", "--no-tensorboard", "--cache-dir",
            str(cache), "-q", *extra]


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "reused"}
            for row in json.loads(path.read_text())["rows"]]


@pytest.mark.parametrize("degradation", ["noise", "motion_blur"])
def test_export_holds_the_experiments_degraded_queries_bit_for_bit(
        tiny_folder: Path, tmp_path: Path, degradation: str) -> None:
    out = tmp_path / "set"
    assert _export(tiny_folder, out, degradation) == 0
    data = load(f"folder:{tiny_folder}", image_size=32, seed=0)
    expected = degrade_queries(data.queries.images, degradation, 3,
                               seed=degradation_seed(0, 3))
    loaded = load_query_set(out)
    assert loaded.degraded.images.dtype == expected.images.dtype
    assert torch.equal(loaded.degraded.images, expected.images)
    assert loaded.degraded.params.keys() == expected.params.keys() and expected.params
    for name, values in expected.params.items():
        assert loaded.degraded.params[name].dtype == values.dtype
        assert torch.equal(loaded.degraded.params[name], values)
    assert loaded.degraded.seed == expected.seed
    assert torch.equal(loaded.labels, data.queries.labels)
    manifest = json.loads((out / "manifest.json").read_text())
    first = manifest["images"][0]
    assert {"label", "params", "sha256", "file"} <= set(first)
    assert manifest["seed"] == 0 and manifest["degradation_seed"] == degradation_seed(0, 3)
    png = cv2.imread(str(out / first["file"]), cv2.IMREAD_UNCHANGED)
    view = (expected.images[0, 0].numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(png, view)


def test_queries_flag_reproduces_the_on_the_fly_rows_exactly(tiny_folder: Path,
                                                             tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert experiment_main(_experiment(tiny_folder, tmp_path / "fly", cache,
                                       "--degrade", "gaussian_noise")) == 0
    assert _export(tiny_folder, tmp_path / "set") == 0
    assert experiment_main(_experiment(tiny_folder, tmp_path / "from_set", cache,
                                       "--degrade", "gaussian_noise",
                                       "--queries", str(tmp_path / "set"))) == 0
    assert _rows(tmp_path / "from_set" / "results.json") == _rows(tmp_path / "fly" /
                                                                  "results.json")
    config = json.loads((tmp_path / "from_set" / "config.json").read_text())
    assert config["queries_dir"] == str(tmp_path / "set")


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target", ["png", "npy", "manifest"])
def test_a_tampered_file_is_refused_with_one_line(tiny_folder: Path, tmp_path: Path,
                                                  capsys, target: str) -> None:
    out = tmp_path / "set"
    assert _export(tiny_folder, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    path = {"png": out / manifest["images"][2]["file"], "npy": out / "queries.npy",
            "manifest": out / "manifest.json"}[target]
    _flip(path, path.stat().st_size - 40)
    capsys.readouterr()
    args = _experiment(tiny_folder, tmp_path / "run", tmp_path / "cache",
                       "--degrade", "gaussian_noise", "--queries", str(out))
    assert experiment_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and "export the set again" in err
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_set_of_another_condition_seed_or_data_is_refused(tiny_folder: Path,
                                                            tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    assert _export(tiny_folder, out) == 0
    capsys.readouterr()
    for extra, expected in ((["--degrade", "lowres"], "not lowres severity 3"),
                            (["--degrade", "gaussian_noise", "--seed", "1"], "--seed 0")):
        args = _experiment(tiny_folder, tmp_path / "run", tmp_path / "cache",
                           "--queries", str(out), *extra)
        assert experiment_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and expected in err
    other = load(f"folder:{tiny_folder}", image_size=32, per_class=1, seed=0)
    with pytest.raises(ConfigError, match="other clean queries"):
        query_set_for(out, "gaussian_noise", 3, seed=0, queries=other.queries)


def test_export_refuses_a_folder_that_is_not_a_set_and_bad_names(tiny_folder: Path,
                                                                 tmp_path: Path,
                                                                 capsys) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert _export(tiny_folder, busy) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m robustret.data: error:") and "\n" not in err
    assert "holds no query set" in err
    assert _export(tmp_path / "missing", tmp_path / "set") == 2
    assert "\n" not in capsys.readouterr().err.strip()
    with pytest.raises(SystemExit):
        _export(tiny_folder, tmp_path / "set", "no_such_degradation")


def test_several_conditions_go_to_sub_folders(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "sets"
    assert data_main(["export", "--dataset", f"folder:{tiny_folder}", "--degrade",
                      "gaussian_noise", "lowres", "--severity", "1", "2", *COMMON, "--per-class",
                      "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "gaussian_noise-s1", "gaussian_noise-s2", "lowres-s1", "lowres-s2"]
    data = load(f"folder:{tiny_folder}", image_size=32, per_class=2, seed=0)
    made = query_set_for(out, "lowres", 2, seed=0, queries=data.queries)
    assert torch.equal(made.images, degrade_queries(data.queries.images, "lowres", 2,
                                                    seed=degradation_seed(0, 2)).images)


def test_a_missing_or_empty_queries_folder_is_one_line(tiny_folder: Path, tmp_path: Path,
                                                        capsys) -> None:
    (tmp_path / "empty").mkdir()
    for folder, expected in ((tmp_path / "nowhere", "does not exist"),
                             (tmp_path / "empty", "has no manifest.json")):
        args = _experiment(tiny_folder, tmp_path / "run", tmp_path / "cache",
                           "--degrade", "gaussian_noise", "--queries", str(folder))
        assert experiment_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and expected in err and str(folder) in err
