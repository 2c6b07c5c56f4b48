"""Every notebook runs end to end at the reduced size (``TOY_SUPERPOSITION_FAST=1``).

All notebooks share one kernel, reset between notebooks (``%reset -f``), so torch and SAE-Lens
are imported once: starting a kernel per notebook would cost more than the notebooks themselves.
"""

import copy
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
REPO_ROOT = Path(__file__).parents[3]


def test_there_is_a_notebook_for_each_study() -> None:
    assert len(NOTEBOOKS) == 15


def test_notebooks_run_in_fast_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_SUPERPOSITION_FAST", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    km = AsyncKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(cwd=str(REPO_ROOT))
    try:
        for path in NOTEBOOKS:
            nb = copy.deepcopy(nbformat.read(path, as_version=4))
            nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
            client = NotebookClient(nb, km=km, timeout=300, allow_errors=False)
            client.execute()
            outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
            assert not [o for o in outputs if o.get("output_type") == "error"], path.name
            assert any("fast mode" in o.get("text", "") for o in outputs), (
                f"{path.name} did not run fast"
            )
    finally:
        run_sync(km.shutdown_kernel)(now=True)
