"""``recsys bench``: a closed-loop load generator against a running gateway.

Each of ``concurrency`` threads keeps one HTTP connection and sends requests back to back;
latency is measured at the client (``http_client``: the requests' bytes built before the clock
starts, the answers read by their length, so the client's own CPU stays small on the shared
cores). Figures are reported overall and per arm (X-Exp-Group).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.loadtest.http_client import HttpError, KeepAliveClient
from gateway.serving.server import ServerProcess


class BenchError(RuntimeError):
    pass


def latency_stats(values_ms: list[float]) -> dict:
    """Count, p50/p95/p99 and mean of latencies in milliseconds (non-empty)."""
    a = np.asarray(values_ms)
    return {
        "count": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


@dataclass
class BenchResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: dict[str, list[float]]
    statuses: dict[int, int]
    warmup: int = 0

    def summary(self) -> dict:
        def stats(values: list[float]) -> dict:
            if not values:
                return {"count": 0}
            return {**latency_stats(values), "throughput_rps": round(len(values) / self.seconds, 1)}

        everything = [v for values in self.latencies_ms.values() for v in values]
        return {
            "requests": self.requests,
            "warmup_requests": self.warmup,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "overall": stats(everything),
            "arms": {arm: stats(values) for arm, values in sorted(self.latencies_ms.items())},
        }


def run_bench(
    url: str,
    user_ids: np.ndarray,
    time_range: tuple[int, int],
    *,
    requests: int,
    concurrency: int,
    seed: int = 0,
    limit: int = 5,
    timeout: float = 10.0,
    warmup: int = 20,
    mood: str | None = None,
    request_ids: str | None = None,
) -> BenchResult:
    """``requests`` requests from ``concurrency`` closed-loop clients; with ``request_ids`` each
    measured request is sent with X-Request-ID ``<request_ids>-<i>`` (to find its log rows)."""
    rng = np.random.default_rng(seed)
    extra = {"mood": mood} if mood else {}
    users = rng.choice(user_ids, requests + warmup)
    times = rng.integers(time_range[0], time_range[1], requests + warmup)
    stamps = [np.datetime64(int(t), "s").astype(str) for t in times]
    latencies: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    errors = 0
    lock = threading.Lock()
    counter = iter(range(warmup, requests + warmup))
    try:
        probe = KeepAliveClient(url, timeout)
    except HttpError as exc:
        raise BenchError(str(exc)) from None
    path = urlsplit(url).path.rstrip("/") + "/post/recommendations/"
    # Every request's bytes are built before the clock starts (the client shares the cores).
    wire = [
        probe.request_bytes(
            path,
            {"id": int(users[i]), "time": stamps[i], "limit": limit, **extra},
            {"X-Request-ID": f"{request_ids}-{i}"} if request_ids and i >= warmup else None,
        )
        for i in range(requests + warmup)
    ]
    try:
        with probe:
            for i in range(warmup):
                probe.send(wire[i])
    except HttpError as exc:
        raise BenchError(f"cannot reach the gateway at {url}: {exc}") from None

    def worker() -> None:
        nonlocal errors
        with KeepAliveClient(url, timeout) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    r = client.send(wire[i])
                    elapsed = (time.perf_counter() - started) * 1000
                    with lock:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        if r.status == 200:
                            latencies.setdefault(r.headers.get("x-exp-group", "?"), []).append(elapsed)
                        else:
                            errors += 1
                except HttpError:
                    with lock:
                        errors += 1
                        statuses[0] = statuses.get(0, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return BenchResult(requests, errors, time.perf_counter() - started, latencies, statuses, warmup)


@contextmanager
def naive_service(config: Path | None, startup_timeout: float = 120.0) -> Iterator[str]:
    """Start the naive reference service (``gateway.serving.naive``) in a child process, so
    that its work does not share this process's GIL with the clients; yield its URL."""
    env = {**os.environ, "RECSYS_CONFIG": str(config or "config.yaml")}
    command = [sys.executable, "-m", "uvicorn", "--factory", "gateway.serving.naive:app_from_env"]
    with ServerProcess(
        [*command, "--log-level", "warning"],
        env=env,
        timeout=startup_timeout,
        name="naive reference service",
    ) as server:
        yield server.url


def speedup(gateway: dict, naive: dict) -> dict:
    """How many times faster the gateway is than the naive service (same requests, same run)."""
    out = {
        k: round(naive[k] / gateway[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms") if gateway[k]
    }
    out["throughput_rps"] = round(gateway["throughput_rps"] / naive["throughput_rps"], 2)
    return out


def bench(
    store: FeatureStore,
    url: str,
    *,
    requests: int,
    concurrency: int,
    seed: int = 0,
    limit: int = 5,
    mood: str | None = None,
    compare_mood: str | None = None,
    compare_naive: bool = False,
    config: Path | None = None,
) -> tuple[dict[str, dict], dict]:
    """``recsys bench``: run the requests against ``url`` once, or twice without and with
    ``compare_mood``, or against ``url`` and the naive reference service (``compare_naive``).

    Returns the summaries by label ("" for a single run) and the comparison figures."""
    if compare_mood and compare_naive:
        raise BenchError("use --compare-mood or --compare-naive, not both")

    def once(target: str, with_mood: str | None) -> dict:
        result = run_bench(
            target,
            store.user_ids,
            traffic_window(store),
            requests=requests,
            concurrency=concurrency,
            seed=seed,
            limit=limit,
            mood=with_mood,
        )
        summary = result.summary()
        if result.requests and result.errors == result.requests:
            raise BenchError(
                f"every request failed against {target}: is it running? statuses {summary['statuses']}"
            )
        return summary

    if compare_mood:
        runs = {"without mood": once(url, None), "with mood": once(url, compare_mood)}
        plain, moody = runs["without mood"]["overall"], runs["with mood"]["overall"]
        return runs, {
            "mood_overhead_ms": {
                k: round(moody[k] - plain[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
            }
        }
    if compare_naive:
        runs = {"gateway": once(url, mood)}
        with naive_service(config) as naive_url:
            runs["naive"] = once(naive_url, mood)
        return runs, {"speedup": speedup(runs["gateway"]["overall"], runs["naive"]["overall"])}
    return {"": once(url, mood)}, {}
