"""Execute experiments/analysis.ipynb with parameters (papermill-style), writing an executed copy."""

from __future__ import annotations

from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "experiments" / "analysis.ipynb"


def execute_notebook(output: Path, parameters: dict, notebook: Path = NOTEBOOK, timeout: int = 600) -> Path:
    """Override the defaults of the cell tagged ``parameters`` with ``parameters`` (as papermill's
    injected cell does: parameters not given keep their defaults) and run every cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source += "\n# Parameters (injected)\n" + "\n".join(
                f"{k} = {v!r}" for k, v in parameters.items()
            )
            break
    else:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'")
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}
    ).execute()
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, output)
    return output


def notebook_settings(db_url: str | None, config_path: str | Path | None):
    """The notebook's settings, with the same precedence as every command: ``db_url`` when set,
    else ``RECSYS_DB_URL``, else config.yaml's ``database.url`` (``RECSYS_CONFIG`` or
    ``config_path`` names the file)."""
    from gateway.config import load_settings, resolve_db_url

    settings = load_settings(config_path)
    settings.database.url = resolve_db_url(db_url, settings)
    return settings
