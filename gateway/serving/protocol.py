"""uvicorn's httptools protocol with each response's writes sent as one, and admission control
at the front door.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and the body as a second write: two ``send`` system calls, two TCP
segments and two wake-ups of the client per response, all on the event loop, holding the GIL.
Here the writes a connection makes within one step of the event loop are joined and sent once,
at the end of that step.

Admission control (``serving.admission``) runs here too, as soon as a request's headers are
parsed: a ``GET /post/recommendations/`` takes a slot or waits for one (the same ``Admission``
the ASGI middleware uses), and one that gets none is answered by the app's shed answer written
straight to the socket, without an asyncio task, the ASGI middleware stack or uvicorn's
per-header checks. Under overload the shed answers are most of the event loop's work (README
"Overload"). An admitted request goes to the app's express lane (``FrontDoor.express``: the
answer computed without the ASGI stack, for the requests in its plain form; the slot is freed
once the answer is written) or on to the app as usual, its slot marked as taken
(``ADMITTED``); the app's middleware frees it when the answer is out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from gateway.serving.admission import ADMITTED, ARRIVED, BOUNDED_PATH, Admission

log = logging.getLogger("gateway.serving")
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, raw headers, body
_BODY_HEADERS = (b"content-length", b"transfer-encoding", b"expect")  # a request with a body
SERVER_ERROR: Answer = (
    500,
    [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"), (b"connection", b"close")],
    b"Internal Server Error",
)


@dataclass(frozen=True)
class FrontDoor:
    """What the protocol needs from the app (``app.state.front_door``, set once the app is ready
    to bound requests): its admission control and its shed answer for a request's ASGI scope."""

    admission: Admission
    answer: Callable[[dict], Answer]
    # The express lane: the answer to an admitted request computed without the ASGI app, or
    # None when the request is not one it answers (then the app does).
    express: Callable[[dict], Awaitable[Answer | None]] | None = None


def front_door(app) -> FrontDoor | None:
    """The front door of the app under uvicorn's wrappers (``ProxyHeadersMiddleware``), if any."""
    while app is not None:
        state = getattr(app, "state", None)
        if state is not None:
            return getattr(state, "front_door", None)
        app = getattr(app, "app", None)
    return None


class CoalescedWrites:
    """A transport whose ``write`` calls within one event-loop step go out as one ``write``;
    everything else is the wrapped transport's (``close`` sends what is pending first)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.run(..., http=CoalescingHttpToolsProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app) -> None:
        """Admit a recommendation request (or let it wait for a slot, or shed it) before its
        ASGI task exists; everything else goes straight on to the app."""
        scope = cycle.scope
        door = (
            front_door(self.app)
            if scope["path"] == BOUNDED_PATH and scope["method"] == "GET" and app is self.app
            else None
        )
        if door is None:
            return super()._start_asgi_task(cycle, app)
        scope[ARRIVED] = time.perf_counter()  # type: ignore[literal-required]
        if door.admission.take():
            return self._admitted(cycle, app, door)
        waiter = door.admission.enqueue(self.loop)
        if waiter is None:
            return self._shed(cycle, door)
        waiter.add_done_callback(functools.partial(self._waited, cycle, app, door))

    def _waited(self, cycle: RequestResponseCycle, app, door: FrontDoor, waiter: asyncio.Future) -> None:
        admitted = not waiter.cancelled() and waiter.result()
        if cycle.disconnected:  # the client is gone: nothing to answer
            if admitted:
                door.admission.release()
        elif admitted:
            self._admitted(cycle, app, door)
        else:
            self._shed(cycle, door)

    def _admitted(self, cycle: RequestResponseCycle, app, door: FrontDoor) -> None:
        """Start an admitted request: on the express lane when the app has one and the request
        has no body, else through the app with its slot marked as taken."""
        cycle.scope[ADMITTED] = True  # type: ignore[literal-required]
        if door.express is None or any(name in _BODY_HEADERS for name, _ in cycle.scope["headers"]):
            return super()._start_asgi_task(cycle, app)
        task = self.loop.create_task(self._express(cycle, app, door))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _express(self, cycle: RequestResponseCycle, app, door: FrontDoor) -> None:
        assert door.express is not None
        release = True
        try:
            try:
                answer = await door.express(cycle.scope)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - the express lane's own bug: a 500, as the app's would be
                log.exception("express answer failed on %s", cycle.scope["path"])
                answer = SERVER_ERROR
                cycle.keep_alive = False
            if answer is None:  # not for the express lane: the app answers (its middleware frees the slot)
                release = False
                await cycle.run_asgi(app)
            elif not cycle.disconnected:
                self._write_answer(cycle, answer)
        finally:  # also when the task is cancelled (the server stopping)
            if release:
                door.admission.release()

    def _shed(self, cycle: RequestResponseCycle, door: FrontDoor) -> None:
        """Write the shed answer as uvicorn would (its default headers, keep-alive), then let
        the connection's next request in."""
        try:
            answer = door.answer(cycle.scope)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a bug in the answer: a 500, as the app's would be
            log.exception("shed answer failed on %s", cycle.scope["path"])
            answer = SERVER_ERROR
            cycle.keep_alive = False
        self._write_answer(cycle, answer)

    def _write_answer(self, cycle: RequestResponseCycle, answer: Answer) -> None:
        """Write an answer as uvicorn would (its default headers, keep-alive, access log), then
        let the connection's next request in."""
        status, headers, body = answer
        if cycle.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(cycle.scope),
                cycle.scope["method"],
                get_path_with_query_string(cycle.scope),
                cycle.scope["http_version"],
                status,
            )
        content = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive and (b"connection", b"close") not in headers:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        cycle.response_started = cycle.response_complete = True
        self.transport.write(b"".join(content))
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
