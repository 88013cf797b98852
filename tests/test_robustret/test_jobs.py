"""``--jobs N`` and ``--executor submitit``: the rows of a serial run, errors naming the condition,
Ctrl-C stopping the workers, and the configuration's checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, write_class_folders

from robustret.cli.experiment import build_parser, config_from_args, main
from robustret.core.checks import ConfigError
from robustret.core.io import file_digest
from robustret.evaluation.results import Condition
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.jobs import (
    ConditionFailed,
    Failure,
    WorkerSpec,
    _error_of,
    evaluate_group,
    group_conditions,
)
from robustret.experiment.plan import plan_conditions
from robustret.experiment.runner import RunResult, run

SUBMITIT = "submitit not installed (extra 'cluster')"


def _args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(out), "--cache-dir", str(cache),
            "--image-size", "32", "--retriever-epochs", "1", "--restorer-epochs", "1",
            "--backbone", "resnet18", "--seed", "0", "--degrade", "gaussian_noise",
            "--restore", "dae", "-q", "--no-tensorboard", *extra]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, RunResult]:
    """A data folder, a model cache trained by one ``--jobs 1`` run, its results.json and
    its :class:`RunResult`."""
    data = write_class_folders(tmp_path_factory.mktemp("data") / "data")
    folder = tmp_path_factory.mktemp("serial")
    result = run(_config(_args(data, folder / "run", folder / "cache")))
    return data, folder / "cache", (folder / "run" / "results.json").read_text(), result


def _config(args: list[str]) -> ExperimentConfig:
    return config_from_args(build_parser().parse_args(args))


def _rows(text: str) -> list[dict]:
    return json.loads(text)["rows"]


def _no_evaluation_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluating a condition in this process fails: a run that passes evaluated elsewhere."""
    import robustret.experiment.conditions

    def here(*args, **kwargs):
        raise AssertionError("a condition was evaluated in the parent process")

    monkeypatch.setattr(robustret.experiment.conditions, "evaluate_condition", here)


@pytest.mark.slow
def test_jobs_2_writes_the_rows_of_jobs_1(serial_run, tmp_path: Path, monkeypatch) -> None:
    data, cache, serial, _ = serial_run
    _no_evaluation_here(monkeypatch)  # spawned workers import the real one
    out = tmp_path / "run"
    assert main(_args(data, out, cache, "--jobs", "2")) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == _rows(serial)  # every field, in plan order, reused false
    assert results["conditions"] == {"computed": 3, "reused": 0}
    assert results["config"]["jobs"] == 2
    assert len(list((out / ".conditions").glob("*.per_query.pt"))) == 3
    # the same command again reuses every condition, in this process
    assert main(_args(data, out, cache, "--jobs", "2")) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["conditions"] == {"computed": 0, "reused": 3}
    assert [{**row, "reused": False} for row in again["rows"]] == results["rows"]


def test_submitit_debug_cluster_gives_the_result_of_jobs_1(serial_run, tmp_path: Path) -> None:
    pytest.importorskip("submitit", reason=SUBMITIT)
    data, cache, serial, expected = serial_run
    config = tmp_path / "debug.toml"
    config.write_text('executor = "submitit"\n[executor_options]\ncluster = "debug"\n')
    out = tmp_path / "run"
    result = run(_config(["--config", str(config), *_args(data, out, cache, "--jobs", "2")]))
    assert result.rows == expected.rows
    assert result.per_query.keys() == expected.per_query.keys()
    assert all(bool((values == expected.per_query[key]).all())
               for key, values in result.per_query.items())
    assert {"clean_s", "gaussian_noise-s3_s", "gaussian_noise-s3-dae_s"} <= set(result.timings)
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == _rows(serial)
    assert results["conditions"] == {"computed": 3, "reused": 0}
    assert (out / ".submitit").is_dir()


@pytest.mark.slow
def test_submitit_local_cluster_writes_the_rows_of_jobs_1(serial_run, tmp_path: Path,
                                                           monkeypatch) -> None:
    pytest.importorskip("submitit", reason=SUBMITIT)
    data, cache, serial, _ = serial_run
    _no_evaluation_here(monkeypatch)
    monkeypatch.chdir(REPO_ROOT)  # the jobs' interpreter imports this checkout's robustret
    config = tmp_path / "local.toml"
    config.write_text('executor = "submitit"\n[executor_options]\ncluster = "local"\n'
                      'timeout_min = 10\n')
    out = tmp_path / "run"
    assert main(["--config", str(config), *_args(data, out, cache, "--jobs", "2")]) == 0
    assert json.loads((out / "results.json").read_text())["rows"] == _rows(serial)


def _failing(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    import robustret.experiment.conditions

    def evaluate(condition, **kwargs):
        if condition.query == "restored":
            raise error
        return real(condition, **kwargs)

    real = robustret.experiment.conditions.evaluate_condition
    monkeypatch.setattr(robustret.experiment.conditions, "evaluate_condition", evaluate)


def _debug_args(serial_run, tmp_path: Path) -> list[str]:
    pytest.importorskip("submitit", reason=SUBMITIT)
    data, cache, _, _ = serial_run
    config = tmp_path / "debug.toml"
    config.write_text('executor = "submitit"\n[executor_options]\ncluster = "debug"\n')
    return ["--config", str(config), *_args(data, tmp_path / "run", cache, "--jobs", "2")]


def test_a_bug_in_a_task_names_the_condition(serial_run, tmp_path: Path, monkeypatch) -> None:
    _failing(monkeypatch, ValueError("an internal bug"))  # submitit's debug cluster: in process
    with pytest.raises(ConditionFailed) as caught:
        main(_debug_args(serial_run, tmp_path))
    assert str(caught.value) == ("condition gaussian_noise-s3-dae failed in a worker: "
                                 "ValueError: an internal bug")
    assert "an internal bug" in str(caught.value.__cause__)  # the task's traceback
    assert "Traceback" in str(caught.value.__cause__)
    # the conditions finished before it are kept: a re-run computes only the failed one
    monkeypatch.undo()
    assert main(_debug_args(serial_run, tmp_path)) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["conditions"] == {"computed": 1, "reused": 2}


def test_a_user_error_in_a_task_is_one_line_naming_the_condition(serial_run, tmp_path: Path,
                                                                 monkeypatch, capsys) -> None:
    _failing(monkeypatch, ConfigError("the restorer cannot read these images; do X"))
    assert main(_debug_args(serial_run, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m robustret.experiment: error: condition gaussian_noise-s3-dae: "
                   "the restorer cannot read these images; do X"]


def _spec(serial_run, out: Path, **keys: str) -> WorkerSpec:
    """The spec the parent of the serial run would give its tasks (``keys`` replaced)."""
    _, cache, _, serial = serial_run
    resolved = serial.meta["resolved"]
    found = {"data_key": resolved["data_key"], "gallery_key": resolved["gallery_key"],
             "retriever_key": file_digest(Path(resolved["retriever_checkpoint"]))}
    return WorkerSpec(serial.config.replace(out_dir=out, tensorboard=False), cache,
                      **(found | keys))


def test_a_task_returns_its_failure_with_the_rows_before_it(serial_run, tmp_path: Path,
                                                             monkeypatch) -> None:
    spec = _spec(serial_run, tmp_path / "run")
    _failing(monkeypatch, ValueError("an internal bug"))
    plan = plan_conditions(spec.config)  # clean, degraded, restored
    outcome = evaluate_group(spec, plan[1:])  # in this process, as a worker runs it
    assert list(outcome.rows) == [plan[1]] and outcome.computed == 1
    assert {key[0] for key in outcome.per_query} == {plan[1]}
    failure = outcome.failure
    assert (failure.condition, failure.kind, failure.error_type, failure.message) == (
        "gaussian_noise-s3-dae", "bug", "ValueError", "an internal bug")
    assert "Traceback" in failure.traceback and "evaluate" in failure.traceback


def test_a_task_that_rebuilds_another_run_stops(serial_run, tmp_path: Path) -> None:
    spec = _spec(serial_run, tmp_path / "run", gallery_key="another gallery")
    plan = plan_conditions(spec.config)
    outcome = evaluate_group(spec, plan[1:])
    assert not outcome.rows
    assert outcome.failure.condition == "gaussian_noise-s3, gaussian_noise-s3-dae"
    assert "rebuilt another run than the parent's" in outcome.failure.message
    assert not (tmp_path / "run" / ".conditions").exists()


def test_failures_become_errors_that_name_the_condition() -> None:
    def error(kind: str) -> Exception:
        return _error_of(Failure("noise-s3", kind, "SomeError", "what went wrong", "Traceback"))

    assert isinstance(error("config"), ConfigError)
    assert str(error("config")) == "condition noise-s3: what went wrong"
    assert isinstance(error("missing"), FileNotFoundError)
    assert str(error("missing")) == "condition noise-s3: what went wrong"
    bug = error("bug")
    assert isinstance(bug, ConditionFailed) and not isinstance(bug, ConfigError)
    assert str(bug) == "condition noise-s3 failed in a worker: SomeError: what went wrong"
    assert "Traceback" in str(bug.__cause__)


def test_groups_keep_the_conditions_that_share_degraded_queries_together() -> None:
    plan = [Condition("clean"), Condition("degraded", "noise", 1),
            Condition("restored", "noise", 1, "dae"), Condition("degraded", "noise", 2),
            Condition("restored", "noise", 2, "dae"), Condition("degraded", "lowres", 1)]
    assert group_conditions(plan) == [plan[:1], plan[1:3], plan[3:5], plan[5:]]
    assert group_conditions([]) == []


@pytest.mark.parametrize("values, message", [
    ({"jobs": 0}, "jobs must be an integer >= 1; got 0"),
    ({"jobs": "2"}, "jobs must be an integer >= 1; got '2'"),
    ({"jobs": True}, "jobs must be an integer >= 1; got True"),
    ({"executor": "slurm"}, "executor must be one of local, submitit; got 'slurm'"),
    ({"executor_options": {"cluster": "debug"}}, "executor_options are options of the submitit"),
    ({"executor": "submitit", "executor_options": ["cluster"]}, "must be a table"),
])
def test_bad_jobs_and_executor_values_are_config_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(values)


@pytest.mark.parametrize("options, message", [
    ({"cluster": "nowhere"}, "doesn't know any executor named nowhere"),
    ({"cluster": "debug", "no_such_option": 1}, "no_such_option"),
])
def test_submitit_options_it_rejects_fail_before_any_work(tmp_path: Path, options: dict,
                                                          message: str) -> None:
    pytest.importorskip("submitit", reason=SUBMITIT)
    config = ExperimentConfig(executor="submitit", executor_options=options,
                              out_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        config.validate()
    assert ExperimentConfig(executor="submitit", executor_options={"cluster": "debug"},
                            out_dir=tmp_path / "run").validate()


def test_submitit_missing_is_a_config_error_that_says_what_to_install(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    config = ExperimentConfig(executor="submitit", out_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=r"needs the submitit package: pip install "
                                          r"'robustret\[cluster\]'"):
        config.validate()


def test_jobs_0_on_the_command_line_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["--jobs", "0", "--out", str(tmp_path / "run"), "-q"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "python -m robustret.experiment: error: jobs must be an integer >= 1; got 0"]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_processes_started_while_sigint_is_held_never_see_it() -> None:
    script = ("import multiprocessing, signal\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "from robustret.experiment.jobs import _sigint_held\n"
              "with _sigint_held():\n"
              "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))\n"
              "    child = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, [])\n"
              "print(signal.SIGINT in child.result(), "
              "signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)  # a fresh interpreter: no resource tracker yet
    assert done.stdout.split() == ["True", "False"], done.stderr  # the worker's, and ours after


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_another_thread_receives_waits_for_the_block_to_end(name: str) -> None:
    """The kernel may hand Ctrl-C to any thread not blocking it (torch's, a logger's); Python
    then raises in the main thread wherever it is, e.g. half-way through starting a worker the
    pool does not list yet. In the block it is only recorded, and raised when the block ends."""
    script = ("import os, signal, sys, threading, time\n"
              "from robustret.core.io import sigterm_as_interrupt\n"
              "from robustret.experiment.jobs import _sigint_held\n"
              "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
              "try:\n"
              "    with sigterm_as_interrupt(), _sigint_held():\n"
              f"        os.kill(os.getpid(), signal.{name})  # taken by the other thread\n"
              "        time.sleep(0.3)\n"
              "        print('block ended', flush=True)\n"
              "except KeyboardInterrupt:\n"
              "    print('interrupted after it', flush=True)\n"
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,\n"
              "      signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.splitlines() == ["block ended", "interrupted after it", "True False"], \
        done.stderr


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(child) for child in text}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_ctrl_c_stops_the_workers(serial_run, tmp_path: Path) -> None:
    data, cache, _, _ = serial_run
    args = _args(data, tmp_path / "run", cache, "--jobs", "2", "--severity", "1", "2", "3",
                 "--restore", "none")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "robustret.experiment", *args],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(workers := _children(process.pid)) < 2:  # the pool is starting
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.splitlines() == [
        "python -m robustret.experiment: interrupted; re-run the same command to resume"]
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)]
    # stopped, not left to finish: the workers were still starting up when it came
    assert not list((tmp_path / "run" / ".conditions").glob("*-s*.json"))


def test_workers_rebuild_the_fine_tuned_retriever_and_the_approximate_index(
        serial_run, tmp_path: Path) -> None:
    """A worker's run is the parent's: with ``--robust-train`` it takes the fine-tuned retriever
    (else the keys differ and the task stops) and it searches the run's index kind."""
    pytest.importorskip("submitit", reason=SUBMITIT)
    pytest.importorskip("faiss")
    data, cache, _, _ = serial_run
    extra = ("--robust-train", "gaussian_noise", "--robust-epochs", "1", "--index", "faiss-hnsw",
             "--measures", "topk", "--restore", "none")
    serial = run(_config(_args(data, tmp_path / "serial", cache, *extra)))
    config = tmp_path / "debug.toml"
    config.write_text('executor = "submitit"\n[executor_options]\ncluster = "debug"\n')
    parallel = run(_config(["--config", str(config),
                            *_args(data, tmp_path / "run", cache, *extra, "--jobs", "2")]))
    assert parallel.rows == serial.rows
    assert {row.retriever_seen for row in parallel.rows} == {("gaussian_noise",)}


def test_a_killed_worker_is_one_line_and_a_rerun_resumes(serial_run, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    import multiprocessing

    import robustret.experiment.jobs as jobs

    data, cache, serial, _ = serial_run
    real_as_completed = jobs.as_completed

    def kill_the_workers_first(futures):
        for child in multiprocessing.active_children():  # the pool's spawned workers
            os.kill(child.pid, signal.SIGKILL)
        return real_as_completed(futures)

    monkeypatch.setattr(jobs, "as_completed", kill_the_workers_first)
    out = tmp_path / "run"
    assert main(_args(data, out, cache, "--jobs", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("python -m robustret.experiment: error: a worker process died")
    assert "re-run the same command to resume" in err[0]
    monkeypatch.undo()
    assert main(_args(data, out, cache)) == 0  # serially: the rows of the serial run
    assert _rows((out / "results.json").read_text()) == _rows(serial)
