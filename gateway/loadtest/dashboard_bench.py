"""``recsys bench --compare-dashboard``: what an open dashboard costs the served requests, in one run.

One gateway starts from config.yaml with a viewer token and ``dashboard.refresh_s`` short
(``refresh_s``, 5 s by default: twelve times the recomputations of the default 60 s, to make the
cost visible). The same requests go to it in alternating blocks: *without* the page (nobody
looks: nothing is recomputed) and *with* the page refreshing (a viewer fetches
``/dashboard/data`` every ``poll_s`` seconds, as an open page does every 5 s, so the analysis
child process runs again whenever its results are older than ``refresh_s``). Before each
block without the page the bench waits until no analysis child is running (Linux: /proc), so
the comparison is of the page's cost, not of leftovers. Reported: each side's p50/p95/p99, the
ratios with ÷ without, and how many recomputations the blocks with the page saw.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.loadtest.bench import BenchError, BenchResult, run_bench
from gateway.loadtest.shadow_bench import merge, side_by_side
from gateway.serving.server import ServerProcess

BAR_P99_INCREASE = 0.10
WORKER_MODULE = "gateway.serving.dashboard.worker"


def _children(pid: int) -> dict[int, int]:
    """Every process's parent, from /proc (Linux)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def analysis_children(pid: int) -> list[int]:
    """Processes under ``pid`` running the dashboard's analysis."""
    parents = _children(pid)
    tree, found = {pid}, []
    for _ in range(4):  # gateway → uvicorn workers → analysis child
        tree |= {p for p, parent in parents.items() if parent in tree}
    for p in tree - {pid}:
        try:
            if WORKER_MODULE in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"):
                found.append(p)
        except OSError:
            continue
    return found


def wait_for_no_analysis(pid: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while analysis_children(pid):
        if time.monotonic() > deadline:
            raise BenchError("the dashboard's analysis is still running after 5 minutes")
        time.sleep(0.2)


class Viewer:
    """A browser with the page open: fetches the page once, then its data every ``poll_s`` seconds."""

    def __init__(self, url: str, token: str, poll_s: float) -> None:
        self.url, self.auth, self.poll_s = url, ("viewer", token), poll_s
        self.computed: dict[str, float] = {}  # computed_at -> the analysis' seconds
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, auth=self.auth, timeout=30) as client:
            for path in ("/dashboard", "/dashboard/static/dashboard.js", "/dashboard/static/plotly.min.js"):
                self.errors += client.get(path).status_code != 200
            while not self._stop.is_set():
                r = client.get("/dashboard/data")
                if r.status_code != 200:
                    self.errors += 1
                else:
                    results = r.json()["results"]
                    if results["computed_at"]:
                        self.computed[results["computed_at"]] = results["seconds"]
                    self.errors += results["error"] is not None
                self._stop.wait(self.poll_s)

    def __enter__(self) -> Viewer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dashboard-viewer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)


def compare_dashboard(
    store: FeatureStore,
    config: Path,
    *,
    requests: int,
    concurrency: int,
    workers: int = 1,
    blocks: int = 10,
    seed: int = 0,
    limit: int = 5,
    refresh_s: float = 5.0,
    poll_s: float = 1.0,
) -> tuple[dict[str, dict], dict]:
    """The same requests without and with the page refreshing, in alternating blocks."""
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "RECSYS_DASHBOARD_TOKEN": token, "RECSYS_DASHBOARD__REFRESH_S": str(refresh_s)}
    command = [
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--config",
        str(config),
        "--workers",
        str(workers),
    ]
    per_block = max(1, requests // blocks)
    results: dict[str, list[BenchResult]] = {"without page": [], "with page refreshing": []}
    viewer_errors, seen = 0, {}  # distinct results (computed_at) seen by the viewers -> their seconds
    with ServerProcess(command, env=env, ready_path="/ready", timeout=180, name="gateway") as server:
        for block in range(blocks):
            for label in results:
                common = dict(
                    requests=per_block, concurrency=concurrency, seed=seed + block, limit=limit
                )  # the same requests on both sides
                if label == "without page":
                    wait_for_no_analysis(server.proc.pid)
                    results[label].append(
                        run_bench(server.url, store.user_ids, traffic_window(store), **common)
                    )
                    continue
                with Viewer(server.url, token, poll_s) as viewer:
                    time.sleep(poll_s)  # the page is open and its analysis started before the block
                    results[label].append(
                        run_bench(server.url, store.user_ids, traffic_window(store), **common)
                    )
                viewer_errors += viewer.errors
                seen.update(viewer.computed)
    summaries = {label: merge(parts).summary() for label, parts in results.items()}
    for label, summary in summaries.items():
        if summary["errors"] == summary["requests"]:
            raise BenchError(f"every request failed {label}: statuses {summary['statuses']}")
    return summaries, {
        "dashboard": {
            "refresh_s": refresh_s,
            "poll_s": poll_s,
            "results_seen": len(seen),
            "analysis_seconds_median": round(float(np.median(list(seen.values()))), 2) if seen else None,
            "viewer_errors": viewer_errors,
        },
        **side_by_side(summaries["without page"], summaries["with page refreshing"], BAR_P99_INCREASE),
    }
