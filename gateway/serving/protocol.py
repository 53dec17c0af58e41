"""uvicorn's httptools protocol with each response's writes sent as one.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and the body as a second write: two ``send`` system calls, two TCP
segments and two wake-ups of the client per response, all on the event loop, holding the GIL.
Here the writes a connection makes within one step of the event loop are joined and sent once,
at the end of that step. Under overload that is the event loop's largest single cost per shed
answer (README "Overload").
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
