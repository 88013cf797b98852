"""Data-parallel training under ``torchrun``: one process per device, rank 0 writes the files.

``torchrun --nproc_per_node=N -m robustret.experiment ...`` starts N processes and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup`
joins the process group they describe (gloo for the CPU, nccl for CUDA, where each process
takes ``cuda:LOCAL_RANK``). Without them (a plain ``python -m``, or ``WORLD_SIZE=1``) nothing is
initialised and every function here is the one-process identity: :func:`world_size` 1,
:func:`rank` 0, :func:`barrier` returns at once, :func:`shard` keeps the whole batch.

How a batch is shared (:func:`shard`): every rank draws the same global batch from the same
seeded generator (the run's named streams, exactly as one process does) and keeps its
contiguous slice of it; its loss is weighted by ``n_rank * world / B``, so the gradient that
``DistributedDataParallel`` averages over ranks is the gradient of the mean loss over the
global batch. ``batch_size`` therefore stays the global batch and an epoch has the same steps
as on one process. What still differs from one process is in docs/distributed.md: float
rounding (the gradient all-reduce sums in another order) and BatchNorm, which normalises each
rank's slice with that slice's statistics (DDP copies rank 0's running statistics to the
others before every forward).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from robustret.core.checks import ConfigError

log = logging.getLogger(__name__)

__all__ = ["barrier", "broadcast", "cleanup", "data_parallel", "env_rank", "is_main", "launched",
           "main_first", "rank", "setup", "shard", "slice_of", "sum_over_ranks", "world_size"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer (torchrun sets it); "
                          f"got {value!r}") from None


def launched() -> bool:
    """True when a launcher (torchrun) started this process as one of several
    (``WORLD_SIZE`` > 1 in the environment)."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """This process's rank as the launcher set it (``RANK``), 0 without one; unlike
    :func:`rank` it can be read before :func:`setup` and after :func:`cleanup` (logging
    levels, what a CLI prints)."""
    return _env_int("RANK", 0)


def _initialised() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (once), and return this rank's device.

    Args:
        device: the resolved device of the run (:func:`robustret.core.device.resolve_device`).
    Returns:
        ``device`` itself on one process; under torchrun the CPU stays the CPU (gloo) and a
        CUDA device becomes ``cuda:LOCAL_RANK`` (nccl; an explicit index is replaced, one GPU
        per process).
    Raises:
        ConfigError: torch was built without ``torch.distributed``, or more processes per node
            than visible GPUs.
    """
    if not launched():
        return device
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch has no torch.distributed; run one "
                          "process (python -m ...) instead of torchrun")
    local = _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(f"torchrun started process LOCAL_RANK={local} but only {count} "
                              "CUDA device(s) are visible; lower --nproc_per_node or use "
                              "--device cpu")
        if device.index is not None and device.index != local:
            log.warning("device %s replaced by cuda:%d (one GPU per torchrun process)",
                        device, local)
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not _initialised():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        log.info("rank %d of %d joined the process group (%s)", rank(), world_size(), backend)
    return device


def world_size() -> int:
    """Processes in the process group; 1 when none was set up."""
    return torch.distributed.get_world_size() if _initialised() else 1


def rank() -> int:
    """This process's rank, 0..world_size()-1; 0 when no process group was set up."""
    return torch.distributed.get_rank() if _initialised() else 0


def is_main() -> bool:
    """True on rank 0, the process that writes checkpoints, logs and results."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (returns at once on one process)."""
    if world_size() > 1:
        torch.distributed.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (writing what the block caches); the others run it after,
    and read what rank 0 wrote. Rank 0 reaches the barrier even when its block raises."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def _collective_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` on one process."""
    if world_size() == 1:
        return value
    holder = [value]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """The element-wise sum of ``values`` over all ranks (float64); ``values`` on one process.

    Every rank must pass the same number of values.
    """
    if world_size() == 1:
        return [float(v) for v in values]
    total = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=_collective_device())
    torch.distributed.all_reduce(total)
    return [float(v) for v in total.cpu()]


def slice_of(batch: Any, part: int, parts: int) -> tuple[Any, float]:
    """Part ``part`` of ``parts`` of a batch, and the weight of its mean loss.

    The batch's B items are cut into ``parts`` contiguous slices whose sizes differ by at most
    one (the first ``B % parts`` slices hold one more; ``torch.tensor_split``). The weight is
    ``n_part * parts / B``: averaging ``weight * mean loss of the slice`` over the parts gives
    the mean loss over the whole batch, even when the slices differ in size. Where B < parts a
    part would be empty; it gets the whole batch with weight 0 (every rank must run the step).

    Args:
        batch: a (B, ...) tensor, or a tuple or list of tensors sharing the leading size B;
            an item of the tuple may also be a mapping of such tensors (a degradation's drawn
            per-image parameters), sliced value by value, or None (an absent part, such as
            labels not given), passed on as None.
        part: which slice, 0..parts-1 (a rank).
        parts: how many slices (the world size), >= 1.
    Returns:
        ``(slice, weight)``; the slice has the batch's kind (tensor, or tuple of tensors).
    Raises:
        ValueError: ``part`` out of range, an empty batch, or tensors of different lengths.
        TypeError: a batch that is not a tensor or a tuple/list of tensors.
    """
    if parts < 1 or not 0 <= part < parts:
        raise ValueError(f"part must be in 0..{parts - 1} (parts={parts}); got {part}")
    single = isinstance(batch, Tensor)
    items = [batch] if single else list(batch) if isinstance(batch, (tuple, list)) else None
    tensors = [value for item in items or () if item is not None for value in
               (item.values() if isinstance(item, Mapping) else (item,))]
    if not items or not isinstance(items[0], Tensor) or not all(
            isinstance(t, Tensor) for t in tensors):
        raise TypeError("a batch to share between ranks must be a tensor or a tuple of tensors "
                        f"(and mappings of tensors); got {type(batch).__name__}")
    size = tensors[0].shape[0]
    if size == 0 or any(t.shape[0] != size for t in tensors):
        raise ValueError(f"the batch's tensors must share a leading size >= 1; got "
                         f"{[tuple(t.shape) for t in tensors]}")
    if parts == 1:
        return batch, 1.0
    count = size // parts + (1 if part < size % parts else 0)
    start = part * (size // parts) + min(part, size % parts)
    if count == 0:
        return batch, 0.0
    def cut(item: Any) -> Any:
        if item is None:
            return None
        if isinstance(item, Mapping):
            return {name: value[start:start + count] for name, value in item.items()}
        return item[start:start + count]

    pieces = [cut(item) for item in items]
    return (pieces[0] if single else tuple(pieces)), count * parts / size


def shard(batch: Any) -> tuple[Any, float]:
    """This rank's slice of a global batch and its loss weight (:func:`slice_of`); on one
    process ``(batch, 1.0)``, whatever the batch is."""
    if world_size() == 1:
        return batch, 1.0
    return slice_of(batch, rank(), world_size())


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when several ranks train, else itself.

    Call the returned module for the training forward (the gradient averaging hooks on its
    ``forward``); save, load and evaluate ``module`` itself, whose parameters it shares.

    Args:
        module: on ``device`` already, with the same initial weights on every rank (DDP
            copies rank 0's once more).
        device: this rank's device (:func:`setup`).
    """
    if world_size() == 1:
        return module

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)


def cleanup() -> None:
    """Leave the process group, if one was set up (the CLIs call it on exit)."""
    if _initialised():
        torch.distributed.destroy_process_group()
