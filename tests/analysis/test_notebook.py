"""The analysts' notebook runs end to end on the simulated tiny experiment (executed copy = artifact)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from gateway.analysis.notebook import NOTEBOOK, execute_notebook


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    source = "\n".join(cell.source for cell in nb.cells)
    assert "from gateway.analysis.report import" in source  # the module, not a copy of the statistics
    assert "def two_sided_ttest" not in source and "scipy" not in source


def test_notebook_executes_on_the_tiny_experiment(simulated, tmp_path):
    out = Path("reports") / "analysis.tiny.executed.ipynb"
    execute_notebook(
        out,
        {
            "db_url": simulated["db"],
            "config_path": str(simulated["config"]),
            "experiment": None,
            "window": "1h",
        },
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "in-experiment requests" in text and "absolute:" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the cumulative Hitrate@5 plot
    assert "No significant difference" in text or " is better" in text
