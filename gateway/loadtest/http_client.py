"""A minimal HTTP/1.1 keep-alive client for load generation: the request's bytes are written
once, the answer is read up to its ``Content-Length``. The load generator shares this machine's
cores with the gateway it measures, so its own CPU per request shows in the latencies; this
client spends a small fraction of a general-purpose client's (``httpx``) on each request.

Only what ``recsys bench`` sends and receives: GET, no redirects, no chunked bodies, no TLS.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


class HttpError(OSError):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class KeepAliveClient:
    """One connection to ``url``'s host, reopened if the server closes it."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise HttpError(f"only http://host[:port] URLs are supported, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def request_bytes(self, path: str, params: dict, headers: dict[str, str] | None = None) -> bytes:
        """The GET request for ``path?params``, ready to send (build these before timing)."""
        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: */*"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, request: bytes) -> Answer:
        """Send one request and read its answer; one reconnect if the kept-alive socket is gone."""
        for attempt in (0, 1):
            fresh = self._sock is None
            try:
                if self._sock is None:
                    self._connect()
                assert self._sock is not None
                self._sock.sendall(request)
                return self._read()
            except TimeoutError as exc:  # not retried: the request may be running
                self.close()
                raise HttpError(f"timed out after {self.timeout} s") from exc
            except (OSError, HttpError) as exc:
                self.close()
                if fresh or attempt:
                    raise HttpError(str(exc) or type(exc).__name__) from exc
        raise AssertionError("unreachable")

    def get(self, path: str, params: dict, headers: dict[str, str] | None = None) -> Answer:
        return self.send(self.request_bytes(path, params, headers))

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, b""

    def _read(self) -> Answer:
        assert self._sock is not None
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"malformed status line {status_line!r}") from None
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise HttpError("answer without Content-Length (chunked bodies are not supported)")
        size = int(headers["content-length"])
        while len(rest) < size:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise HttpError("connection closed mid-body")
            rest += chunk
        body, self._buffer = rest[:size], rest[size:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, headers, body)

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed")
        self._buffer += chunk

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
