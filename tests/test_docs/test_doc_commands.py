"""Every command line shown in README.md and docs/*.md (but the generated docs/cli.md and the
dated docs/history.md) is accepted by the program it names.

Each ``python -m MODULE ...`` or ``python benchmarks/NAME.py ...`` line is handed to that
program's ``main`` (a shell redirection such as ``> FILE`` left off); argparse is stopped right
after it parsed the arguments, so nothing runs, but an unknown flag, a bad choice or a renamed
module fails here. Experiment commands also go
through ``config_from_args``, which checks degradation and restorer names and severities;
the restoration commands' ``--degrade`` names are checked against ``degradations.available()``
(group names such as ``study`` expanded first, ``degradations.expand``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: left out: docs/cli.md is every parser's own --help (tests/test_docs/test_cli_reference.py
#: checks it), and docs/history.md is the dated diary, whose commands are records of the
#: commits they ran on (restorer names of their day), kept unchanged
NOT_CHECKED = {"cli.md", "history.md"}
DOCS = [ROOT / "README.md",
        *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in NOT_CHECKED)]
COMMAND = re.compile(r"(?:\.venv/bin/)?python3? (?:-m [\w.]+|benchmarks/\w+\.py)[^`|]*")
#: placeholders in the docs that must be a valid choice to parse
PLACEHOLDERS = {"CASE": "ours_l2"}


def _doc_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line.startswith("#"):  # a heading names a command, it does not show one
                continue
            for match in COMMAND.finditer(line):
                text, follow = match.group(0), number
                while text.rstrip().endswith("\\"):  # shell line continuation
                    follow += 1
                    text = text.rstrip()[:-1] + " " + lines[follow].strip()
                text = re.split(r"\s+#", text)[0].strip()
                text = re.split(r"\s+[12]?>", text)[0].strip()  # a redirection is no argument
                words = shlex.split(text)
                module_only = words[1] == "-m" and len(words) == 3
                if module_only or "[" in text:  # a bare reference or a usage synopsis
                    continue
                found.append((f"{doc.name}:{number + 1}", text))
    return found


COMMANDS = _doc_commands()


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def _main_of(words: list[str]):
    if words[1] == "-m":
        name = words[2]
        try:
            module = importlib.import_module(f"{name}.__main__")
        except ModuleNotFoundError:
            module = importlib.import_module(name)
        return name, module.main, words[3:]
    path = ROOT / words[1]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return words[1], module.main, words[2:]


def test_the_docs_show_the_main_commands() -> None:
    shown = " ".join(text for _, text in COMMANDS)
    for name in (
        "robustret.experiment",
        "robustret.data",
        "restoration.train",
        "restoration.evaluate",
        "degradations.demo",
        "bench_degradations.py",
        "bench_search.py",
        "bench_embed.py",
        "bench_ann.py",
    ):
        assert name in shown, f"no command of {name} found in the docs: the extraction is broken"


@pytest.mark.parametrize("where, text", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_doc_command_parses(where: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    words = [PLACEHOLDERS.get(word, word) for word in shlex.split(text)]
    name, main, argv = _main_of(words)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises((_Parsed, SystemExit)) as stopped:
        main(argv)
    if stopped.type is SystemExit:  # only --help may exit, and with status 0
        assert "--help" in argv and stopped.value.code == 0, f"{where}: {text}"
        return
    namespace = stopped.value.namespace
    if name == "robustret.experiment":
        from robustret.cli.experiment import config_from_args

        config_from_args(namespace)
    elif getattr(namespace, "degrade", None) is not None:  # restoration.train / evaluate
        import degradations

        names = [namespace.degrade] if isinstance(namespace.degrade, str) else namespace.degrade
        names = degradations.expand(names, keep_unknown=True)  # groups: their members
        unknown = set(names) - set(degradations.available())
        assert not unknown, f"{where}: unknown degradation(s) {sorted(unknown)}"
