"""``recsys serve``: the HTTP gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import err, friendly, settings_from


@friendly
def serve(
    config: Annotated[
        Path, typer.Option("--config", help="config.yaml with the experiment and model paths.")
    ] = Path("config.yaml"),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (each loads the store and models).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the HTTP gateway (FastAPI + uvicorn). SIGHUP or POST /admin/reload swaps models."""
    from gateway.serving.main import run
    from gateway.serving.preflight import preflight

    settings = settings_from(config)
    for warning in preflight(settings, workers):  # fails early, with a message, if it cannot start
        err.print(f"warning: {warning}")
    err.print(f"serving {settings.experiment.name} on http://{host}:{port} ({workers} worker(s))")
    run(config, host=host, port=port, workers=workers, log_level=log_level)
