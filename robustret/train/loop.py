"""The shared epoch loop: steps, progress bar, a checkpoint each epoch, resume.

Randomness contract: everything random in an epoch (shuffling, augmentation, on-the-fly
degradation) comes from ``make_batches(epoch)``, which derives its generator from
``(seed, epoch)``. Model, optimizer and scheduler state are saved after every epoch, so
"2 epochs" equals "1 epoch, interrupt, resume, 1 epoch" exactly. The checkpoint resumed from
is verified against its checksum first; a corrupt one is never trained on.

Under torchrun (:mod:`robustret.core.distributed`) every rank makes the same batches, trains on its
slice of each (:func:`robustret.core.distributed.shard`, the loss weighted so that the averaged
gradient is the global batch's), and the epoch's loss and metrics are summed over the ranks;
only rank 0 shows the progress bar, evaluates (its metrics are sent to the others), logs and
writes the checkpoint. Rank 0 checks the checkpoint to resume from before the others read it,
and every rank waits for the last checkpoint to be written before the loop returns.

The objects the loop drives (model, optimizer, batches, step, ...) are :func:`train_loop`'s
arguments; how it runs (epochs, checkpoint, fingerprint, ...) is one frozen
:class:`LoopSettings` (or its fields as keywords).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustret import __version__
from robustret.core.distributed import (
    barrier,
    broadcast,
    is_main,
    main_first,
    shard,
    sum_over_ranks,
    world_size,
)
from robustret.core.io import (
    CorruptFileError,
    atomic_save,
    load_checkpoint,
    move_aside,
    remove_stale_temps,
)
from robustret.core.tracking import RunLogger
from robustret.train.averaging import WeightAverage, check_decay

log = logging.getLogger(__name__)

StepFn = Callable[[Any], tuple[Tensor, dict[str, float]]]
"""Maps one batch to ``(loss, extra_metrics)``; the loop does backward and the optimizer step."""


@dataclass
class TrainResult:
    """What :func:`train_loop` did.

    Attributes:
        history: one dict per epoch (``epoch``, ``loss``, ``lr``, ``seconds`` and the
            metrics returned by ``step``/``evaluate``), resumed epochs included.
        resumed_from: the last epoch found in the checkpoint, 0 when training started fresh.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's record (empty when no epoch ran)."""
        return self.history[-1] if self.history else {}


@dataclass(frozen=True)
class LoopSettings:
    """How :func:`train_loop` runs: everything but the objects it drives.

    Attributes:
        epochs: total number of epochs to reach (a resumed run only does the missing ones).
        checkpoint: path of ``last.pt``, written atomically with a ``.sha256`` sidecar after
            every epoch; when it exists and its ``fingerprint`` matches, training resumes after
            its epoch. A corrupt one is moved aside with a warning and training starts over.
            None: no checkpoint.
        fingerprint: identifies the configuration; a checkpoint with another fingerprint is
            never resumed from (a ``ValueError`` says so).
        evaluate_every: run ``evaluate`` only after the epochs divisible by this (>= 1) and
            after the last one; the other records hold the training metrics only. It never
            changes what is learned: ``evaluate`` sees the model in ``eval()`` mode only.
        tag: scalar prefix, e.g. ``train/retriever``.
        progress: show a tqdm bar (None: only on a terminal).
        extra_state: stored in the checkpoint beside the training state (config, class names).
        average_decay: > 0 keeps an exponential moving average of the weights
            (:class:`robustret.train.averaging.WeightAverage`, updated after every step):
            ``evaluate`` sees the averaged weights, the checkpoint's ``model`` holds them (its
            ``training_model`` and ``average_steps`` the raw weights and the update count, to
            resume from) and the model holds them when the loop returns. 0: no average.

    Raises:
        ValueError: ``epochs`` < 0, ``evaluate_every`` < 1 or an ``average_decay`` outside
            [0, 1).
    """

    epochs: int
    checkpoint: Path | None = None
    fingerprint: str = ""
    evaluate_every: int = 1
    tag: str = "train"
    progress: bool | None = None
    extra_state: dict[str, Any] | None = None
    average_decay: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.evaluate_every, bool) or not isinstance(self.evaluate_every, int) \
                or self.evaluate_every < 1:
            raise ValueError(
                f"evaluate_every must be an integer >= 1, got {self.evaluate_every!r}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        check_decay(self.average_decay, "average_decay")
        if self.checkpoint is not None:  # a str is taken too
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))


def train_loop(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    make_batches: Callable[[int], Iterable[Any]],
    step: StepFn,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    logger: RunLogger | None = None,
    settings: LoopSettings | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``model`` for ``settings.epochs`` epochs (numbered 1..epochs), resuming when
    possible.

    Args:
        model: the network, already on its device; put in ``train()`` mode each epoch. With
            several ranks, ``step`` calls its ``DistributedDataParallel`` wrapper
            (:func:`robustret.core.distributed.data_parallel`); the loop saves ``model`` itself.
        optimizer: its optimizer.
        make_batches: ``epoch -> iterable of batches``; all randomness of the epoch lives here.
            With several ranks a batch must be a tensor or a tuple of tensors of the same
            leading size (the global batch; each rank trains on its slice).
        step: ``batch -> (loss, metrics)``; the loop calls ``backward`` and ``optimizer.step``.
            The loss and metrics are means over the batch it is given.
        scheduler: stepped once per epoch.
        evaluate: ``epoch -> metrics`` run after each ``settings.evaluate_every``-th epoch and
            the last (in ``eval()`` mode).
        logger: receives ``{tag}/loss``, ``{tag}/lr`` and every metric per epoch.
        settings: a :class:`LoopSettings`.
        **options: the fields of :class:`LoopSettings` instead of ``settings``
            (``epochs=...``, ``checkpoint=...``, ...).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: bad settings (:class:`LoopSettings`), or a checkpoint written by another
            configuration.
        TypeError: both ``settings`` and its fields given.
    """
    if settings is None:
        settings = LoopSettings(**options)
    elif options:
        raise TypeError(f"train_loop: give settings or its fields ({', '.join(sorted(options))}),"
                        " not both")
    return _Loop(model, optimizer, scheduler, step, evaluate, logger, settings).run(make_batches)


class _Loop:
    """One run of :func:`train_loop`: resume, the epochs, a checkpoint after each."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, step: StepFn,
                 evaluate: Callable[[int], dict[str, float]] | None, logger: RunLogger | None,
                 settings: LoopSettings) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.step, self.evaluate, self.logger, self.settings = step, evaluate, logger, settings
        self.average = (WeightAverage(model, settings.average_decay)
                        if settings.average_decay > 0 else None)

    def run(self, make_batches: Callable[[int], Iterable[Any]]) -> TrainResult:
        """Resume, train the missing epochs, leave ``model`` in ``eval()`` mode."""
        settings = self.settings
        result = self._resumed()
        # lazy: loaded only when a progress bar is shown
        from tqdm.auto import tqdm

        for epoch in range(result.resumed_from + 1, settings.epochs + 1):
            self.model.train()
            began = time.perf_counter()
            bar = tqdm(
                make_batches(epoch),
                desc=f"{settings.tag} {epoch}/{settings.epochs}",
                leave=False,
                disable=((None if settings.progress is None else not settings.progress)
                         if is_main() else True),
            )
            record = self._train_epoch(epoch, bar)
            if self.scheduler is not None:
                self.scheduler.step()
            if self.evaluate is not None and (epoch % settings.evaluate_every == 0
                                              or epoch == settings.epochs):
                self.model.eval()
                with self.average.swapped_in() if self.average is not None else nullcontext():
                    record.update(broadcast(self.evaluate(epoch) if is_main() else None))
            record["seconds"] = time.perf_counter() - began
            result.history.append(record)
            log.info("%s epoch %d/%d: %s", settings.tag, epoch, settings.epochs, _format(record))
            if self.logger is not None and is_main():
                self.logger.scalars(
                    {k: v for k, v in record.items() if k not in ("epoch", "seconds")},
                    step=epoch,
                    prefix=settings.tag,
                )
            if settings.checkpoint is not None and is_main():
                self._save(epoch, result.history)
        if self.average is not None:
            self.average.copy_into(self.model)
        self.model.eval()
        barrier()  # the last checkpoint is on disk before any rank reads or hashes it
        return result

    def _resumed(self) -> TrainResult:
        """The result so far: empty, or the checkpoint's history with the model, optimizer,
        scheduler (and weight average) loaded from it."""
        settings, result = self.settings, TrainResult()
        checkpoint, fingerprint, tag = settings.checkpoint, settings.fingerprint, settings.tag
        if checkpoint is None:
            return result
        with main_first():  # rank 0 moves a corrupt one aside before the others look
            state = _resumable_state(checkpoint, self.model, fingerprint, tag,
                                     self.average is not None)
        if state is None:
            return result
        if state.get("fingerprint", "") != fingerprint:
            raise ValueError(
                f"checkpoint {checkpoint} was written by another configuration "
                f"({state.get('fingerprint', '?')!r} != {fingerprint!r}); delete it or use another "
                "output folder"
            )
        if self.average is not None:  # "model" holds the average, "training_model" the raw
            self.model.load_state_dict(state["training_model"])
            self.average.load(state["model"], state["average_steps"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        result.history = list(state.get("history", []))
        result.resumed_from = int(state["epoch"])
        if result.resumed_from + 1 <= settings.epochs:
            log.info("resuming %s from %s after epoch %d", tag, checkpoint, result.resumed_from)
        if state.get("world_size", 1) != world_size():
            log.info("%s: %s was written by %d process(es); continuing with %d", tag,
                     checkpoint, state.get("world_size", 1), world_size())
        return result

    def _train_epoch(self, epoch: int, bar: Any) -> dict[str, float]:
        """The steps of one epoch over ``bar`` (the tqdm-wrapped batches); its record:
        ``epoch``, the mean ``loss``, the ``lr`` it trained at and the mean step metrics,
        summed over the ranks."""
        ranks = world_size()
        total, count, shown = 0.0, 0, 0.0
        sums: dict[str, float] = {}
        for batch in bar:
            batch, weight = shard(batch)  # one process: the whole batch, weight 1
            loss, metrics = self.step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            (loss if weight == 1.0 else loss * weight).backward()
            self.optimizer.step()
            if self.average is not None:
                self.average.update()
            share = weight / ranks  # this rank's part of the global batch's mean
            shown += float(loss.detach())
            total += share * float(loss.detach())
            count += 1
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + share * float(value)
            bar.set_postfix(loss=f"{shown / count:.4f}")
        bar.close()
        if ranks > 1:
            names = sorted(sums)
            total, *summed = sum_over_ranks([total, *(sums[name] for name in names)])
            sums = dict(zip(names, summed))
        if count == 0:
            raise ValueError(
                f"{self.settings.tag}: epoch {epoch} produced no batches; is the training set "
                "empty?"
            )
        return {
            "epoch": epoch,
            "loss": total / count,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            **{name: value / count for name, value in sums.items()},
        }

    def _save(self, epoch: int, history: list[dict[str, float]]) -> None:
        """Write ``last.pt`` (rank 0): the weights (the average's, with the raw ones beside
        them), optimizer, scheduler, epoch, history, fingerprint and the extra state."""
        settings, average = self.settings, self.average
        assert settings.checkpoint is not None
        atomic_save(
            {
                "model": self.model.state_dict() if average is None else average.weights(),
                **({} if average is None else {"training_model": self.model.state_dict(),
                                               "average_steps": average.steps}),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "epoch": epoch,
                "history": history,
                "fingerprint": settings.fingerprint,
                "version": __version__,
                "world_size": world_size(),
                **(settings.extra_state or {}),
            },
            settings.checkpoint,
            checksum=True,
        )


def _resumable_state(
    checkpoint: Path, model: nn.Module, fingerprint: str, tag: str, averaged: bool = False
) -> dict[str, Any] | None:
    """The verified state in ``checkpoint`` to resume from, or None to start from scratch.

    A checkpoint whose bytes do not match its ``.sha256`` sidecar, that torch cannot read, or
    whose structure does not fit ``model`` is moved aside to ``last.pt.corrupt`` with one
    warning (training then starts over, as if it had never been written); so is one without its
    sidecar (copied alone, or written before checksums): its bytes cannot be checked, and
    garbled weights would change every row silently. Temporary files of an interrupted write in
    its folder are removed.
    """
    remove_stale_temps(checkpoint.parent)
    if not checkpoint.is_file():
        return None
    try:
        state = load_checkpoint(checkpoint, required=True)
        if state.get("fingerprint", "") == fingerprint:  # another configuration's: refused later
            _check_structure(state, model, checkpoint, averaged)
    except CorruptFileError as exc:
        aside = move_aside(checkpoint)
        log.warning("%s; moved it to %s, training %s from scratch", exc,
                    aside.name if aside else "?", tag)
        return None
    return state


def _check_structure(state: dict[str, Any], model: nn.Module, checkpoint: Path,
                     averaged: bool = False) -> None:
    """Raise :class:`CorruptFileError` unless ``state`` is a training state that fits ``model``
    (with ``averaged``, one with raw weights and an update count beside the average)."""
    epoch = state.get("epoch")
    if not isinstance(state.get("model"), dict) or not isinstance(state.get("optimizer"), dict):
        raise CorruptFileError(checkpoint, "it holds no model and optimizer state")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CorruptFileError(checkpoint, f"its epoch is {epoch!r}, not a count")
    steps = state.get("average_steps")
    if averaged and (not isinstance(state.get("training_model"), dict) or isinstance(steps, bool)
                     or not isinstance(steps, int) or steps < 0):
        raise CorruptFileError(checkpoint, "it holds no raw weights and update count beside "
                               "the weight average")
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    for entry in ("model", "training_model") if averaged else ("model",):
        found = {name: tuple(t.shape) for name, t in state[entry].items()
                 if isinstance(t, Tensor)}
        if found != expected:
            differ = sorted(set(expected.items()) ^ set(found.items()))[:3]
            raise CorruptFileError(checkpoint, f"its weights do not fit the model (e.g. {differ})")


def _format(record: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")


def step_decay(
    optimizer: torch.optim.Optimizer, *, step_epochs: int, gamma: float = 0.5
) -> torch.optim.lr_scheduler.StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs (stepped per epoch).

    ``step_epochs`` counts real epochs of this run: the study halves the rate every 40 of its
    200 epochs (``step_epochs=40``); a 10-epoch quick run that halves every 4 passes 4.

    Args:
        optimizer: the optimizer whose rate is decayed.
        step_epochs: epochs between two decays, >= 1.
        gamma: the factor applied at each decay, in (0, 1].
    Returns:
        A :class:`torch.optim.lr_scheduler.StepLR`; call ``step()`` once after each epoch.
    Raises:
        ValueError: ``step_epochs`` < 1 or ``gamma`` outside (0, 1].
    """
    if isinstance(step_epochs, bool) or not isinstance(step_epochs, int) or step_epochs < 1:
        raise ValueError(
            f"step_epochs must be a positive integer (epochs between decays); got {step_epochs!r}"
        )
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1]; got {gamma!r}")
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_epochs, gamma=gamma)
