"""notebooks/spot_on_parquet.ipynb is stored without outputs and runs top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "spot_on_parquet.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )


@pytest.mark.slow
def test_notebook_executes(tmp_path: Path, run_notebook) -> None:
    nb = run_notebook(NOTEBOOK, tmp_path)
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "SPOT " in text and "FCI " in text and "truth " in text
    assert (tmp_path / "scan_facts_graph.parquet").is_file()
