"""restoration is a leaf library: importing it loads only robustret's foundation modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

FOUNDATION = {
    "robustret", "robustret.checks", "robustret.registry", "robustret.io", "robustret.rng",
    "robustret.device", "robustret.quality", "robustret.paths", "robustret.keys",
    "robustret.batching",
}
"""The robustret modules restoration may depend on (the bottom layer)."""

LIBRARY = ["restoration", "restoration.base", "restoration.dae", "restoration.srcnn",
           "restoration.classical", "restoration.registry", "restoration.checkpoints",
           "restoration.train", "restoration.evaluate"]
"""The package and each of its modules; the two command shims included."""

_PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:  # after each import: what of robustret is loaded so far
    importlib.import_module(name)
    loaded[name] = sorted(m for m in sys.modules if m == "robustret" or m.startswith("robustret."))
print(json.dumps(loaded))
"""


def test_importing_restoration_loads_only_the_foundation() -> None:
    """One fresh interpreter imports the modules in turn (sys.modules only grows, so the first
    module that pulls in an upper layer is the one named)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *LIBRARY], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert list(loaded) == LIBRARY
    for module, names in loaded.items():
        assert set(names) - FOUNDATION == set(), f"import {module} pulled in upper layers"
