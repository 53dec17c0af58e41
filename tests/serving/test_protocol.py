"""The coalescing HTTP protocol: a response's writes leave as one, and the real server answers
correctly with it (every live-server test also runs on it: ``recsys serve`` uses it)."""

from __future__ import annotations

import asyncio
import socket

from gateway.serving.protocol import CoalescedWrites
from tests.conftest import LiveServer, write_config


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_within_one_step_leave_as_one_and_close_sends_what_is_pending():
    async def scenario() -> FakeTransport:
        transport = FakeTransport()
        writes = CoalescedWrites(transport, asyncio.get_running_loop())
        writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writes.write(b"body")
        assert transport.writes == []  # nothing sent within the step
        await asyncio.sleep(0)
        assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        writes.write(b"one")
        await asyncio.sleep(0)
        writes.write(b"last")
        writes.close()  # sent before the close, not lost
        assert transport.writes[1:] == [b"one", b"last"] and transport.closed
        assert writes.get_extra_info("peername") == ("127.0.0.1", 1) and writes.is_closing()
        return transport

    asyncio.run(scenario())


def test_the_server_answers_each_request_of_a_kept_alive_connection_whole(
    tiny_store_dir, tiny_models, tmp_path
):
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    server = LiveServer(config, {})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            stream = sock.makefile("rb")
            for path in ("/health", "/ready", "/health"):  # three requests, one connection
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                status = stream.readline()
                headers = {}
                while (line := stream.readline()) != b"\r\n":
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers["content-length"]))
                assert status.startswith(b"HTTP/1.1 200") and body.startswith(b"{")
    finally:
        server.stop()
