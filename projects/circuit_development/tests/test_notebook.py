"""The notebook runs top to bottom on the committed results and draws every figure."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from projects.circuit_development.make_notebook import NOTEBOOK, build

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_committed_notebook_is_the_generated_one() -> None:
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in build().cells]


@pytest.mark.skipif(
    not (RESULTS / "circuits.csv").is_file(), reason="run the pipeline to produce results"
)
def test_notebook_executes() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parents[3])}},
    ).execute()
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 4
