"""``recsys soak``: a long open-loop load test at a fixed request rate.

Requests are scheduled at ``rate`` per second whatever the server does (open loop), and each
latency is measured from its scheduled time, so a stalled server shows up as latency instead
of silently lowering the load (no coordinated omission). At most ``workers`` requests are
outstanding: a request whose time comes while all are taken is not sent and counts as
**missed**, and so does one not answered by the end of the run plus ``grace`` seconds (its
client gives up then). So the soak ends on time however slow the server, and a collapse shows
as missed requests and a short achieved rate, never as a backlog drained after the run. The
server's resident memory is read from its own ``/metrics`` (``process_resident_memory_bytes``)
every few seconds.

A warm-up (default 30 s at the same rate) runs first and is not counted. The verdict
(``Objectives``) fails a run, and says which bar, when: the achieved rate (requests answered
within the run and grace, per second of the run) is short of the target by more than
``rate_tolerance``; the p99 of all scheduled requests (missed ones counted as beyond any bound)
exceeds ``p99_ms``; errors (statuses other than 200, the configured 503 counted as shed)
exceed ``error_budget``; shed answers (fallback lists or 503) exceed ``shed_budget``; the
resident memory of a worker (told apart by ``recsys_worker_pid``) grows 5 % or more; a
minute's p99 exceeds 1.5x the first minute's.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np

from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.loadtest.bench import latency_stats

RSS_METRIC = "process_resident_memory_bytes"
PID_METRIC = "recsys_worker_pid"
SERVED_BY = "X-Recsys-Served-By"


class SoakError(RuntimeError):
    pass


@dataclass(frozen=True)
class Objectives:
    """The bars a soak must meet (``recsys soak`` flags)."""

    p99_ms: float = 50.0
    error_budget: float = 0.001  # share of scheduled requests
    shed_budget: float = 0.01
    rate_tolerance: float = 0.05  # achieved may fall short of the target by this share
    rss_growth_pct: float = 5.0
    drift: float = 1.5  # worst minute's p99 / first minute's


@dataclass
class SoakResult:
    rate: float
    seconds: float
    minutes: list[dict] = field(default_factory=list)
    rss_mb: list[tuple[float, int, float]] = field(default_factory=list)  # (elapsed s, worker pid, MB)
    errors: int = 0
    requests: int = 0  # scheduled
    late_starts: int = 0  # requests sent > 100 ms after their scheduled time (client saturated)
    shed: int = 0  # answered with the fallback list or 503
    missed: int = 0  # not sent (all outstanding slots taken) or not answered within the run + grace
    latencies_ms: list[float] = field(default_factory=list)  # every answered request, from its schedule

    @property
    def answered(self) -> int:
        return self.requests - self.missed

    def verdict(self, objectives: Objectives | None = None) -> dict:
        bars = objectives or Objectives()
        first_p99 = self.minutes[0]["p99_ms"] if self.minutes else float("nan")
        worst_p99 = max((m["p99_ms"] for m in self.minutes), default=float("nan"))
        workers: dict[int, list[float]] = {}
        for _, pid, mb in self.rss_mb:
            workers.setdefault(pid, []).append(mb)
        growths = {pid: (mbs[-1] / mbs[0] - 1) * 100 for pid, mbs in workers.items()}
        growth = max(growths.values(), default=float("nan"))
        achieved = self.answered / self.seconds if self.seconds else 0.0
        # missed requests have no latency: they count as beyond any bound
        p99 = _percentile(self.latencies_ms, self.missed, 99)
        error_share = self.errors / self.requests if self.requests else 0.0
        shed_share = self.shed / self.requests if self.requests else 0.0
        failures = []
        if not self.requests or not self.minutes:
            failures.append("no request was answered")
        if achieved < (1 - bars.rate_tolerance) * self.rate:
            failures.append(
                f"achieved {achieved:.1f} req/s < target {self.rate:g} (missed {self.missed:,} of {self.requests:,})"
            )
        if not p99 <= bars.p99_ms:
            shown = f"{p99:.1f} ms" if math.isfinite(p99) else "beyond the run (missed requests)"
            failures.append(f"p99 {shown} > objective {bars.p99_ms:g} ms")
        if error_share > bars.error_budget:
            failures.append(f"errors {error_share:.2%} > budget {bars.error_budget:.2%}")
        if shed_share > bars.shed_budget:
            failures.append(f"shed {shed_share:.2%} > budget {bars.shed_budget:.2%}")
        if not growth < bars.rss_growth_pct:
            failures.append(
                f"resident memory of a worker grew {growth:+.2f} % (bar < {bars.rss_growth_pct:g} %)"
            )
        if not worst_p99 <= bars.drift * first_p99:
            failures.append(
                f"worst minute's p99 {worst_p99} ms > {bars.drift:g}x the first minute's {first_p99} ms"
            )
        return {
            "requests": self.requests,
            "answered": self.answered,
            "missed": self.missed,
            "errors": self.errors,
            "shed": self.shed,
            "target_rps": self.rate,
            "achieved_rps": round(achieved, 1),
            "late_starts": self.late_starts,
            "p99_ms": round(p99, 2) if math.isfinite(p99) else None,
            "objectives": {
                "p99_ms": bars.p99_ms,
                "error_budget": bars.error_budget,
                "shed_budget": bars.shed_budget,
                "rate_tolerance": bars.rate_tolerance,
            },
            "rss_mb_start": round(sum(mbs[0] for mbs in workers.values()), 1),
            "rss_mb_end": round(sum(mbs[-1] for mbs in workers.values()), 1),
            "rss_growth_pct": round(growth, 2),  # the worst worker's
            "workers_seen": len(workers),
            "p99_first_minute_ms": first_p99,
            "p99_worst_minute_ms": worst_p99,
            "p99_ratio": round(worst_p99 / first_p99, 2) if first_p99 else None,
            "failures": failures,
            "passed": not failures,
            "minutes": self.minutes,
        }


def _percentile(values: list[float], beyond: int, q: float) -> float:
    """The ``q``-th percentile of ``values`` plus ``beyond`` values larger than any (inf if it
    falls among those)."""
    n = len(values) + beyond
    if n == 0:
        return math.nan
    rank = math.ceil(q / 100 * n)  # nearest rank
    if rank > len(values):
        return math.inf
    return float(np.sort(np.asarray(values))[rank - 1])


def read_rss_mb(client: httpx.Client, url: str) -> tuple[int, float] | None:
    """(worker pid, resident MB) of whichever worker answered, or None."""
    try:
        text = client.get(url.rstrip("/") + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in (RSS_METRIC, PID_METRIC):
            values[name] = float(value)
    if RSS_METRIC not in values:
        return None
    return int(values.get(PID_METRIC, 0)), values[RSS_METRIC] / 1e6


def run_soak(
    url: str,
    user_ids: np.ndarray,
    time_range: tuple[int, int],
    *,
    rate: float,
    seconds: float,
    seed: int = 0,
    workers: int = 32,
    rss_every: float = 5.0,
    warmup: float = 30.0,
    grace: float = 2.0,
    progress=None,
) -> SoakResult:
    rng = np.random.default_rng(seed)
    total = int(rate * seconds)
    users = rng.choice(user_ids, total)
    stamps = [str(np.datetime64(int(t), "s")) for t in rng.integers(*time_range, total)]
    base = url.rstrip("/") + "/post/recommendations/"
    latencies: list[list[float]] = [[] for _ in range(int(np.ceil(seconds / 60)) or 1)]
    result = SoakResult(rate=rate, seconds=seconds)
    lock = threading.Lock()
    local = threading.local()
    deadline = [math.inf]  # clients give up at this perf_counter() (the run's end + grace)

    def get(i: int) -> httpx.Response | None:
        client = getattr(local, "client", None)
        if client is None:  # one per worker thread, made during the warm-up
            client = local.client = httpx.Client(timeout=10)
        left = min(10.0, deadline[0] - time.perf_counter())
        if left <= 0:
            return None
        try:
            params = {"id": int(users[i % total]), "time": stamps[i % total]}
            return client.get(base, params=params, timeout=left)
        except httpx.TimeoutException:
            return None
        except httpx.HTTPError:
            return httpx.Response(0)

    def send(i: int, scheduled: float) -> None:
        late = time.perf_counter() - scheduled > 0.1
        response = get(i)
        elapsed_ms = (time.perf_counter() - scheduled) * 1000
        minute = min(int((scheduled - started) // 60), len(latencies) - 1)
        with lock:
            result.late_starts += late
            if response is None:
                result.missed += 1
                return
            result.latencies_ms.append(elapsed_ms)
            shed = response.status_code == 503 or response.headers.get(SERVED_BY, "").startswith("fallback")
            if response.status_code == 200 or response.status_code == 503:
                latencies[minute].append(elapsed_ms)
                result.shed += shed
            else:
                result.errors += 1

    stop = threading.Event()

    def watch_memory() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                for _ in range(4):  # several scrapes: each may reach another worker
                    reading = read_rss_mb(client, url)
                    if reading is not None:
                        result.rss_mb.append((time.perf_counter() - started, *reading))
                stop.wait(rss_every)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Warm-up, not measured: the same load on the same threads and connections, so the
        # measured minutes start with clients, caches and allocators settled.
        warm_start = time.perf_counter()
        deadline[0] = warm_start + warmup + grace
        _paced(pool, lambda i, _: get(i), rate, int(rate * warmup), warm_start, workers)
        started = time.perf_counter()
        deadline[0] = started + seconds + grace
        watcher = threading.Thread(target=watch_memory, daemon=True)
        watcher.start()
        result.requests = total
        result.missed += _paced(pool, send, rate, total, started, workers, progress)
    result.seconds = seconds
    stop.set()
    watcher.join()
    with httpx.Client() as client:  # the last readings, after the load
        for _ in range(8):
            reading = read_rss_mb(client, url)
            if reading is not None:
                result.rss_mb.append((result.seconds, *reading))
    result.minutes = [
        {"minute": minute + 1, "requests": len(values), **latency_stats(values)}
        for minute, values in enumerate(latencies)
        if values
    ]
    return result


def _paced(
    pool: ThreadPoolExecutor, task, rate: float, count: int, started: float, bound: int, progress=None
) -> int:
    """Submit ``task(i, scheduled_time)`` at ``rate`` per second from ``started`` (open loop), at
    most ``bound`` outstanding; returns how many could not be sent because all were taken."""
    outstanding = threading.Semaphore(bound)
    unsent = 0

    def run(i: int, scheduled: float) -> None:
        try:
            task(i, scheduled)
        finally:
            outstanding.release()

    for i in range(count):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if outstanding.acquire(blocking=False):
            pool.submit(run, i, scheduled)
        else:
            unsent += 1
        if progress and i % int(rate) == 0:
            progress(int(rate))
    return unsent


def soak(
    store: FeatureStore,
    url: str,
    *,
    rate: float,
    minutes: float,
    warmup: float = 30.0,
    seed: int = 0,
    grace: float = 2.0,
    progress=None,
) -> SoakResult:
    """``recsys soak``: check the gateway reports its memory, then ``run_soak`` over the feed's
    traffic window."""
    with httpx.Client() as client:
        if read_rss_mb(client, url) is None:
            raise SoakError(f"no {RSS_METRIC} at {url}/metrics: is the gateway (this version) running?")
    return run_soak(
        url,
        store.user_ids,
        traffic_window(store),
        rate=rate,
        seconds=minutes * 60,
        seed=seed,
        warmup=warmup,
        grace=grace,
        progress=progress,
    )
