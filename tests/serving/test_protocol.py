"""The coalescing HTTP protocol: a response's writes leave as one, and the real server answers
correctly with it (every live-server test also runs on it: ``recsys serve`` uses it)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import numpy as np

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


def test_the_express_lane_answers_as_the_app_does(tiny_store, tiny_store_dir, tiny_models, tmp_path):
    """``recsys serve`` answers a plain recommendation request on its express lane and one
    with an extra (ignored) parameter through FastAPI: the same status, body and headers, for
    answers, cold starts, moods and every error the route gives."""
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    day0 = int(tiny_store.manifest["day0"])
    when = str(np.datetime64(day0 + 20 * 86400 + 3600 * 13, "s"))
    users = [int(u) for u in tiny_store.user_ids[:6]]
    server = LiveServer(config, {})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            topic = client.get("/post/recommendations/", params={"id": users[0], "time": when}).json()[
                "recommendations"
            ][0]["topic"]
            cases = [{"id": u, "time": when} for u in users]
            cases += [
                {"id": users[0], "time": when, "limit": 100},
                {"id": users[1], "time": when.replace("T", " "), "topic": topic},
                {"id": users[2], "time": when, "mood": "football ⚽"},
                {"id": users[2], "time": when, "mood": "!!!"},  # 422: no words
                {"id": users[3], "time": when, "topic": "no-such-topic"},  # 422
                {"id": 2**31 - 2, "time": when},  # 404: unknown user
                {"id": 2**31 - 2, "time": when, "topic": topic},  # cold start
                {"id": users[4], "time": "2021-02-30T10:00:00"},  # 422 from FastAPI on both
            ]
            for i, params in enumerate(cases):
                headers = {"X-Request-ID": f"parity-{i}"}
                express = client.get("/post/recommendations/", params=params, headers=headers)
                app = client.get("/post/recommendations/", params={**params, "via": "app"}, headers=headers)
                assert express.status_code == app.status_code, (params, express.text, app.text)
                assert express.json() == app.json(), params
                drop = {"date", "content-length"}
                assert {k: v for k, v in express.headers.items() if k not in drop} == {
                    k: v for k, v in app.headers.items() if k not in drop
                }, params
            assert {client.get("/post/recommendations/", params=c).status_code for c in cases[:6]} == {200}
    finally:
        server.stop()


def test_the_express_lane_takes_plain_requests_and_frees_the_slot():
    from gateway.config import AdmissionSettings
    from gateway.serving.admission import ADMITTED, Admission
    from gateway.serving.protocol import FrontDoor

    expressed: list[dict] = []

    async def express(scope):
        expressed.append(scope)
        if b"fail" in scope["query_string"]:
            raise RuntimeError("a bug in the express lane")
        if b"app" in scope["query_string"]:
            return None
        if b"hang" in scope["query_string"]:
            await asyncio.Event().wait()
        return 200, [(b"content-length", b"7")], b"express"

    async def scenario() -> None:
        admission = Admission(AdmissionSettings(max_in_flight=1, shed_delay_ms=30))
        app = FakeApp(FrontDoor(admission, lambda scope: (503, [], b""), express))
        protocol, transport = _connection(app)
        protocol.data_received(GET)
        await asyncio.sleep(0.01)
        assert transport.writes[-1].endswith(b"\r\n\r\nexpress") and not app.scopes
        assert admission.in_flight == 0 and not transport.closed  # the slot is free, kept alive
        protocol.data_received(GET.replace(b"?id=1", b"?via=app&id=1"))  # not for the lane: the app
        await asyncio.sleep(0.01)
        assert len(app.scopes) == 1 and app.scopes[0][ADMITTED] and transport.writes[-1].endswith(b"ok")
        admission.release()  # the fake app does not free its slot (the real middleware does)
        body = GET.replace(b"Host: x\r\n", b"Host: x\r\nContent-Length: 2\r\n") + b"{}"
        protocol.data_received(body)  # a request with a body: the app
        await asyncio.sleep(0.01)
        assert len(app.scopes) == 2 and len(expressed) == 2
        admission.release()
        protocol.data_received(GET.replace(b"?id=1", b"?fail=1&id=1"))  # the lane's bug: a 500, closed
        await asyncio.sleep(0.01)
        assert transport.writes[-1].startswith(b"HTTP/1.1 500 ") and transport.closed
        assert admission.in_flight == 0
        hanging, _ = _connection(app)
        hanging.data_received(GET.replace(b"?id=1", b"?hang=1&id=1"))
        await asyncio.sleep(0.01)
        assert admission.in_flight == 1
        for task in list(hanging.tasks):  # the server stopping cancels it: the slot is freed
            task.cancel()
        await asyncio.sleep(0.01)
        assert admission.in_flight == 0

    asyncio.run(scenario())
