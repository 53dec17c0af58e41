"""``recsys bench --scale-store DIR ...``: the serving path's cost as the catalogue grows.

For each feature-store version (one per catalogue size), a fresh child process loads what a
gateway worker loads (store without the event log, catalogue, the config's models), then
times ``recommend`` in process, sequentially, per arm: once with each ``serving.candidates``
value asked for (``all`` = the whole catalogue), on the same requests, in alternating blocks.
It reports p50/p99 per arm and setting (wall clock, and the CPU time of the request's thread,
which a busy machine's queueing does not inflate), the worker's resident memory (after loading
and a few two-stage requests, before any whole-catalogue one; and at the end) and the load
time. HTTP
is left out (constant in the catalogue's size; ``recsys bench`` measures it).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from pathlib import Path

import numpy as np

BLOCK = 25  # requests per block; the settings alternate block by block


def _memory_gb() -> dict[str, float]:
    """This process's resident memory (GB): all of it, the anonymous part (its own heap and
    arrays) and the file-backed part (mapped files: libraries, memory-mapped artifacts, whose
    pages the page cache shares between workers)."""
    fields = {"VmRSS:": "rss_gb", "RssAnon:": "anon_gb", "RssFile:": "file_gb"}
    out = {name: float("nan") for name in fields.values()}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line else ""
        if key in fields:
            out[fields[key]] = round(int(line.split()[1]) / 1e6, 3)
    return out


def measure_store(store_dir: str, config: str, settings: list[int | None], requests: int, seed: int) -> dict:
    """Latency of the recommendation path per arm and candidates setting for one store."""
    from gateway.features.dataset import traffic_window
    from gateway.features.store import FeatureStore
    from gateway.loadtest.bench import latency_stats
    from gateway.serving.recommend import recommend
    from gateway.serving.state import Catalogue, build_snapshot

    began = time.perf_counter()
    store = FeatureStore.load(Path(store_dir), keep_log=False)
    catalogue = Catalogue.load(Path(store_dir), store)
    snapshot = build_snapshot(config, store)
    loaded = time.perf_counter() - began
    rng = np.random.default_rng(seed)
    start, end = traffic_window(store, 7)
    users = rng.choice(store.user_ids, requests)
    times = rng.integers(start, end, requests)
    snapshots = {s: dataclasses.replace(snapshot, candidates=s) for s in settings}
    latencies: dict[str, dict[str, list[float]]] = {_label(s): {} for s in settings}
    cpu: dict[str, dict[str, list[float]]] = {_label(s): {} for s in settings}
    sizes: dict[str, list[int]] = {_label(s): [] for s in settings}
    memory = None
    for s in sorted(settings, key=lambda s: s is None):  # warm-up: first calls load code paths and caches
        for i in range(5):
            recommend(snapshots[s], store, catalogue, int(users[i]), int(times[i]), 5)
        if s is not None and memory is None:  # a worker serving two stages (before any whole-catalogue request)
            memory = _memory_gb()
    for block in range(0, requests, BLOCK):
        for s in settings:
            for i in range(block, min(block + BLOCK, requests)):
                t0, c0 = time.perf_counter(), time.thread_time()
                result = recommend(snapshots[s], store, catalogue, int(users[i]), int(times[i]), 5)
                ms, cpu_ms = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
                latencies[_label(s)].setdefault(result.assignment.arm, []).append(ms)
                cpu[_label(s)].setdefault(result.assignment.arm, []).append(cpu_ms)
                if result.candidates is not None:
                    sizes[_label(s)].append(len(result.candidates))
    return {
        "store": store_dir,
        "posts": len(store.post_ids),
        "retrieval": store.retrieval.version if store.retrieval else None,
        "rss_gb": (memory or _memory_gb())["rss_gb"],
        "memory_gb": memory or _memory_gb(),
        "memory_gb_end": _memory_gb(),
        "load_seconds": round(loaded, 1),
        "settings": {
            label: {
                "arms": {arm: latency_stats(v) for arm, v in sorted(arms.items())},
                # CPU time of the request's thread: what a busy machine's waiting does not inflate
                "cpu": {arm: latency_stats(v) for arm, v in sorted(cpu[label].items())},
                "candidates_per_request": round(float(np.mean(sizes[label])), 1) if sizes[label] else None,
            }
            for label, arms in latencies.items()
        },
    }


def _label(setting: int | None) -> str:
    return "all" if setting is None else str(setting)


def _run(args) -> dict:
    return measure_store(*args)


def scale_bench(
    store_dirs: list[Path], config: Path, settings: list[int | None], requests: int, seed: int
) -> list[dict]:
    """``measure_store`` for each store, each in its own fresh process (memory per worker)."""
    context = multiprocessing.get_context("spawn")
    out = []
    for store_dir in store_dirs:
        with context.Pool(1) as pool:
            out.append(pool.apply(_run, ((str(store_dir), str(config), settings, requests, seed),)))
    return out


def plot_scale(results: list[dict], path: Path) -> Path:
    """CPU p50 per arm and setting against the catalogue's size (log-log), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    posts = [r["posts"] for r in results]
    for label in results[0]["settings"]:
        for arm in results[0]["settings"][label]["arms"]:
            p50 = [r["settings"][label]["cpu"].get(arm, {}).get("p50_ms", np.nan) for r in results]
            name = "whole catalogue" if label == "all" else f"{label} candidates"
            ax.plot(posts, p50, marker="o", linestyle="-" if label != "all" else "--", label=f"{arm}, {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("posts in the catalogue")
    ax.set_ylabel("CPU ms per request, p50 (in process, sequential)")
    ax.set_title("Serving cost as the catalogue grows (2-core machine)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
