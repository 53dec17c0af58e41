"""Shadow scoring: an arm's shadow model ranks the requests the arm serves, off the response path.

The request hands a ``ShadowJob`` — its features and liked-before exclusion, already computed,
and the shadow ranker of the snapshot it was served from — to a bounded queue, without
waiting. One background thread scores the jobs with the same ranking path as the arm
(exclusion, mood, topic, top ``limit``) and hands each list to the shadow log
(``ShadowExposure`` rows in ``shadow_exposures``, through the exposure writer without its
crash journal: best effort). A full queue drops the job and counts it
(``recsys_shadow_dropped_total``): the shadow never delays or changes a response.

The thread works only in the gaps between requests: it scores the catalogue in chunks and
before each chunk waits until this process has no request in flight (``Idle``, kept by the
``CountRequests`` middleware), so a request arriving meanwhile shares the CPU with at most one
chunk. It also runs at OS niceness ``serving.shadow_nice``. Under sustained load the gaps
vanish, the queue fills and the work is dropped, as it should be.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.exposure import ExposureWriter, ShadowExposure
from gateway.features.store import FeatureStore
from gateway.serving.recommend import Recommendation, log_odds, ranked
from gateway.serving.state import Catalogue

log = logging.getLogger("gateway.serving")
CHUNK_ROWS = 1024  # catalogue rows scored between two looks at the requests in flight


class Idle:
    """Whether this process is serving a request; the shadow thread waits for the gaps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Event()
        self._idle.set()

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._idle.clear()

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def wait(self, timeout: float) -> bool:
        return self._idle.wait(timeout)


class CountRequests:
    """ASGI middleware: every HTTP request is in flight from its call until its response is sent."""

    def __init__(self, app, idle: Idle) -> None:
        self.app = app
        self.idle = idle

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.idle.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.idle.leave()


@dataclass(frozen=True)
class ShadowJob:
    request_id: str
    arm: str
    ranker: object  # the shadow ranker of the request's snapshot
    store: FeatureStore
    catalogue: Catalogue
    user_id: int
    seconds: int
    features: dict
    excluded: list
    limit: int
    topic: str | None
    mood: np.ndarray | None
    mood_weight: float
    candidates: np.ndarray | None = None  # the served request's candidate posts (None: all)

    @classmethod
    def of(
        cls,
        request_id: str,
        arm: str,
        ranker,
        store: FeatureStore,
        catalogue: Catalogue,
        result: Recommendation,
        user_id: int,
        seconds: int,
        limit: int,
        topic: str | None,
        mood: np.ndarray | None,
        mood_weight: float,
    ) -> ShadowJob:
        """The job for a served request, sharing its computed features and exclusion."""
        return cls(
            request_id,
            arm,
            ranker,
            store,
            catalogue,
            user_id,
            seconds,
            result.features,
            result.excluded,
            limit,
            topic,
            mood,
            mood_weight,
            result.candidates,
        )


def predict_in_gaps(ranker, features: dict, rows: int, gap) -> tuple[np.ndarray, float]:
    """The ranker's scores of ``rows`` catalogue rows, ``CHUNK_ROWS`` at a time, calling ``gap()``
    before each chunk; and the seconds spent scoring (the waits excluded). Trees score each
    row alone, so the chunks give exactly the scores of one call."""
    scores, busy = np.empty(rows), 0.0
    for start in range(0, rows, CHUNK_ROWS):
        gap()
        began = time.perf_counter()
        scores[start : start + CHUNK_ROWS] = ranker.predict(
            {name: values[start : start + CHUNK_ROWS] for name, values in features.items()}
        )
        busy += time.perf_counter() - began
    return scores, busy


def score(job: ShadowJob, gap=lambda: None) -> ShadowExposure:
    """The shadow's list for the job's request (an empty list and the error if it fails).
    ``latency_ms`` is the time spent scoring, without the waits for gaps between requests."""
    busy = 0.0
    try:
        rows = len(job.catalogue.post_ids) if job.candidates is None else len(job.candidates)
        scores, busy = predict_in_gaps(job.ranker, job.features, rows, gap)
        began = time.perf_counter()
        best = ranked(
            log_odds(scores),
            job.store,
            job.catalogue,
            job.excluded,
            job.limit,
            job.topic,
            job.mood,
            job.mood_weight,
            job.candidates,
        )
        post_ids, error = [int(job.catalogue.post_ids[i]) for i in best], None
        busy += time.perf_counter() - began
    except Exception as exc:  # noqa: BLE001 - a failing shadow is logged as such, never raised
        post_ids, error = [], f"{type(exc).__name__}: {exc}"[:500]
    return ShadowExposure(
        request_id=job.request_id,
        model_version=job.ranker.version,
        arm=job.arm,
        scored_at=datetime.now(UTC).replace(tzinfo=None),
        post_ids=post_ids,
        latency_ms=round(busy * 1000, 3),
        error=error,
    )


def lower_priority(nice: int) -> bool:
    """Give the calling thread OS niceness ``nice`` (Linux: per thread); False where unsupported."""
    if nice <= 0:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as exc:
        log.warning("shadow thread keeps normal priority (%s)", exc)
        return False
    return True


class ShadowScorer:
    """The bounded queue and the thread that scores shadow jobs and logs their lists."""

    def __init__(
        self,
        writer: ExposureWriter,
        registry: CollectorRegistry,
        *,
        max_queue: int = 64,
        nice: int = 19,
        idle: Idle | None = None,
    ) -> None:
        self.writer = writer
        self.nice = nice
        self.idle = idle or Idle()
        self.queue: queue.Queue[ShadowJob] = queue.Queue(maxsize=max_queue)
        labels = ["arm", "model_version"]
        self.scored = Counter(
            "recsys_shadow_scored_total", "Requests scored by a shadow model", labels, registry=registry
        )
        self.dropped = Counter(
            "recsys_shadow_dropped_total",
            "Requests a shadow model did not score: its queue was full (overload) or the gateway stopped",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "recsys_shadow_errors_total", "Shadow scorings that failed", labels, registry=registry
        )
        Gauge("recsys_shadow_queue", "Shadow jobs waiting", registry=registry).set_function(self.queue.qsize)
        Gauge(
            "recsys_shadow_rows_written", "Shadow rows written to the database", registry=registry
        ).set_function(lambda: writer.stats.written)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> ShadowScorer:
        self._thread.start()
        return self

    def submit(self, job: ShadowJob) -> bool:
        """Queue the job without waiting; a full queue (or a stopped scorer) drops it, counted."""
        if not self._stop.is_set():
            try:
                self.queue.put_nowait(job)
                return True
            except queue.Full:
                pass
        self.dropped.labels(job.arm, job.ranker.version).inc()
        return False

    def _gap(self) -> None:
        """Wait until no request is in flight (not once the scorer is stopping: the server is)."""
        while not self.idle.wait(0.05) and not self._stop.is_set():
            pass

    def _process(self, job: ShadowJob) -> None:
        row = score(job, self._gap)
        self.scored.labels(job.arm, row.model_version).inc()
        if row.error is not None:
            self.errors.labels(job.arm, row.model_version).inc()
        self.writer.submit(row, journal=False)

    def _run(self) -> None:
        lower_priority(self.nice)
        while not self._stop.is_set():
            try:
                job = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._process(job)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; score what is queued within ``timeout`` (the rest: dropped); flush the log."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if time.monotonic() < deadline:
                self._process(job)
            else:
                self.dropped.labels(job.arm, job.ranker.version).inc()
        self.writer.close()
