"""The README's code examples run as written (each in a fresh interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"<!-- {marker}-start -->")[1].split(f"<!-- {marker}-end -->")[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block between the {marker} markers"
    return match.group(1)


@pytest.mark.parametrize("marker", ["add-degradation", "add-restorer"])
def test_readme_example_runs(marker: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _block(marker)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_readme_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_readme_is_short() -> None:
    """The README is the front door: details live in docs/ (docs/cli.md for the flags)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines (at most 120): move detail to docs"
