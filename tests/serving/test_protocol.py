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


class FakeApp:
    """An ASGI app with a front door: records the scopes it is called with, answers 200."""

    def __init__(self, door) -> None:
        self.state = type("State", (), {"front_door": door})()
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _connection(app):
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from gateway.serving.protocol import CoalescingHttpToolsProtocol

    config = Config(app=app, http=CoalescingHttpToolsProtocol, log_level="warning")
    config.load()  # wraps the app like the server does (ProxyHeadersMiddleware)
    state = ServerState()
    protocol = CoalescingHttpToolsProtocol(config, state, {}, asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


GET = b"GET /post/recommendations/?id=1&time=2021-12-01T10:00:00 HTTP/1.1\r\nHost: x\r\n\r\n"


def test_the_protocol_sheds_before_the_app_and_admits_with_the_slot_taken():
    from gateway.config import AdmissionSettings
    from gateway.serving.admission import ADMITTED, Admission
    from gateway.serving.protocol import FrontDoor

    answered: list[dict] = []

    def answer(scope):
        answered.append(scope)
        return 503, [(b"retry-after", b"1"), (b"content-length", b"4")], b"shed"

    async def scenario() -> None:
        admission = Admission(AdmissionSettings(max_in_flight=1, shed_delay_ms=30))
        app = FakeApp(FrontDoor(admission, answer))
        protocol, transport = _connection(app)
        protocol.data_received(GET)  # a free slot: admitted, on to the app with the slot taken
        await asyncio.sleep(0.01)
        assert len(app.scopes) == 1 and app.scopes[0][ADMITTED] and admission.in_flight == 1
        assert transport.writes[-1].endswith(b"ok")
        protocol.data_received(GET)  # the slot is still taken (the fake app does not free it): wait...
        await asyncio.sleep(0.005)
        assert admission.waiting == 1 and len(transport.writes) == 1
        await asyncio.sleep(0.06)  # ...then shed at the protocol: the app never sees it
        assert len(app.scopes) == 1 and len(answered) == 1
        shed = transport.writes[-1]
        assert (
            shed.startswith(b"HTTP/1.1 503 ")
            and b"retry-after: 1\r\n" in shed
            and shed.endswith(b"\r\n\r\nshed")
        )
        assert not transport.closed  # kept alive: the next request of the connection is read
        second, transport2 = _connection(app)
        second.data_received(GET)
        await asyncio.sleep(0.005)
        admission.release()  # a slot frees while it waits: handed over, the app gets it
        await asyncio.sleep(0.01)
        assert len(app.scopes) == 2 and app.scopes[1][ADMITTED] and transport2.writes[-1].endswith(b"ok")
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # not bounded: straight on
        await asyncio.sleep(0.01)
        assert len(app.scopes) == 3 and ADMITTED not in app.scopes[2]

    asyncio.run(scenario())
