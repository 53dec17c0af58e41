"""Admission control: a bound on the recommendation requests one process works on at once.

Past capacity a queue only makes every answer late (README "Overload" has the measurements), so
the excess is answered at once and cheaply, on the event loop, before it reaches a worker
thread: with the popularity fallback (``serving.admission.overflow: fallback``) or a 503 with
``Retry-After``. Either is delayed by ``shed_delay_ms`` first, so that clients which retry at
once (closed-loop load generators, impatient apps) do not spin on the shed path. Only
``GET /post/recommendations/`` is bounded: health, readiness, metrics and the rest never wait
behind it and are never shed.

A deadline (``serving.deadline_ms``) bounds each admitted request: a ranker that has not answered
within it is left to finish in the background (its slot stays taken until it does) and the
request gets the fallback list (``Deadline``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from gateway.config import AdmissionSettings

BOUNDED_PATH = "/post/recommendations/"
ARRIVED = "recsys.arrived"  # scope key: perf_counter() when the request reached the gateway
T = TypeVar("T")


class Admission:
    """The per-process bound. ``in_flight`` is touched on the event loop only; ``late`` (rankers
    still running past their deadline) from worker threads, under a lock."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.limit = settings.max_in_flight
        self.overflow = settings.overflow
        self.shed_delay = settings.shed_delay_ms / 1000
        self.retry_after = settings.retry_after_s
        self.in_flight = 0
        self.late = 0
        self._lock = threading.Lock()

    def full(self) -> bool:
        return self.limit > 0 and self.in_flight + self.late >= self.limit

    def late_started(self) -> None:
        with self._lock:
            self.late += 1

    def late_finished(self, _: object = None) -> None:
        with self._lock:
            self.late -= 1


class AdmissionControl:
    """ASGI middleware: admit a recommendation request, or hand it to ``shed`` (an async callable
    ``(scope, send, admission)`` installed by the app, answering on the event loop)."""

    def __init__(self, app, shed: Callable) -> None:
        self.app = app
        self.shed = shed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != BOUNDED_PATH:
            return await self.app(scope, receive, send)
        scope[ARRIVED] = time.perf_counter()
        admission: Admission | None = getattr(scope["app"].state, "admission", None)
        if admission is None:
            return await self.app(scope, receive, send)
        if admission.full():
            return await self.shed(scope, send, admission)
        admission.in_flight += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                admission.in_flight -= 1

        async def send_then_release(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()  # the answer is out: the slot is free before the client can ask again

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


async def pace(admission: Admission) -> None:
    """The shed path's delay (see the module docstring)."""
    if admission.shed_delay > 0:
        await asyncio.sleep(admission.shed_delay)


class Deadline:
    """Runs a ranker call on its own thread and waits at most until the request's deadline."""

    def __init__(self, deadline_ms: float, admission: Admission, threads: int = 64) -> None:
        self.seconds = deadline_ms / 1000
        self.admission = admission
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ranker") if deadline_ms else None
        )

    def run(self, work: Callable[[], T], arrived: float) -> T | None:
        """``work()``'s result, or None when it has not finished ``deadline_ms`` after ``arrived``
        (a ``time.perf_counter()``); without a deadline, ``work()`` runs on this thread."""
        if self._pool is None:
            return work()
        remaining = self.seconds - (time.perf_counter() - arrived)
        if remaining <= 0:
            return None
        future: Future = self._pool.submit(work)
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            self.admission.late_started()
            future.add_done_callback(self.admission.late_finished)
            return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
