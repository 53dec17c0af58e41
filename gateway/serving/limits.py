"""Request size bound: bodies over ``max_bytes`` are refused with 413 before they are read
into memory (by Content-Length, or while streaming when it is absent)."""

from __future__ import annotations

import orjson
from fastapi import HTTPException

MAX_BODY_BYTES = 2 * 1024 * 1024  # 10,000 events of ~100 bytes fit with room to spare


class BodySizeLimit:
    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # FastAPI turns this into the 413 response
                    raise HTTPException(413, self.message)
            return message

        return await self.app(scope, bounded_receive, send)

    @property
    def message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"

    async def _refuse(self, send) -> None:
        body = orjson.dumps({"detail": self.message})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
