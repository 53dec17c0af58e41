"""A headless Chromium driven over the DevTools protocol (a websocket): enough to load a page
that asks for HTTP Basic credentials, collect console errors, read the DOM, take screenshots."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import websocket

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One browser with a fresh profile and one page; ``credentials`` answer HTTP auth challenges."""

    def __init__(self, credentials: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("no chromium on PATH (Debian: apt-get install -y chromium)")
        self.profile = Path(tempfile.mkdtemp(prefix="recsys-chromium-"))
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.credentials = credentials
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port(timeout)
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
            self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            if credentials is not None:
                self.send("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.proc.returncode}")
            if marker.exists() and (lines := marker.read_text().splitlines()):
                return int(lines[0])
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port in time")

    def _handle(self, event: dict) -> None:
        """Answer the Fetch domain's pauses (auth challenges with the credentials); keep the rest."""
        method, params = event.get("method"), event.get("params", {})
        if method == "Fetch.requestPaused":
            self._post("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            user, password = self.credentials or ("", "")
            self.events.append(event)
            self._post(
                "Fetch.continueWithAuth",
                requestId=params["requestId"],
                authChallengeResponse={
                    "response": "ProvideCredentials",
                    "username": user,
                    "password": password,
                },
            )
        else:
            self.events.append(event)

    def _post(self, method: str, **params) -> int:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        return message_id

    def send(self, method: str, **params) -> dict:
        """Call a DevTools method and wait for its answer (handling the events meanwhile)."""
        message_id = self._post(method, **params)
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._handle(message)

    def pump(self, seconds: float) -> None:
        """Handle events for ``seconds`` (the page's requests keep flowing meanwhile)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in message:
                self._handle(message)
        self.ws.settimeout(60)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def viewport(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )

    def open(self, url: str, ready: str, timeout: float = 90.0) -> None:
        """Navigate and wait until the JavaScript expression ``ready`` is true."""
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(ready):
                return
            self.pump(0.25)
        raise TimeoutError(f"{url}: not ready after {timeout} s ({ready})")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations, failed loads)."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                )
            elif method == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p["exceptionDetails"])[:500])
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the viewport) as a PNG."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
