"""``recsys bench --compare-shadow``: what shadow scoring costs the served requests, in one run.

Two gateways start from the same config.yaml: one as configured (its arms' ``shadow:`` models
score off the response path), one from a copy without any ``shadow:`` key. Both stay up for
the whole run and get the same requests in alternating blocks (without, with, without, …),
so drift of a shared machine falls on both alike. Reported: each side's p50/p95/p99, the
ratios with ÷ without, and how much shadow work the shadowed gateway did — the requests whose
shadow model scored them, read back from the log (X-Request-ID ``<run>-<i>``), since under
load a shadow may drop work rather than delay responses.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import yaml
from sqlalchemy import Engine, text

from gateway.config import load_settings
from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.loadtest.bench import BenchError, BenchResult, run_bench
from gateway.serving.server import ServerProcess
from gateway.storage import connect, table_exists
from gateway.tables import Tables

BAR_P99_INCREASE = 0.10


def without_shadows(config: Path, out: Path) -> Path:
    """A copy of ``config`` whose arms have no ``shadow:`` key (paths stay relative to the cwd)."""
    data = yaml.safe_load(config.read_text()) or {}
    shadows = 0
    for arm in data.get("experiment", {}).get("arms", []):
        shadows += arm.pop("shadow", None) is not None
    if not shadows:
        raise BenchError(f"{config}: no arm has a `shadow:` model; add one to compare with and without")
    out.write_text(yaml.safe_dump(data))
    return out


def start_gateway(config: Path, workers: int, name: str) -> ServerProcess:
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
    return ServerProcess(command, env=dict(os.environ), ready_path="/ready", timeout=180, name=name)


def merge(results: list[BenchResult]) -> BenchResult:
    latencies: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    for r in results:
        for group, values in r.latencies_ms.items():
            latencies.setdefault(group, []).extend(values)
        for status, count in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return BenchResult(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        latencies,
        statuses,
        sum(r.warmup for r in results),
    )


def shadow_work(engine: Engine, run_id: str) -> dict:
    """Of this run's requests that named a shadow model, how many it scored (the rest: dropped)."""
    if not table_exists(engine, Tables.SHADOW_EXPOSURES):
        return {"shadowed": 0, "scored": 0, "dropped": 0}
    with engine.connect() as conn:
        shadowed = conn.execute(
            text(
                f"SELECT COUNT(*) FROM {Tables.EXPOSURES} WHERE request_id LIKE :run AND shadow_version IS NOT NULL"
            ),
            {"run": f"{run_id}-%"},
        ).scalar_one()
        scored = conn.execute(
            text(f"SELECT COUNT(*) FROM {Tables.SHADOW_EXPOSURES} WHERE request_id LIKE :run"),
            {"run": f"{run_id}-%"},
        ).scalar_one()
    return {"shadowed": int(shadowed), "scored": int(scored), "dropped": int(shadowed) - int(scored)}


def compare_shadow(
    store: FeatureStore,
    config: Path,
    *,
    requests: int,
    concurrency: int,
    workers: int = 2,
    blocks: int = 10,
    seed: int = 0,
    limit: int = 5,
) -> tuple[dict[str, dict], dict]:
    """The same requests against a gateway without and with its shadow models, in alternating
    blocks; returns the summaries by label and the comparison (ratios, shadow work, the bar)."""
    settings = load_settings(config)
    run_id = f"shadowbench{uuid.uuid4().hex[:8]}"
    per_block = max(1, requests // blocks)
    results: dict[str, list[BenchResult]] = {"without shadow": [], "with shadow": []}
    tags = {"without shadow": "off", "with shadow": "on"}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recsys-shadow-bench-")))
        plain = without_shadows(config, folder / "config.yaml")
        servers = {
            "without shadow": stack.enter_context(start_gateway(plain, workers, "gateway without shadow")),
            "with shadow": stack.enter_context(start_gateway(config, workers, "gateway with shadow")),
        }
        for block in range(blocks):
            for label, server in servers.items():
                results[label].append(
                    run_bench(
                        server.url,
                        store.user_ids,
                        traffic_window(store),
                        requests=per_block,
                        concurrency=concurrency,
                        seed=seed + block,  # the same requests on both sides
                        limit=limit,
                        request_ids=f"{run_id}-{tags[label]}-{block}",
                    )
                )
        servers["with shadow"].stop()  # graceful: the shadow queue is finished and the logs flushed
    summaries = {label: merge(parts).summary() for label, parts in results.items()}
    for label, summary in summaries.items():
        if summary["errors"] == summary["requests"]:
            raise BenchError(
                f"every request failed against the gateway {label}: statuses {summary['statuses']}"
            )
    work = shadow_work(connect(settings.database.url), f"{run_id}-on")
    return summaries, {
        "shadow_work": work,
        **side_by_side(summaries["without shadow"], summaries["with shadow"], BAR_P99_INCREASE),
    }


def side_by_side(without: dict, with_: dict, bar_p99_increase: float) -> dict:
    """Latency ratios with ÷ without (same requests, same run) and whether p99 stays within the bar."""
    ratios = {
        k: round(with_["overall"][k] / without["overall"][k], 3)
        for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
    }
    return {
        "with_over_without": ratios,
        "p99_increase": round(ratios["p99_ms"] - 1, 3),
        "bar_p99_increase": bar_p99_increase,
        "passed": bool(np.isfinite(ratios["p99_ms"]) and ratios["p99_ms"] - 1 <= bar_p99_increase),
    }
