"""Run an app on a free local port until told to stop: in a thread of this process (uvicorn)
or as a child process; either way wait until it answers before handing out its URL."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until_ready(
    url: str, alive: Callable[[], bool], *, path: str = "/health", timeout: float = 120.0, name: str = "server"
) -> None:
    """Poll ``url + path`` until it answers 200; ServerError when ``alive()`` turns false or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise ServerError(f"the {name} exited on start")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"the {name} did not start in time")
        time.sleep(0.2)


@contextmanager
def serve_in_thread(app, *, timeout: float = 120.0, name: str = "gateway") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its URL; stop it gracefully (its lifespan's
    shutdown runs) on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://{HOST}:{port}"
    try:
        wait_until_ready(url, thread.is_alive, timeout=timeout, name=name)
        yield url
    finally:
        server.should_exit = True
        thread.join(60)


class ServerProcess:
    """``command`` plus ``--port N`` in a child process, ready (``ready_path`` answers 200)
    once constructed; ``stop()`` sends SIGTERM (graceful) and waits, then kills."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        ready_path: str = "/health",
        timeout: float = 120.0,
        name: str = "server",
        stdout=subprocess.DEVNULL,
        stderr=None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)], env=env, stdout=stdout, stderr=stderr, text=True
        )
        try:
            wait_until_ready(
                self.url, lambda: self.proc.poll() is None, path=ready_path, timeout=timeout, name=name
            )
        except ServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
