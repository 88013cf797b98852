"""Execute notebooks in place in the quick profile and store them with their outputs.

    python notebooks/execute.py 02_restoration_ablation 04_robust_training

Each runs top to bottom in a fresh kernel from the repository root (tiny mode off, outputs under
``experiments/results/notebooks``, models cached in ``experiments/results/notebooks/models``);
the stored notebook records in ``metadata.robustret`` the command, the commit, the date and the
wall time, and is only replaced when every cell ran.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 3600


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def execute(name: str) -> float:
    """Run ``notebooks/NAME.ipynb`` and write it back with outputs; returns the wall seconds."""
    path = REPO_ROOT / "notebooks" / f"{name}.ipynb"
    if not path.is_file():
        raise SystemExit(f"execute.py: no notebook {path}")
    os.environ.pop("ROBUSTRET_NOTEBOOK_TINY", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    commit, started = _commit(), time.monotonic()
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    seconds = time.monotonic() - started
    notebook.metadata["robustret"] = {
        "tiny": False, "command": f"python notebooks/execute.py {name}", "commit": commit,
        "date": datetime.date.today().isoformat(), "wall_s": round(seconds)}
    temporary = path.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, temporary)
    os.replace(temporary, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="notebook names without .ipynb")
    for name in parser.parse_args(argv).names:
        print(f"{name}: {execute(name):.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
