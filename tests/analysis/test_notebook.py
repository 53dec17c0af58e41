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


def test_notebook_database_follows_env_then_config_and_the_parameter_only_when_set(tmp_path, monkeypatch):
    from gateway.analysis.notebook import notebook_settings

    config = tmp_path / "config.yaml"
    config.write_text("database:\n  url: sqlite:///from-config.db\n")
    monkeypatch.delenv("RECSYS_DB_URL", raising=False)
    assert notebook_settings(None, config).database.url == "sqlite:///from-config.db"
    monkeypatch.setenv("RECSYS_DB_URL", "postgresql://u@h/from-env")
    assert notebook_settings(None, config).database.url == "postgresql://u@h/from-env"
    assert notebook_settings("sqlite:///param.db", config).database.url == "sqlite:///param.db"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(parameters.source, namespace)  # noqa: S102 - the committed parameter cell
    assert namespace["db_url"] is None and namespace["config_path"] is None
    assert "notebook_settings(db_url, config_path)" in "\n".join(c.source for c in nb.cells)
