"""What an interrupted run leaves behind, and how a run is interrupted.

A write goes to a temporary file beside its target, ``.{name}.{host}-{pid}.{token}.tmp``
(:func:`create_temp`). One left by a killed writer is removed the next time that file is written
(:func:`remove_stale_temps`): when its writer process on this host is gone, or when it has not
changed for :data:`STALE_TEMP_SECONDS`. :func:`sigterm_as_interrupt` makes ``kill`` end a run
the way Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 60.0
"""A temporary file unchanged for this long is an interrupted write, whoever wrote it."""

_HOST = re.sub(r"[^A-Za-z0-9_]", "", socket.gethostname())[:16]
_TEMP_TAIL = re.compile(r"(?P<host>[A-Za-z0-9_]*)-(?P<pid>\d+)\.[0-9a-f]+\.tmp")
ACTIVE_TEMPS: set[Path] = set()
"""Temporary files this process is writing now (never removed as stale)."""


def create_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file beside ``path``, mode 0o666 less the umask, open for writing.

    Created with mode 0o666 so that the kernel applies the process umask (a shared folder gets
    the usual 0644 / 0664, not mkstemp's 0600).

    Returns:
        The temporary path and its open file descriptor.
    """
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
    if temp in ACTIVE_TEMPS:
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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does.

    A CLI wraps its work in it so that ``kill`` ends the run like Ctrl-C: writes in progress
    are abandoned cleanly (see :mod:`robustret.core.atomic`) and the CLI reports the
    interruption. The previous handler is restored on exit; outside the main thread nothing
    changes.
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
