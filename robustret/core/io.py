"""Atomic, checksummed file writes and verified loading.

Every write goes to a temporary file beside the target, ``.{name}.{host}-{pid}.{token}.tmp``,
created with mode 0o666 so that the kernel applies the process umask (a shared folder gets the
usual 0644 / 0664, not mkstemp's 0600), and is then renamed over the target: an interrupted
run never leaves half a file. A temporary file left by a killed writer is removed the next
time that file is written (:func:`remove_stale_temps`): when its writer process on this host
is gone, or when it has not changed for :data:`STALE_TEMP_SECONDS`.

With ``checksum=True`` the SHA-256 of the bytes written goes into a sidecar ``NAME.sha256``
(``sha256sum`` format). The sidecar lists the new digest before the rename and only it after,
so at every instant the file on disk matches a line of its sidecar, whatever the moment a run
is killed. :func:`read_verified`, :func:`verified_load` and :func:`load_checkpoint` check it
and raise :class:`CorruptFileError` naming the file on a mismatch.

A ``KeyboardInterrupt`` raised inside a writer (also one that ``torch.save`` turns into a
``RuntimeError``) leaves as a ``KeyboardInterrupt``, with the temporary file removed and the
previous file and sidecar untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

log = logging.getLogger(__name__)

CHECKSUM_SUFFIX = ".sha256"
"""A checksummed file ``NAME`` has its digest in ``NAME.sha256``."""
STALE_TEMP_SECONDS = 60.0
"""A temporary file unchanged for this long is an interrupted write, whoever wrote it."""

_HOST = re.sub(r"[^A-Za-z0-9_]", "", socket.gethostname())[:16]
_TEMP_TAIL = re.compile(r"(?P<host>[A-Za-z0-9_]*)-(?P<pid>\d+)\.[0-9a-f]+\.tmp")
_ACTIVE: set[Path] = set()
"""Temporary files this process is writing now (never removed as stale)."""


class CorruptFileError(ValueError):
    """A file whose bytes do not match its checksum, or that cannot be read as what it should be.

    Attributes:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path} is corrupt or incomplete: {reason}")


def checksum_path(path: str | os.PathLike) -> Path:
    """The sidecar ``NAME.sha256`` of ``path``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


class _Sink:
    """The handle a writer sees: hashes what passes and remembers an interrupt inside it."""

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
            if isinstance(exc, KeyboardInterrupt):
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
    """The KeyboardInterrupt that caused ``exc`` (raised in the sink or chained), if any."""
    if isinstance(exc, KeyboardInterrupt):
        return None
    if sink.interrupt is not None:
        return sink.interrupt
    seen, cause = set(), exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file beside ``path``, mode 0o666 less the umask, open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _is_stale(temp: Path, tail: str, now: float, min_age: float) -> bool:
    if temp in _ACTIVE:
        return False
    try:
        age = now - temp.stat().st_mtime
    except FileNotFoundError:
        return False
    if age >= min_age:
        return True
    match = _TEMP_TAIL.fullmatch(tail)
    if match is None or match["host"] != _HOST:
        return False  # another machine's writer (or an old name): only its age tells
    pid = int(match["pid"])
    return pid == os.getpid() or not _pid_alive(pid)  # our pid, but not our write: a re-used pid


def remove_stale_temps(
    folder: str | os.PathLike, name: str | None = None, *, min_age: float = STALE_TEMP_SECONDS
) -> list[Path]:
    """Remove the temporary files of interrupted writes in ``folder`` (of file ``name``, or all).

    A temporary file is stale when its writer on this host is no longer running, or when it has
    not changed for ``min_age`` seconds; a running writer's file is kept.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    prefix = f".{name}." if name is not None else "."
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = [p for p in folder.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for temp in candidates:
        # the tail after the target's name: "{host}-{pid}.{token}.tmp"
        tail = (temp.name[len(prefix):] if name is not None
                else ".".join(temp.name.rsplit(".", 3)[-3:]))
        if _is_stale(temp, tail, now, min_age):
            try:
                temp.unlink()
            except FileNotFoundError:
                continue
            removed.append(temp)
    if removed:
        log.info("removed %d temporary file(s) of interrupted writes in %s", len(removed), folder)
    return removed


def _read_digests(path: Path) -> list[str] | None:
    """The digests listed in the sidecar of ``path`` (newest first), or None without one."""
    sidecar = checksum_path(path)
    try:
        text = sidecar.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"its checksum file {sidecar.name} is unreadable ({exc})")
    digests = []
    for line in text.splitlines():
        digest, _, _ = line.partition(" ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CorruptFileError(path, f"its checksum file {sidecar.name} is malformed")
        digests.append(digest)
    if not digests:
        raise CorruptFileError(path, f"its checksum file {sidecar.name} is empty")
    return digests


def _write_digests(path: Path, digests: Iterable[str]) -> None:
    unique = list(dict.fromkeys(digests))[:4]
    text = "".join(f"{digest}  {path.name}\n" for digest in unique)
    _atomic_write(checksum_path(path), lambda handle: handle.write(text.encode("ascii")))


def _check_digest(path: Path, digest: str, required: bool) -> None:
    listed = _read_digests(path)
    if listed is None:
        if required:
            raise CorruptFileError(path, f"it has no checksum file {checksum_path(path).name}")
        return
    if digest not in listed:
        raise CorruptFileError(path, f"its SHA-256 does not match {checksum_path(path).name}")


def _atomic_write(
    path: str | os.PathLike, write: Callable[[Any], object], *, checksum: bool = False
) -> Path:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp, fd = _create_temp(path)
    _ACTIVE.add(tmp)
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
    except BaseException:
        tmp.unlink(missing_ok=True)  # the unfinished temporary file; the target is untouched
        raise
    finally:
        _ACTIVE.discard(tmp)
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
    tmp, fd = _create_temp(path)
    os.close(fd)
    _ACTIVE.add(tmp)
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
        _ACTIVE.discard(tmp)


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


def _read_digests_quietly(path: Path) -> list[str] | None:
    try:
        return _read_digests(path)
    except CorruptFileError:
        return None


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


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, *, required: bool = True) -> None:
    """Check ``path`` against its ``.sha256`` sidecar.

    Args:
        path: the file.
        required: a missing sidecar is an error (for caches this code wrote); False accepts a
            file without one (a user's own weights).
    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: the bytes do not match, or the sidecar is missing (``required``) or
            unreadable.
    """
    _check_digest(Path(path), file_digest(path), required)


def read_verified(path: str | os.PathLike, *, required: bool = True) -> bytes:
    """The bytes of ``path``, read once and checked against its sidecar (see :func:`verify_file`).

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: see :func:`verify_file`.
    """
    data = Path(path).read_bytes()
    _check_digest(Path(path), hashlib.sha256(data).hexdigest(), required)
    return data


def verified_load(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    weights_only: bool = False,
    required: bool = True,
) -> Any:
    """``torch.load`` a file after checking it against its sidecar (see :func:`verify_file`).

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: a checksum mismatch, or bytes torch cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    verify_file(path, required=required)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise CorruptFileError(path, f"torch cannot read it ({exc})") from exc


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, required: bool = False
) -> dict[str, Any]:
    """Load a checkpoint dict written by :func:`atomic_save`, verified when it has a sidecar.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors go.
        required: also refuse a file without a ``.sha256`` sidecar.
    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: (a ``ValueError``) a checksum mismatch, or the file is not a readable
            torch checkpoint dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = verified_load(path, map_location=map_location, required=required)
    except CorruptFileError as exc:
        raise CorruptFileError(path, f"{exc.reason}. Delete it or pass another file") from exc
    if not isinstance(obj, dict):
        raise CorruptFileError(path, f"it holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def move_aside(path: str | os.PathLike) -> Path | None:
    """Rename a corrupt ``path`` to ``NAME.corrupt`` (replacing an older one) and drop its sidecar.

    Returns:
        The new path, or None when there was no file.
    """
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    checksum_path(path).unlink(missing_ok=True)
    return aside


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does.

    A CLI wraps its work in it so that ``kill`` ends the run like Ctrl-C: writes in progress
    are abandoned cleanly (see the module docstring) and the CLI reports the interruption. The
    previous handler is restored on exit; outside the main thread nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
