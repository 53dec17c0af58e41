"""Execute experiments/analysis.ipynb with parameters (papermill-style), writing an executed copy."""

from __future__ import annotations

from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "experiments" / "analysis.ipynb"


def execute_notebook(output: Path, parameters: dict, notebook: Path = NOTEBOOK, timeout: int = 600) -> Path:
    """Replace the cell tagged ``parameters`` with ``parameters`` and run every cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "# Parameters (injected)\n" + "\n".join(
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
