"""``recsys soak``: a long open-loop load test at a fixed request rate.

Requests are scheduled at ``rate`` per second whatever the server does (open loop), and each
latency is measured from its scheduled time, so a stalled server shows up as latency instead
of silently lowering the load (no coordinated omission). The server's resident memory is read
from its own ``/metrics`` (``process_resident_memory_bytes``) every few seconds.

Verdict (the reliability issue's bars): no error; resident memory grows < 5 % from the end of
the first minute (start-up allocations settle there) to the end; every minute's p99 stays
within 1.5x of the first minute's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np

RSS_METRIC = "process_resident_memory_bytes"


@dataclass
class SoakResult:
    rate: float
    seconds: float
    minutes: list[dict] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (elapsed s, MB)
    errors: int = 0
    requests: int = 0
    late_starts: int = 0  # requests sent > 100 ms after their scheduled time (client saturated)

    def verdict(self) -> dict:
        first_p99 = self.minutes[0]["p99_ms"] if self.minutes else float("nan")
        worst_p99 = max((m["p99_ms"] for m in self.minutes), default=float("nan"))
        after_warmup = [mb for t, mb in self.rss_mb if t >= 60] or [mb for _, mb in self.rss_mb]
        growth = (after_warmup[-1] / after_warmup[0] - 1) * 100 if after_warmup else float("nan")
        return {
            "requests": self.requests,
            "errors": self.errors,
            "achieved_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "late_starts": self.late_starts,
            "rss_mb_start": round(after_warmup[0], 1) if after_warmup else None,
            "rss_mb_end": round(after_warmup[-1], 1) if after_warmup else None,
            "rss_growth_pct": round(growth, 2),
            "p99_first_minute_ms": first_p99,
            "p99_worst_minute_ms": worst_p99,
            "p99_ratio": round(worst_p99 / first_p99, 2) if first_p99 else None,
            "passed": bool(
                self.errors == 0 and growth < 5.0 and worst_p99 <= 1.5 * first_p99 and self.minutes
            ),
            "minutes": self.minutes,
        }


def read_rss_mb(client: httpx.Client, url: str) -> float | None:
    try:
        text = client.get(url.rstrip("/") + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(RSS_METRIC + " "):
            return float(line.split()[1]) / 1e6
    return None


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

    def send(i: int, scheduled: float) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        late = time.perf_counter() - scheduled > 0.1
        try:
            r = client.get(base, params={"id": int(users[i]), "time": stamps[i]})
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
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
                mb = read_rss_mb(client, url)
                if mb is not None:
                    result.rss_mb.append((time.perf_counter() - started, mb))
                stop.wait(rss_every)

    started = time.perf_counter()
    watcher = threading.Thread(target=watch_memory, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(total):
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, scheduled)
            if progress and i % int(rate) == 0:
                progress(int(rate))
    result.seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    with httpx.Client() as client:  # the last reading, after the load
        mb = read_rss_mb(client, url)
        if mb is not None:
            result.rss_mb.append((result.seconds, mb))
    for minute, values in enumerate(latencies):
        if values:
            a = np.asarray(values)
            result.minutes.append(
                {
                    "minute": minute + 1,
                    "requests": len(a),
                    "p50_ms": round(float(np.percentile(a, 50)), 2),
                    "p99_ms": round(float(np.percentile(a, 99)), 2),
                }
            )
    return result
