"""robustret.core.distributed on one process, and 2-process CPU (gloo) runs under torchrun."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustret.core import distributed
from robustret.core.checks import ConfigError
from robustret.experiment.config import ExperimentConfig, load_config_file

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_loop_worker.py")
ROW_SHAPE = ("query", "degradation", "severity", "restorer", "adaptation", "metric", "measure",
             "k", "degrade_side")


# ----------------------------------------------------------------------------- one process
def test_one_process_is_the_identity(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cpu = torch.device("cpu")
    assert distributed.setup(cpu) == cpu and not torch.distributed.is_initialized()
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    distributed.barrier()
    with distributed.main_first():
        ran = True
    assert ran
    marker = object()
    assert distributed.broadcast(marker) is marker
    assert distributed.sum_over_ranks([1, 2.5]) == [1.0, 2.5]
    batch = (torch.arange(3), torch.arange(3))
    assert distributed.shard(batch) == (batch, 1.0)
    assert distributed.shard({"any": "batch"}) == ({"any": "batch"}, 1.0)  # as before
    model = torch.nn.Linear(2, 1)
    assert distributed.data_parallel(model, cpu) is model
    distributed.cleanup()  # nothing to leave


def test_launched_reads_world_size(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.launched() and distributed.env_rank() == 1
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer"):
        distributed.launched()


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("size", [1, 2, 5, 7])
def test_slices_cover_the_batch_and_weights_give_its_mean(size: int, parts: int) -> None:
    values = torch.arange(size, dtype=torch.float64) ** 2
    slices = [distributed.slice_of(values, part, parts) for part in range(parts)]
    kept = [piece for piece, weight in slices if weight > 0]
    assert torch.equal(torch.cat(kept), values)  # contiguous, in order, each item once
    lengths = [len(piece) for piece in kept]
    assert max(lengths) - min(lengths) <= 1
    # DDP averages the ranks' weighted means: that is the mean over the whole batch
    averaged = sum(weight * piece.mean() for piece, weight in slices) / parts
    assert float(averaged) == pytest.approx(float(values.mean()))
    # a part that would be empty (size < parts) runs on the whole batch with weight 0
    for piece, weight in slices:
        if weight == 0:
            assert torch.equal(piece, values)


def test_slice_keeps_a_tuple_batch_and_rejects_bad_ones() -> None:
    x, y = torch.arange(10).view(5, 2), torch.arange(5)
    (xs, ys), weight = distributed.slice_of((x, y), 1, 2)
    assert torch.equal(xs, x[3:]) and torch.equal(ys, y[3:]) and weight == pytest.approx(0.8)
    with pytest.raises(ValueError, match="part must be in 0..1"):
        distributed.slice_of(x, 2, 2)
    with pytest.raises(ValueError, match="leading size"):
        distributed.slice_of((x, y[:4]), 0, 2)
    with pytest.raises(TypeError, match="tensor or a tuple of tensors"):
        distributed.slice_of({"x": x}, 0, 2)


def test_slice_cuts_a_mapping_of_per_image_parameters_with_its_images() -> None:
    x, a = torch.arange(10).view(5, 2), torch.arange(5) * 10
    (xs, params), _ = distributed.slice_of((x, {"a": a, "b": a + 1}), 0, 2)
    assert torch.equal(xs, x[:3]) and torch.equal(params["a"], a[:3])
    assert torch.equal(params["b"], a[:3] + 1)
    (_, empty), _ = distributed.slice_of((x, {}), 1, 2)  # a restorer without parameters
    assert empty == {}
    with pytest.raises(ValueError, match="leading size"):
        distributed.slice_of((x, {"a": a[:4]}), 0, 2)
    (xs, absent, labels), _ = distributed.slice_of((x, None, a), 1, 2)  # labels not given
    assert torch.equal(xs, x[3:]) and absent is None and torch.equal(labels, a[3:])


def test_config_json_records_world_size_but_reads_back_as_settings(tmp_path: Path) -> None:
    written = {**ExperimentConfig().to_dict(), "world_size": 2}
    (tmp_path / "config.json").write_text(json.dumps(written))
    values = load_config_file(tmp_path / "config.json")
    assert "world_size" not in values
    assert ExperimentConfig.from_dict(values) == ExperimentConfig()
    (tmp_path / "old.json").write_text(json.dumps(ExperimentConfig().to_dict()))  # before it
    assert ExperimentConfig.from_dict(load_config_file(tmp_path / "old.json")) == ExperimentConfig()


def test_seeds_refuse_torchrun(monkeypatch, tmp_path: Path) -> None:
    from robustret.experiment.seeds import run_seeds

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one torchrun per seed"):
        run_seeds(ExperimentConfig(out_dir=tmp_path), [0, 1])


# ----------------------------------------------------------------------------- torchrun
def _python(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ROBUSTRET_CACHE": str(cache)}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _torchrun(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return _python("-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", *args,
                   cache=cache)


@pytest.mark.slow
def test_two_processes_train_the_loop_like_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    spec = importlib.util.spec_from_file_location("ddp_loop_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    two = tmp_path / "two"
    two.mkdir()
    _torchrun(str(WORKER), str(two), cache=tmp_path / "cache")
    worker.train(tmp_path / "one", 1)  # the same, on this one process
    model, history, resumed_from = worker.train(tmp_path / "one", 3)
    alone = {"state": model.state_dict(), "history": history, "resumed_from": resumed_from,
             "world_size": distributed.world_size()}
    ranks = [torch.load(two / f"rank-{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and alone["world_size"] == 1
    for name, value in ranks[0]["state"].items():  # DDP keeps the ranks identical
        assert torch.equal(value, ranks[1]["state"][name])
        # uneven slices (2/1) included: the same gradients as one process, up to rounding
        torch.testing.assert_close(value, alone["state"][name], rtol=1e-5, atol=1e-6)
    assert ranks[0]["resumed_from"] == alone["resumed_from"] == 1
    for mine, theirs in zip(ranks[0]["history"], alone["history"], strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)  # summed over ranks
        assert mine["mae"] == pytest.approx(theirs["mae"], rel=1e-5)
    assert sorted(p.name for p in (two / "ckpt").iterdir()) == ["last.pt", "last.pt.sha256"]
    assert torch.load(two / "ckpt" / "last.pt", weights_only=False)["world_size"] == 2


def _experiment_args(data: Path, out: Path, cache: Path) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(out), "--cache-dir", str(cache),
            "--image-size", "32", "--retriever-epochs", "1", "--restorer-epochs", "1",
            "--backbone", "resnet18", "--seed", "0", "--degrade", "gaussian_noise",
            "--restore", "dae", "--topk", "1", "3", "--no-tensorboard", "-q"]


def _shape(results: dict) -> list[tuple]:
    return [tuple(row[key] for key in ROW_SHAPE) for row in results["rows"]]


@pytest.mark.slow
def test_two_process_experiment_writes_one_set_of_results(tiny_folder: Path,
                                                          tmp_path: Path) -> None:
    from robustret.cli.experiment import main

    assert main(_experiment_args(tiny_folder, tmp_path / "one", tmp_path / "cache-one")) == 0
    two = tmp_path / "two"
    done = _torchrun("-m", "robustret.experiment",
                     *_experiment_args(tiny_folder, two / "out", two / "models"),
                     cache=two / "cache")
    assert done.stdout.count("conditions: 3 computed") == 1  # rank 0 alone prints
    assert [p.relative_to(two) for p in two.rglob("results.json")] == [Path("out/results.json")]
    results = json.loads((two / "out" / "results.json").read_text())
    alone = json.loads((tmp_path / "one" / "results.json").read_text())
    assert results["world_size"] == 2 and alone["world_size"] == 1
    assert json.loads((two / "out" / "config.json").read_text())["world_size"] == 2
    assert _shape(results) == _shape(alone)  # conditions, metrics, measures, ks
    assert all(0.0 <= row["value"] <= 1.0 for row in results["rows"])
    # one retriever and one DAE, trained by both ranks, written once by rank 0
    checkpoints = sorted((two / "models").glob("*/last.pt"))
    assert [p.parent.name.split("-")[0] for p in checkpoints] == ["dae", "retriever"]
    assert all(torch.load(p, weights_only=False)["world_size"] == 2 for p in checkpoints)
    # the models of a 2-process run are keyed apart from those of a plain run
    assert {p.parent.name for p in checkpoints}.isdisjoint(
        p.parent.name for p in (tmp_path / "cache-one").glob("*/last.pt"))


@pytest.mark.slow
def test_two_process_restorer_training_writes_one_folder(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "dae"
    args = ["-m", "restoration.train", "--model", "dae", "--degrade", "noise",
            "--dataset", f"folder:{tiny_folder}", "--image-size", "32", "--out", str(out),
            "--no-tensorboard"]
    done = _torchrun(*args, "--epochs", "1", cache=tmp_path / "cache")
    assert done.stdout.count("epochs 1 (resumed from 0)") == 1  # rank 0 alone prints
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 1
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert [p.name for p in tmp_path.rglob("summary.json")] == ["summary.json"]
