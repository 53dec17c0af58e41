"""The bench's keep-alive client: answers read by length, several on one connection, a closed
connection reopened once, errors as HttpError."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.loadtest.http_client import HttpError, KeepAliveClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"0\r\n\r\n")
            return
        body = f"{self.path}|{self.headers.get('X-Test', '')}|{self.client_address[1]}".encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Exp-Group", "control")
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_answers_on_one_kept_alive_connection(server):
    with KeepAliveClient(server) as client:
        first = client.get("/a", {"id": 3, "time": "2021-12-01T10:00:00"}, {"X-Test": "yes"})
        second = client.send(client.request_bytes("/b", {}))
    assert first.status == 201 and first.headers["x-exp-group"] == "control"
    path, header, conn = first.body.decode().split("|")
    assert path == "/a?id=3&time=2021-12-01T10%3A00%3A00" and header == "yes"
    assert second.body.decode().split("|")[2] == conn  # the same connection


def test_a_closed_connection_is_reopened(server):
    with KeepAliveClient(server) as client:
        closing = client.get("/close", {})
        after = client.get("/after", {})
    assert closing.status == after.status == 201
    assert closing.body.decode().split("|")[2] != after.body.decode().split("|")[2]


def test_errors_are_http_errors(server):
    with pytest.raises(HttpError, match="Content-Length"), KeepAliveClient(server) as client:
        client.get("/chunked", {})
    with pytest.raises(HttpError, match="http://"):
        KeepAliveClient("https://example.org")
    with pytest.raises(HttpError), KeepAliveClient("http://127.0.0.1:9", timeout=2) as client:
        client.get("/", {})
