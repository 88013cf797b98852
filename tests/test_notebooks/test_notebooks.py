"""Each ablation notebook runs top to bottom in tiny mode and ends in a figure."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"
CELL_TIMEOUT_S = 120

NAMES = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
assert NAMES, f"no notebooks in {NOTEBOOKS}"


def _outputs_png(cell) -> bool:
    return any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _stored(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _code_cells(notebook) -> list:
    return [c for c in notebook.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_tiny(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.is_file(), f"{path} is missing"
    monkeypatch.setenv("ROBUSTRET_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("ROBUSTRET_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO_ROOT)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    code_cells = _code_cells(notebook)
    assert code_cells, f"{name} has no code cells"
    assert _outputs_png(code_cells[-1]), f"{name}: the last code cell produced no figure"
    assert any((tmp_path / "out").rglob("*.png")), (
        f"{name} saved no figure under ROBUSTRET_NOTEBOOK_OUT"
    )


EXECUTED = ("02_restoration_ablation", "04_robust_training")
"""Notebooks committed with the outputs of a quick-profile run, so their plots show unrun."""


@pytest.mark.parametrize("name", NAMES)
def test_notebook_starts_with_its_config(name: str) -> None:
    assert "ROBUSTRET_NOTEBOOK_TINY" in _code_cells(_stored(name))[0].source, (
        f"{name}: the first code cell must be the config"
    )


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(EXECUTED)))
def test_notebook_stored_without_outputs(name: str) -> None:
    for cell in _code_cells(_stored(name)):
        assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not stripped"


@pytest.mark.parametrize("name", EXECUTED)
def test_notebook_stored_executed_top_to_bottom(name: str) -> None:
    """One clean run in order (``notebooks/execute.py``): counts 1..n, no error output, the
    figure in the last cell, and a record of the quick-profile run that made them."""
    notebook = _stored(name)
    record = notebook.metadata.get("robustret", {})
    assert record.get("tiny") is False and {"command", "commit", "date"} <= set(record), (
        f"{name}: not stored by notebooks/execute.py (python notebooks/execute.py {name})")
    cells = _code_cells(notebook)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), (
        f"{name}: not executed top to bottom in one kernel (python notebooks/execute.py {name})")
    errors = [o for c in cells for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{name}: stored with an error output: {errors[0].get('ename')}"
    assert _outputs_png(cells[-1]), f"{name}: the last code cell holds no figure"
