"""Conditions evaluated at once: ``--jobs N`` worker processes, or jobs sent by submitit.

:func:`run_parallel` is the runner's loop for ``jobs > 1`` or ``executor = "submitit"``. The
parent first does, serially, everything conditions share: the retriever and gallery embeddings
are ready before it is called, and it looks every planned condition up in the finished-
condition store, which trains (or builds) each restorer a condition needs, to key it. Two
processes therefore never train the same model. The conditions left are grouped by
``(degradation, severity)``: the conditions of one group share their degraded queries (and a
degraded gallery, an adapted retriever), so a group is one task. A task rebuilds the run from
the caches the parent filled (the data, the retriever's checkpoint, the gallery embeddings, the
restorers' checkpoints: nothing is trained; their keys are checked against the parent's),
evaluates its conditions with the serial code (``conditions.ConditionLoop``), stores them in
``OUT/.conditions`` as a serial run does, and returns their rows, per-query scores and
retrieval grids. The parent merges them in plan order, so ``results.json`` holds the rows a
serial run writes.

Executors: ``local`` is a ``concurrent.futures.ProcessPoolExecutor`` of ``min(jobs, groups)``
spawned processes, each with ``torch.get_num_threads() // workers`` threads (at least one);
``submitit`` sends each group as one job through ``submitit.AutoExecutor`` (folder
``OUT/.submitit``), at most ``jobs`` at a time; ``executor_options`` choose its cluster
(``slurm``, ``local``, ``debug``) and its parameters. A Slurm job needs ``OUT`` and the model
cache on a file system the nodes share.

Errors: a :class:`~robustret.core.checks.ConfigError` or ``FileNotFoundError`` in a task comes back
as the same kind of error, naming the condition (the CLI prints one line); any other exception
is raised as :class:`ConditionFailed`, one line naming the condition and the error, with the
task's traceback as its cause; a worker process that dies (killed, out of memory) is
:class:`WorkerLost`, a :class:`~robustret.core.checks.HostError` (one line). Ctrl-C (or
SIGTERM) in the parent stops the workers (they ignore SIGINT, so the parent alone decides) or
cancels the submitted jobs; finished conditions are kept, and re-running the command resumes.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustret.core.checks import ConfigError, HostError
from robustret.core.device import resolve_device
from robustret.evaluation.results import Condition, ResultRow
from robustret.experiment.cluster import submitit_executor
from robustret.experiment.conditions import ConditionLoop, gallery_index, load_data
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.descriptors import whitened
from robustret.experiment.trained import (
    data_content_key,
    gallery_embeddings,
    robust_retriever,
    trained_retriever,
)

log = logging.getLogger(__name__)

#: seconds between two looks at the state of submitted jobs
POLL_S = 1.0


class ConditionFailed(RuntimeError):
    """A condition could not be evaluated in a worker (its traceback is the ``__cause__``)."""


class WorkerLost(HostError):
    """A worker process died (killed, out of memory): one line at the command's boundary,
    naming the conditions it held; the finished conditions are kept."""


class WorkerTraceback(Exception):
    """The formatted traceback of an exception raised in a worker or job."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a task needs to rebuild the run from the caches the parent filled.

    Attributes:
        config: the resolved configuration (TensorBoard off: tasks log nothing).
        models_dir: the model cache the parent trained into.
        data_key, retriever_key, gallery_key: the parent's keys of the data, the retriever's
            weights and the gallery embeddings; a task that rebuilds others stops.
    """

    config: ExperimentConfig
    models_dir: Path
    data_key: str
    retriever_key: str
    gallery_key: str


@dataclass(frozen=True)
class Failure:
    """An exception of a task, as data (it crosses process boundaries by pickle).

    Attributes:
        condition: the condition's name (or the group's, when the run could not be rebuilt).
        kind: ``config`` (a ConfigError), ``missing`` (a FileNotFoundError) or ``bug``.
        error_type: the exception's class name.
        message: its message.
        traceback: the formatted traceback.
    """

    condition: str
    kind: str
    error_type: str
    message: str
    traceback: str


@dataclass
class GroupOutcome:
    """What a task returns. Its arrays are numpy arrays: a process pool would pass each
    tensor as a shared-memory file descriptor, and a sweep has many.

    Attributes:
        rows: each evaluated condition's rows.
        per_query: ``{(condition, metric, measure, k): (Q,) float32}`` of those conditions.
        grids: each computed condition's retrieval grid, ``(C, H, W)`` float in [0, 1].
        timings: seconds per computed condition (``NAME_s``).
        computed, reused: conditions computed, and found finished in the store.
        failure: the exception that stopped the task, if one did.
    """

    rows: dict[Condition, list[ResultRow]] = field(default_factory=dict)
    per_query: dict[tuple[Condition, str, str, int | None], np.ndarray] = field(
        default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    failure: Failure | None = None


def group_conditions(plan: list[Condition]) -> list[list[Condition]]:
    """``plan`` split into tasks: the conditions of one ``(degradation, severity)``, in plan
    order (clean queries are a group of their own)."""
    groups: dict[tuple[str | None, int | None], list[Condition]] = {}
    for condition in plan:
        groups.setdefault((condition.degradation, condition.severity), []).append(condition)
    return list(groups.values())


def run_parallel(loop: ConditionLoop, plan: list[Condition]) -> list[ResultRow]:
    """Evaluate ``plan`` with ``loop.config.jobs`` workers or jobs; the rows in plan order.

    Finished conditions are reused and every restorer is ready (trained here) before a task
    starts; the loop's counts, per-query scores, grids and timings are updated as the serial
    loop updates them. At most one group left is evaluated in this process.

    Raises:
        ConfigError, FileNotFoundError: a user error in a task, naming its condition.
        ConditionFailed: any other error in a task, naming its condition.
    """
    config = loop.config
    done: dict[Condition, list[ResultRow]] = {}
    for condition in plan:
        rows = loop.reuse(condition)
        if rows is not None:
            done[condition] = rows
    groups = group_conditions([c for c in plan if c not in done])
    if not groups or (len(groups) == 1 and config.executor == "local"):
        for condition in groups[0] if groups else []:
            done[condition] = loop.evaluate(condition)
        return [row for condition in plan for row in done[condition]]
    spec = WorkerSpec(config.replace(tensorboard=False), loop.models_dir, loop.data_key,
                      loop.retriever.content_key, loop.gallery_key)
    log.info("%d condition group(s) to evaluate with %s, at most %d at once", len(groups),
             config.executor, config.jobs)
    outcomes: dict[Condition, GroupOutcome] = {}

    def accept(outcome: GroupOutcome) -> None:
        if outcome.failure is not None:
            raise _error_of(outcome.failure)
        outcomes.update(dict.fromkeys(outcome.rows, outcome))
        log.info("evaluated %s (%d of %d groups)", ", ".join(c.name for c in outcome.rows),
                 len({id(o) for o in outcomes.values()}), len(groups))

    if config.executor == "submitit":
        _run_submitit(spec, groups, accept)
    else:
        _run_local(spec, groups, accept)
    for condition in plan:  # merged in plan order, as the serial loop adds them
        if condition in done:
            continue
        outcome = outcomes[condition]
        done[condition] = outcome.rows[condition]
        loop.per_query.update({key: torch.from_numpy(values)
                               for key, values in outcome.per_query.items()
                               if key[0] == condition})
        if condition.name in outcome.grids:
            loop.grids[condition.name] = torch.from_numpy(outcome.grids[condition.name])
        if f"{condition.name}_s" in outcome.timings:
            loop.timings[f"{condition.name}_s"] = outcome.timings[f"{condition.name}_s"]
    for outcome in {id(o): o for o in outcomes.values()}.values():
        loop.computed += outcome.computed
        loop.reused += outcome.reused
    return [row for condition in plan for row in done[condition]]


# ---------------------------------------------------------------------------- the task
#: the run rebuilt in this worker process, ``[(spec, loop)]``, reused by its next task (pool
#: workers only: ``None`` elsewhere, so a run in this process is never kept)
_WORKER_CACHE: list[tuple[WorkerSpec, ConditionLoop]] | None = None


def evaluate_group(spec: WorkerSpec, conditions: list[Condition]) -> GroupOutcome:
    """One task: rebuild the run from the caches, then evaluate ``conditions`` in order.

    Never raises for an error of the run: it comes back as :attr:`GroupOutcome.failure`
    (with the rows evaluated before it).
    """
    try:
        loop = _worker_loop(spec)
    except Exception as exc:  # reported by the parent, naming the conditions
        return GroupOutcome(failure=_failure_of(", ".join(c.name for c in conditions), exc))
    loop.per_query, loop.grids, loop.timings = {}, {}, {}
    loop.computed = loop.reused = 0
    outcome = GroupOutcome(timings=loop.timings)
    for condition in conditions:
        try:
            outcome.rows[condition] = loop.evaluate(condition)
        except Exception as exc:
            outcome.failure = _failure_of(condition.name, exc)
            break
    outcome.per_query = {key: _array(values) for key, values in loop.per_query.items()}
    outcome.grids = {name: _array(grid) for name, grid in loop.grids.items()}
    outcome.computed, outcome.reused = loop.computed, loop.reused
    return outcome


def _array(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().contiguous().numpy()


def _worker_loop(spec: WorkerSpec) -> ConditionLoop:
    """The run of ``spec`` rebuilt from the caches: data, retriever, gallery indexes."""
    if _WORKER_CACHE and _WORKER_CACHE[0][0] == spec:
        return _WORKER_CACHE[0][1]
    config = spec.config
    device = resolve_device(config.device)
    data = load_data(config)
    data_key = data_content_key(data)
    retriever = trained_retriever(config, data, data_key, device, spec.models_dir, None)
    if config.robust_train:  # as the parent's run: the fine-tuned retriever, from the cache
        retriever = robust_retriever(config, data, retriever, device, spec.models_dir, None)
    embeddings, gallery_key = gallery_embeddings(retriever, data.gallery.images, device)
    retriever, embeddings, gallery_key = whitened(config, retriever, embeddings, gallery_key)
    found = (data_key, retriever.content_key, gallery_key)
    if found != (spec.data_key, spec.retriever_key, spec.gallery_key):
        raise RuntimeError(f"the worker rebuilt another run than the parent's (data, retriever, "
                           f"gallery keys {found}, expected {spec.data_key}, "
                           f"{spec.retriever_key}, {spec.gallery_key}): did the data or the "
                           "model cache change during the run?")
    indexes = {metric: gallery_index(config, embeddings, data.gallery.labels, metric)
               for metric in config.metrics}  # the parent's index kind (exact or approximate)
    loop = ConditionLoop(config, data, data_key, retriever, gallery_key, indexes,
                         device, spec.models_dir, {})
    if _WORKER_CACHE is not None:
        _WORKER_CACHE[:] = [(spec, loop)]
    return loop


def _failure_of(name: str, exc: Exception) -> Failure:
    kind = ("config" if isinstance(exc, ConfigError)
            else "missing" if isinstance(exc, FileNotFoundError) else "bug")
    return Failure(name, kind, type(exc).__name__, str(exc),
                   "".join(traceback.format_exception(exc)))


def _error_of(failure: Failure) -> Exception:
    """The exception the parent raises for ``failure``."""
    if failure.kind in ("config", "missing"):
        message = f"condition {failure.condition}: {failure.message}"
        error: Exception = (ConfigError(message) if failure.kind == "config"
                            else FileNotFoundError(message))
    else:
        error = ConditionFailed(f"condition {failure.condition} failed in a worker: "
                                f"{failure.error_type}: {failure.message}")
    error.__cause__ = WorkerTraceback(f"\n{failure.traceback}")
    return error


# ---------------------------------------------------------------------------- executors
def _start_worker(threads: int, level: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle, ``threads`` torch threads, the
    parent's log level, and its rebuilt run kept for its next task."""
    global _WORKER_CACHE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s "
                        "[worker %(process)d]: %(message)s", datefmt="%H:%M:%S")
    _WORKER_CACHE = []


def _run_local(spec: WorkerSpec, groups: list[list[Condition]],
               accept: Callable[[GroupOutcome], None]) -> None:
    """The groups in a pool of spawned processes; stops them on any exception (Ctrl-C)."""
    workers = min(spec.config.jobs, len(groups))
    threads = max(1, torch.get_num_threads() // workers)
    pool = None
    try:
        with _sigint_held():  # the workers, started by the submissions, inherit it held
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker,
                                       initargs=(threads, logging.getLogger().getEffectiveLevel()))
            futures = {pool.submit(evaluate_group, spec, group): group for group in groups}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool as exc:
                names = ", ".join(c.name for c in futures[future])
                raise WorkerLost(f"a worker process died while evaluating {names} (killed, or "
                                 "out of memory? fewer --jobs use less memory); finished "
                                 "conditions are kept: re-run the same command to resume"
                                 ) from exc
            accept(outcome)
    except BaseException:
        if pool is not None:
            _stop_workers(pool)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back inside the block, delivered when it ends.

    SIGINT is blocked in this thread (POSIX), so processes started in the block inherit the
    blocked mask and a worker never sees Ctrl-C, even while it starts up. A signal the kernel
    hands to another of this process's threads (torch's, a logger's) still runs Python's
    handler in the main thread; that handler is replaced in the block by one that only records
    the signal, so no ``KeyboardInterrupt`` lands half-way through starting a worker (one the
    pool does not list yet, which nothing would stop). A signal recorded or pending is raised
    again, with the previous handlers back, when the block ends. Outside the main thread only
    the mask is set."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return

    resource_tracker.ensure_running()  # starting it later would unblock SIGINT here
    received: list[int] = []
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        previous_handlers = {number: signal.signal(number, lambda n, _: received.append(n))
                             for number in (signal.SIGTERM, signal.SIGINT)}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        try:  # SIGINT's handler back last: an interrupt from here on still unblocks the mask
            for number, handler in previous_handlers.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)  # a pending one arrives
        for number in dict.fromkeys(received):
            signal.raise_signal(number)


def _stop_workers(pool: Any) -> None:
    """Terminate the pool's processes (``terminate_workers`` from Python 3.14 on)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _run_submitit(spec: WorkerSpec, groups: list[list[Condition]],
                  accept: Callable[[GroupOutcome], None]) -> None:
    """Each group as one submitit job, at most ``jobs`` submitted at a time; cancels the
    submitted jobs on any exception (Ctrl-C)."""
    executor = submitit_executor(spec.config.out_dir, spec.config.executor_options)
    waiting = list(groups)
    running: list[tuple[Any, list[Condition]]] = []
    try:
        while waiting or running:
            while waiting and len(running) < spec.config.jobs:
                group = waiting.pop(0)
                running.append((executor.submit(evaluate_group, spec, group), group))
            finished = next((item for item in running if item[0].done()), None)
            if finished is None:
                time.sleep(POLL_S)
                continue
            running.remove(finished)
            job, group = finished
            try:
                outcome = job.result()
            except Exception as exc:  # the job itself failed: killed, time limit, node
                names = ", ".join(c.name for c in group)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ConditionFailed(f"submitit job {job.job_id} ({names}) failed: {first}; "
                                      f"its logs are in {executor.folder}") from exc
            accept(outcome)
    except BaseException:
        for job, _ in running:
            job.cancel(check=False)
        raise
