"""Atomic, optionally checksummed file writes.

Every write goes to a temporary file beside the target (:func:`robustret.core.interrupts.
create_temp`: mode 0o666 less the process umask) and is then renamed over the target: an
interrupted run never leaves half a file, and one left by a killed writer is removed the next
time that file is written (:func:`robustret.core.interrupts.remove_stale_temps`).

With ``checksum=True`` the SHA-256 of the bytes written goes into a sidecar ``NAME.sha256``
(:mod:`robustret.core.checksums`). The sidecar lists the new digest before the rename and only
it after, so at every instant the file on disk matches a line of its sidecar, whatever the
moment a run is killed.

A ``KeyboardInterrupt`` raised inside a writer (also one that ``torch.save`` turns into a
``RuntimeError``) leaves as a ``KeyboardInterrupt``, with the temporary file removed and the
previous file and sidecar untouched. So does an ``OSError`` of the disk (full, read-only,
quota): it leaves as itself, naming the file written, not as the ``RuntimeError`` that
``torch.save`` makes of it (whose message never says "no space left on device").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from robustret.core.checks import host_refusal
from robustret.core.checksums import CorruptFileError, checksum_path, file_digest, read_digests
from robustret.core.interrupts import ACTIVE_TEMPS, create_temp, remove_stale_temps

log = logging.getLogger(__name__)


class _Sink:
    """The handle a writer sees: hashes what passes and remembers an interrupt or a disk error
    inside it (the first one)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.interrupt: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            view = memoryview(data).cast("B")
            self.digest.update(view)
            return self._handle.write(view)
        except BaseException as exc:  # torch's C++ writer would turn it into a RuntimeError
            if isinstance(exc, (KeyboardInterrupt, OSError)) and self.interrupt is None:
                self.interrupt = exc
            raise

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # torch skips unwritten bytes with seek(n, SEEK_CUR); write them so the digest holds
        if whence != os.SEEK_CUR or offset < 0:
            raise io.UnsupportedOperation("a checksummed write only goes forward")
        self.write(bytes(offset))
        return self._handle.tell()

    def flush(self) -> None:
        self._handle.flush()


def _interrupt_behind(exc: BaseException, sink: _Sink) -> BaseException | None:
    """The KeyboardInterrupt or disk ``OSError`` that caused ``exc`` (raised in the sink or
    chained), if any."""
    if isinstance(exc, (KeyboardInterrupt, OSError)):
        return None
    if sink.interrupt is not None:
        return sink.interrupt
    seen, cause = set(), exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, OSError)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _read_digests_quietly(path: Path) -> list[str] | None:
    try:
        return read_digests(path)
    except CorruptFileError:
        return None


def _write_digests(path: Path, digests: Iterable[str]) -> None:
    unique = list(dict.fromkeys(digests))[:4]
    text = "".join(f"{digest}  {path.name}\n" for digest in unique)
    _atomic_write(checksum_path(path), lambda handle: handle.write(text.encode("ascii")))


def _atomic_write(
    path: str | os.PathLike, write: Callable[[Any], object], *, checksum: bool = False
) -> Path:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp, fd = create_temp(path)
    ACTIVE_TEMPS.add(tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            sink = _Sink(handle)
            try:
                write(sink)
            except BaseException as exc:
                interrupt = _interrupt_behind(exc, sink)
                if interrupt is not None:
                    raise interrupt from None
                raise
            handle.flush()
            os.fsync(handle.fileno())
        _commit(tmp, path, sink.digest.hexdigest(), checksum)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:  # a write error names no file
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)  # the unfinished temporary file; the target is untouched
        raise
    finally:
        ACTIVE_TEMPS.discard(tmp)
    return path


def _commit(tmp: Path, path: Path, digest: str, checksum: bool) -> None:
    """Rename the finished ``tmp`` over ``path``; with ``checksum`` the sidecar lists ``digest``
    before the rename (beside the old digests) and only it after."""
    sidecar = checksum_path(path)
    if checksum:  # new digest first; the old ones stay valid until the rename is done
        old = (_read_digests_quietly(path) or []) if path.exists() else []
        _write_digests(path, [digest, *old])
    elif sidecar.exists():
        sidecar.unlink()  # it would describe the previous contents
    os.replace(tmp, path)
    if checksum:
        _write_digests(path, [digest])


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, checksum: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name of its own.

    For writers that open the file themselves (``numpy.lib.format.open_memmap``, a memory map
    filled in shards): the block writes the temporary file by any means; on a clean exit it is
    fsynced, hashed (read back in 1 MiB blocks) and renamed over ``path`` exactly as
    :func:`atomic_write_bytes` does, sidecar included. On an exception (``KeyboardInterrupt``
    too) the temporary file is removed and ``path`` and its sidecar are untouched; one left by
    a killed process is removed by the next write of ``path`` (:func:`remove_stale_temps`).

    Raises:
        FileNotFoundError: the block did not create the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp, fd = create_temp(path)
    os.close(fd)
    ACTIVE_TEMPS.add(tmp)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _commit(tmp, path, file_digest(tmp), checksum)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the unfinished temporary file; the target is untouched
        raise
    finally:
        ACTIVE_TEMPS.discard(tmp)


def write_npy_blocks(
    path: str | os.PathLike, blocks: Iterable[Any], count: int, dtype: Any, *,
    checksum: bool = False,
) -> Path:
    """Write ``count`` items, arriving in order as blocks of rows, to one ``.npy`` file.

    The file is created with ``numpy.lib.format.open_memmap`` at its full shape ``(count,
    *item_shape)`` (the item shape is the first block's ``shape[1:]``); each block is written
    into a memory map of its own rows that is closed before the next block is taken, so the
    writer holds one block whatever ``count`` is. Written through :func:`atomic_output`: an
    error or interrupt leaves nothing under ``path``.

    Args:
        path: the ``.npy`` file.
        blocks: arrays (anything ``numpy.asarray`` takes) of shape ``(B, *item_shape)``, any
            B >= 0, cast to ``dtype``.
        count: total items, >= 1; the blocks must add up to exactly this.
        dtype: the file's numpy dtype.
        checksum: write a ``NAME.sha256`` sidecar.
    Returns:
        ``path``.
    Raises:
        ValueError: a block of another item shape, items beyond ``count``, or fewer in all.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive number of items; got {count!r}")
    dtype = np.dtype(dtype)
    with atomic_output(path, checksum=checksum) as tmp:
        written, item, offset, item_bytes = 0, None, 0, 0
        for block in blocks:
            array = np.asarray(block)
            if array.ndim < 1 or (item is not None and array.shape[1:] != item):
                raise ValueError(f"a block of shape {array.shape} does not hold items of shape "
                                 f"{item if item is not None else '(...)'}")
            if item is None:
                item = tuple(array.shape[1:])
                header = open_memmap(tmp, mode="w+", dtype=dtype, shape=(count, *item))
                offset = int(header.offset)  # bytes of the .npy header
                item_bytes = dtype.itemsize * int(np.prod(item, dtype=np.int64))
                del header  # the file now has its full (sparse) size
            if written + len(array) > count:
                raise ValueError(f"more than the {count} items announced")
            if len(array):
                shard = np.memmap(tmp, dtype=dtype, mode="r+", shape=array.shape,
                                  offset=offset + written * item_bytes)
                shard[:] = array
                del shard  # unmapped: its pages leave this process
            written += len(array)
        if written != count:
            raise ValueError(f"{written} items written, {count} announced")
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, checksum: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (with a ``.sha256`` sidecar if asked)."""
    return _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")),
                         checksum=checksum)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, checksum: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (with a ``.sha256`` sidecar if asked)."""
    return _atomic_write(path, lambda handle: handle.write(data), checksum=checksum)


def atomic_write_json(
    path: str | os.PathLike, obj: Any, *, indent: int = 2, checksum: bool = False
) -> Path:
    """Serialise ``obj`` as JSON (paths and tensors-as-scalars allowed) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n"
    return atomic_write_text(path, text, checksum=checksum)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def atomic_save(obj: Any, path: str | os.PathLike, *, checksum: bool = False) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (with a ``.sha256`` sidecar if asked)."""
    return _atomic_write(path, lambda handle: torch.save(obj, handle), checksum=checksum)


def write_optional_cache(path: str | os.PathLike, write: Callable[[], object]) -> bool:
    """Run ``write()``, which writes the optional cache file ``path``; a disk that refuses it
    (full, read-only, not permitted: :func:`robustret.core.checks.host_refusal`) is one
    warning and the work goes on without the cache (a shared read-only cache is still read).

    Returns:
        True when the file was written, False when the disk refused it.
    Raises:
        OSError: any other error of the write (a bug, not the disk).
    """
    try:
        write()
    except OSError as exc:
        if host_refusal(exc) is None:
            raise
        log.warning("cannot write the cache file %s (%s); going on without it",
                    path, exc.strerror or exc)
        return False
    return True
