"""Running an app on a free port: ready before its URL is handed out, stopped afterwards."""

from __future__ import annotations

import sys

import httpx
import pytest
from fastapi import FastAPI

from gateway.serving.server import ServerError, ServerProcess, serve_in_thread


def test_an_app_in_a_thread_answers_until_the_block_ends():
    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok"})
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=1)


def test_a_child_process_that_exits_on_start_is_an_error():
    with pytest.raises(ServerError, match="exited on start"):
        ServerProcess([sys.executable, "-c", "import sys; sys.exit(3)"], name="broken server")
