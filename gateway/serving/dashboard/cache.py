"""The dashboard's results: computed by a child process, kept, and recomputed when looked at.

Stale-while-revalidate: ``get()`` returns the last results at once, and when they are older
than ``dashboard.refresh_s`` (or absent) starts one recomputation in the background — a thread
that only waits on the child (``worker.py``, at OS niceness ``dashboard.nice``). Nothing is
computed while nobody looks at the page, and a request never waits for the analysis.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.config import Settings


def finite(value):
    """``value`` with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def last_error_line(stderr: str) -> str:
    """The line of a traceback that names the exception (not a library's trailing hint)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b", line)]
    return (named or lines or [""])[-1][:500]


@dataclass(frozen=True)
class Results:
    data: dict | None  # the worker's JSON (NaN → None); None before the first success
    computed_at: float | None  # time.time() when the child finished
    seconds: float | None  # how long the child took (wall clock)
    error: str | None  # why the last attempt failed, if it did
    computing: bool  # a recomputation is running

    def as_json(self, now: float, refresh_s: float) -> dict:
        return {
            "computed_at": datetime.fromtimestamp(self.computed_at, UTC).isoformat(timespec="seconds")
            if self.computed_at
            else None,
            "age_s": round(now - self.computed_at, 1) if self.computed_at else None,
            "refresh_s": refresh_s,
            "seconds": self.seconds,
            "computing": self.computing,
            "error": self.error,
            **(self.data or {}),
        }


class ResultsCache:
    """Results of ``worker.py`` for the settings ``settings()`` returns when a refresh starts."""

    def __init__(self, settings: Callable[[], Settings], *, command: list[str] | None = None) -> None:
        self._settings = settings
        self._command = command or [sys.executable, "-m", "gateway.serving.dashboard.worker"]
        self._lock = threading.Lock()
        self._results = Results(None, None, None, None, False)
        self._thread: threading.Thread | None = None
        self.refresh_s = settings().dashboard.refresh_s
        self.runs = 0
        self._last_attempt = 0.0

    def get(self) -> Results:
        """The current results; starts a background refresh when they are stale (never waits)."""
        with self._lock:
            stale = (
                self._results.computed_at is None or time.time() - self._results.computed_at >= self.refresh_s
            )
            if stale and not self._results.computing and not self._failed_recently():
                self._start()
            return self._results

    def _failed_recently(self) -> bool:
        """After a failure, wait ``refresh_s`` before trying again (a broken database is not
        retried on every look at the page)."""
        return self._results.error is not None and time.time() - self._last_attempt < self.refresh_s

    def _start(self) -> None:
        self._last_attempt = time.time()
        self._results = Results(**{**self._results.__dict__, "computing": True})
        self._thread = threading.Thread(target=self._refresh, name="dashboard-results", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        began = time.time()
        data, error = None, None
        try:
            settings = self._settings()
            self.refresh_s = settings.dashboard.refresh_s
            done = subprocess.run(
                self._command,
                input=settings.model_dump_json(),
                capture_output=True,
                text=True,
                timeout=settings.dashboard.timeout_s,
            )
            if done.returncode != 0:
                error = (
                    f"the analysis failed: {last_error_line(done.stderr) or f'exit status {done.returncode}'}"
                )
            else:
                data = finite(json.loads(done.stdout))
        except subprocess.TimeoutExpired as exc:
            error = f"the analysis took longer than dashboard.timeout_s = {exc.timeout:g} s and was stopped"
        except Exception as exc:  # noqa: BLE001 - whatever went wrong is shown on the page
            error = f"the analysis failed: {type(exc).__name__}: {exc}"[:500]
        with self._lock:
            self.runs += 1
            old = self._results
            if data is not None:
                self._results = Results(data, time.time(), round(time.time() - began, 2), None, False)
            else:
                self._results = Results(old.data, old.computed_at, old.seconds, error, False)

    def wait(self, timeout: float) -> Results:
        """Block until no refresh is running (tests and the bench)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._results
