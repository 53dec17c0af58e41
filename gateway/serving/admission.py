"""Admission control: a bound on the recommendation requests one process works on at once.

Past capacity a queue only makes every answer late (README "Overload" has the measurements), so
the excess is answered cheaply, on the event loop, before it reaches a worker thread: with the
popularity fallback (``serving.admission.overflow: fallback``) or a 503 with ``Retry-After``.

A request that finds every slot taken first waits up to ``shed_delay_ms`` for one. A slot that
frees meanwhile goes to the *newest* waiter (last in, first out, as in Facebook's adaptive LIFO):
under overload the oldest waiters are the ones shed, so an admitted request has waited little
and a shed one ``shed_delay_ms``. The wait is also what paces clients that retry at once
(closed-loop load generators, impatient apps): each shed answer costs the event loop CPU the
admitted requests need, and with N such clients past the bound about N / ``shed_delay_ms``
answers a second are shed (README "Overload" has the measurements). Only
``GET /post/recommendations/`` is bounded: health, readiness, metrics and the rest never wait
behind it and are never shed.

A deadline (``serving.deadline_ms``) bounds each admitted request: a ranker that has not answered
within it is left to finish in the background (its slot stays taken until it does) and the
request gets the fallback list (``Deadline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from gateway.config import AdmissionSettings

BOUNDED_PATH = "/post/recommendations/"
ARRIVED = "recsys.arrived"  # scope key: perf_counter() when the request reached the gateway
ADMITTED = "recsys.admitted"  # scope key: True when the server's protocol took the slot already
T = TypeVar("T")


class Admission:
    """The per-process bound. ``in_flight`` and the waiters are touched on the event loop only;
    ``late`` (rankers still running past their deadline) from worker threads, under a lock."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.limit = settings.max_in_flight
        self.overflow = settings.overflow
        self.shed_delay = settings.shed_delay_ms / 1000
        self.retry_after = settings.retry_after_s
        self.in_flight = 0
        self.late = 0
        self._lock = threading.Lock()
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None  # the waiters' loop, once one waits

    def full(self) -> bool:
        return self.limit > 0 and self.in_flight + self.late >= self.limit

    @property
    def waiting(self) -> int:
        return sum(not w.done() for w in self._waiters)

    def take(self) -> bool:
        """Take a free slot, if there is one."""
        if self.full():
            return False
        self.in_flight += 1
        return True

    def enqueue(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool] | None:
        """Join the waiters (on ``loop``, the running event loop): a future that becomes True
        with a slot taken for the caller, or False after ``shed_delay`` without one (the request
        is to be shed); None when there is no wait (``shed_delay_ms: 0``)."""
        if self.shed_delay <= 0:
            return None
        self._loop = loop
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.shed_delay, self._expire, waiter)
        waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    async def wait(self) -> bool:
        """Wait up to ``shed_delay`` for a slot to free (the newest waiter gets it first): True
        with the slot taken, False when none did (the request is to be shed)."""
        waiter = self.enqueue(asyncio.get_running_loop())
        if waiter is None:
            return False
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a slot just as the request was cancelled
            raise

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)
        while self._waiters and self._waiters[0].done():  # the oldest expire first
            self._waiters.popleft()

    def release(self) -> None:
        """Free a slot; the newest waiter still waiting takes it over."""
        self.in_flight -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        """A slot is free: the newest waiter still waiting takes it (on the event loop)."""
        while self._waiters and not self.full():
            waiter = self._waiters.pop()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(True)
                return

    def late_started(self) -> None:
        with self._lock:
            self.late += 1

    def late_finished(self, _: object = None) -> None:
        """A late ranker returned (on its worker thread): its slot is free, and a request waiting
        for one takes it over on the event loop, not only once its ``shed_delay_ms`` is up."""
        with self._lock:
            self.late -= 1
        if self._loop is not None:
            _call_soon(self._loop, self._hand_over)


class AdmissionControl:
    """ASGI middleware: admit a recommendation request, or hand it to ``shed`` (an async callable
    ``(scope, send, admission)`` installed by the app, answering on the event loop)."""

    def __init__(self, app, shed: Callable) -> None:
        self.app = app
        self.shed = shed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != BOUNDED_PATH:
            return await self.app(scope, receive, send)
        scope.setdefault(ARRIVED, time.perf_counter())
        admission: Admission | None = getattr(scope["app"].state, "admission", None)
        if admission is None:
            return await self.app(scope, receive, send)
        if scope.get(ADMITTED):
            pass  # the server's protocol admitted it (``gateway.serving.protocol``): the slot is ours
        elif not admission.take() and not await admission.wait():
            return await self.shed(scope, send, admission)
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                admission.release()

        async def send_then_release(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()  # the answer is out: the slot is free before the client can ask again

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


_LATE = object()  # what a request's future holds when its deadline passed first


def _deliver(waiter: asyncio.Future, done: Future) -> None:
    """On the event loop: the ranker's result or exception, unless the deadline came first."""
    if waiter.done():
        return
    exc = done.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(done.result())


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(_LATE)


def _call_soon(loop: asyncio.AbstractEventLoop, callback, *args) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


class Deadline:
    """Runs a ranker call on a thread of its own and waits, on the event loop, at most until the
    request's deadline: one hand-over to the thread and one back (a synchronous route would add
    a second thread, and a second pair of hand-overs of the GIL, per request). The thread
    delivers its result straight into one asyncio future, which a timer on the loop resolves
    as late at the deadline (instead of ``wrap_future``, ``shield`` and ``wait_for``: three
    futures and their callbacks per request)."""

    def __init__(self, deadline_ms: float, admission: Admission, threads: int = 64) -> None:
        self.seconds = deadline_ms / 1000
        self.admission = admission
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ranker")

    async def run(self, work: Callable[[], T], arrived: float) -> T | None:
        """``work()``'s result (or its exception), or None when it has not finished
        ``deadline_ms`` after ``arrived`` (a ``time.perf_counter()``); without a deadline
        (``deadline_ms: 0``) the result whenever it comes."""
        timer = None
        if self.seconds:
            remaining = self.seconds - (time.perf_counter() - arrived)
            if remaining <= 0:
                return None
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        future: Future = self._pool.submit(work)
        future.add_done_callback(lambda done: _call_soon(loop, _deliver, waiter, done))
        if self.seconds:
            timer = loop.call_later(remaining, _expire, waiter)
        try:
            result = await waiter
        finally:
            if timer is not None:
                timer.cancel()
        if result is _LATE:
            self.admission.late_started()
            future.add_done_callback(self.admission.late_finished)
            return None
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
