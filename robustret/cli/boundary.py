"""The one boundary every command line tool shares: user errors, interrupts, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from robustret.core.checks import ConfigError, HostError, host_refusal
from robustret.core.io import sigterm_as_interrupt

T = TypeVar("T")

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


def one_line(text: str) -> str:
    """``text`` with every character that would break it into lines (newlines, and the
    separators :meth:`str.splitlines` also honours, such as ``\\x1e``) written as its escape:
    a user's file or key name cannot split the one line an error is."""
    return "".join(repr(char)[1:-1] if len(f"a{char}b".splitlines()) > 1 else char
                   for char in text)


def run_command(prog: str, work: Callable[[], T]) -> tuple[int, T | None]:
    """Run ``work()``; a user error or an interrupt becomes one line on stderr and an exit code.

    Args:
        prog: the command's name, the prefix of every line it prints.
        work: the command's body.
    Returns:
        ``(0, work's result)``; ``(2, None)`` after a :class:`ConfigError`, a missing file,
        a :class:`HostError` (a killed worker) or an ``OSError`` of a full disk or a refused
        write (:func:`host_refusal`), each one line saying what to do; or ``(130, None)``
        after Ctrl-C or SIGTERM (SIGTERM is turned into ``KeyboardInterrupt`` while ``work``
        runs; re-running resumes). Any other exception is a bug and propagates with its
        traceback.
    """
    try:
        with sigterm_as_interrupt():
            return EXIT_OK, work()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED, None
    except (ConfigError, FileNotFoundError, HostError) as exc:
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT, None
    except OSError as exc:
        line = host_refusal(exc)
        if line is None:
            raise
        print(f"{prog}: error: {one_line(line)}", file=sys.stderr)
        return EXIT_BAD_INPUT, None


def int_at_least(low: int) -> Callable[[str], int]:
    """An ``argparse`` type: an integer >= ``low`` (else argparse's one-line usage error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse
