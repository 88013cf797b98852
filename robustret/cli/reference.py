"""The command-line reference: every command's ``--help`` as one markdown page.

``python -m robustret.cli.reference > docs/cli.md`` regenerates ``docs/cli.md``;
``tests/test_docs/test_cli_reference.py`` checks that the page equals what this module builds,
so a changed flag or help text fails there until the page is regenerated. The help is
formatted at a fixed width (:data:`COLUMNS`), whatever the terminal, so the page is the same
on every machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: the width argparse formats the help at (it reads the ``COLUMNS`` environment variable)
COLUMNS = 100

REGENERATE = "python -m robustret.cli.reference > docs/cli.md"


@dataclass(frozen=True)
class Command:
    """One command of the reference: what a user types and where its ``main`` lives."""

    shown: str  #: the command as typed, e.g. ``python -m robustret.experiment``
    module: str  #: the module whose ``main(argv)`` runs it
    args: tuple[str, ...] = ()  #: a sub-command, when the command has several
    note: str = ""  #: one line above the help text


COMMANDS: tuple[Command, ...] = (
    Command("python -m robustret.experiment", "robustret.cli.experiment",
            note="The main job: data, retriever, gallery index, degraded and restored queries, "
            "report (README.md)."),
    Command("python -m robustret.data", "robustret.cli.data",
            note="Data sets: inspect one, or export a shareable degraded query set "
            "(docs/datasets.md)."),
    Command("python -m robustret.data info", "robustret.cli.data", ("info",)),
    Command("python -m robustret.data export", "robustret.cli.data", ("export",)),
    Command("python -m robustret.data landmark-fixture", "robustret.cli.data",
            ("landmark-fixture",)),
    Command("python -m robustret.experiment.landmarks", "robustret.cli.landmarks",
            note="The corrupted landmark benchmark: Oxford5k, Paris6k, ROxford5k, RParis6k "
            "queries clean, degraded and restored, the protocol's table (docs/landmarks.md)."),
    Command("python -m restoration.train", "robustret.cli.restorer_train",
            note="Train one restoration network alone (docs/restoration.md)."),
    Command("python -m restoration.evaluate", "robustret.cli.restorer_eval",
            note="PSNR / SSIM of degraded and restored queries (docs/restoration.md)."),
    Command("python -m robustret.demo", "robustret.demo.__main__",
            note="A local web page over a finished run (docs/demo.md)."),
    Command("python -m degradations.demo", "degradations.demo",
            note="A PNG grid of every degradation at every severity (docs/degradations.md)."),
)


def help_text(command: Command) -> str:
    """The ``--help`` output of one command, as argparse prints it at :data:`COLUMNS` wide.

    The command's ``main`` is called with ``[*args, "--help"]``: argparse prints the help and
    exits before anything runs. ``sys.argv[0]`` is set to the shown command, so a parser
    without its own ``prog`` names the command as typed.
    """
    main: Callable[[Sequence[str]], object] = importlib.import_module(command.module).main
    out = io.StringIO()
    saved_argv = sys.argv
    sys.argv = [command.shown.removesuffix(" " + " ".join(command.args)) if command.args
                else command.shown]
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*command.args, "--help"])
    finally:
        sys.argv = saved_argv
    return out.getvalue().rstrip() + "\n"


def build_reference(commands: Sequence[Command] = COMMANDS) -> str:
    """The markdown page: a short header, then one section per command with its help."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(COLUMNS)
    try:
        parts = [
            "# Command-line reference\n",
            "Every command's `--help`, generated: do not edit this page by hand. After a change\n"
            f"to a flag or its help text, regenerate it with `{REGENERATE}`\n"
            "(`tests/test_docs/test_cli_reference.py` fails until then). The README shows the\n"
            "commands in use; docs/results.md the measured ones with their dates and hosts.\n",
        ]
        parts += [f"- `{c.shown}`" + (f": {c.note}" if c.note else "") for c in commands]
        parts.append("")
        for command in commands:
            parts.append(f"## `{command.shown}`\n")
            parts.append("```text\n" + help_text(command) + "```\n")
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference page, or write it to ``--out FILE``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m robustret.cli.reference",
        description="Print every command's --help as one markdown page (docs/cli.md).")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the page to FILE instead of printing it")
    args = parser.parse_args(argv)
    page = build_reference()
    if args.out is None:
        sys.stdout.write(page)
    else:
        args.out.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
