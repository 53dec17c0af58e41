"""``recsys soak``: a long open-loop load test at a fixed request rate.

Requests are scheduled at ``rate`` per second whatever the server does (open loop), and each
latency is measured from its scheduled time, so a stalled server shows up as latency instead
of silently lowering the load (no coordinated omission). The server's resident memory is read
from its own ``/metrics`` (``process_resident_memory_bytes``) every few seconds.

A warm-up (default 30 s at the same rate) runs first and is not counted. Verdict (the
reliability issue's bars): no error; the resident memory of every worker (told apart by
``recsys_worker_pid``) grows < 5 % from its first to its last reading; every minute's p99
stays within 1.5x of the first minute's.
"""

from __future__ import annotations

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


class SoakError(RuntimeError):
    pass


@dataclass
class SoakResult:
    rate: float
    seconds: float
    minutes: list[dict] = field(default_factory=list)
    rss_mb: list[tuple[float, int, float]] = field(default_factory=list)  # (elapsed s, worker pid, MB)
    errors: int = 0
    requests: int = 0
    late_starts: int = 0  # requests sent > 100 ms after their scheduled time (client saturated)

    def verdict(self) -> dict:
        first_p99 = self.minutes[0]["p99_ms"] if self.minutes else float("nan")
        worst_p99 = max((m["p99_ms"] for m in self.minutes), default=float("nan"))
        workers: dict[int, list[float]] = {}
        for _, pid, mb in self.rss_mb:
            workers.setdefault(pid, []).append(mb)
        growths = {pid: (mbs[-1] / mbs[0] - 1) * 100 for pid, mbs in workers.items()}
        growth = max(growths.values(), default=float("nan"))
        return {
            "requests": self.requests,
            "errors": self.errors,
            "achieved_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "late_starts": self.late_starts,
            "rss_mb_start": round(sum(mbs[0] for mbs in workers.values()), 1),
            "rss_mb_end": round(sum(mbs[-1] for mbs in workers.values()), 1),
            "rss_growth_pct": round(growth, 2),  # the worst worker's
            "workers_seen": len(workers),
            "p99_first_minute_ms": first_p99,
            "p99_worst_minute_ms": worst_p99,
            "p99_ratio": round(worst_p99 / first_p99, 2) if first_p99 else None,
            "passed": bool(
                self.errors == 0 and growth < 5.0 and worst_p99 <= 1.5 * first_p99 and self.minutes
            ),
            "minutes": self.minutes,
        }


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

    def get(i: int) -> bool:
        client = getattr(local, "client", None)
        if client is None:  # one per worker thread, made during the warm-up
            client = local.client = httpx.Client(timeout=10)
        try:
            return (
                client.get(base, params={"id": int(users[i % total]), "time": stamps[i % total]}).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    def send(i: int, scheduled: float) -> None:
        late = time.perf_counter() - scheduled > 0.1
        ok = get(i)
        elapsed_ms = (time.perf_counter() - scheduled) * 1000
        minute = min(int((scheduled - started) // 60), len(latencies) - 1)
        with lock:
            result.requests += 1
            result.late_starts += late
            if ok:
                latencies[minute].append(elapsed_ms)
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
        _paced(pool, lambda i, _: get(i), rate, int(rate * warmup), time.perf_counter())
        started = time.perf_counter()
        watcher = threading.Thread(target=watch_memory, daemon=True)
        watcher.start()
        _paced(pool, send, rate, total, started, progress)
    result.seconds = time.perf_counter() - started
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


def _paced(pool: ThreadPoolExecutor, task, rate: float, count: int, started: float, progress=None) -> None:
    """Submit ``task(i, scheduled_time)`` at ``rate`` per second from ``started`` (open loop)."""
    for i in range(count):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pool.submit(task, i, scheduled)
        if progress and i % int(rate) == 0:
            progress(int(rate))


def soak(
    store: FeatureStore,
    url: str,
    *,
    rate: float,
    minutes: float,
    warmup: float = 30.0,
    seed: int = 0,
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
        progress=progress,
    )
