"""``recsys bench --overload``: does the gateway shed load instead of queueing it? One run.

A gateway starts from ``--config`` with ``--workers`` processes; ``wrk`` (an efficient external
load generator, closed loop) sends it the same request mix with 4, then 64 connections, each for
``seconds``; optionally other configs (``--against``, e.g. other admission settings) and
(``--compare-unbounded``) the same config with admission control and the deadline off get the
same phases in the same run, in turn, for ``--rounds`` rounds. Reported per phase: p50/p99
of **all** responses (shed ones included), every status code, how many were served by the
model, shed or past the deadline, and the **goodput** (model-served 200s per second). Targets
(README "Overload"): at 64 connections p99 ≤ 50 ms, goodput ≥ 80 % of the 4-connection
throughput, no status but 200 and the configured 503; at 4 connections nothing shed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import yaml

from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.loadtest.bench import BenchError
from gateway.loadtest.shadow_bench import start_gateway

P99_BAR_MS = 50.0
GOODPUT_BAR = 0.8

# Each wrk thread walks the request list from its own offset and counts statuses and who served
# each answer; done() prints one JSON line with wrk's latency percentiles (all responses).
WRK_SCRIPT = r"""
local paths, threads, counter = {}, {}, 0
function setup(thread)
  thread:set("id", counter); counter = counter + 1; table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  i = id * 7919 % #paths; statuses = {}; served = {}
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local by = headers["X-Recsys-Served-By"] or headers["x-recsys-served-by"] or "none"
  served[by] = (served[by] or 0) + 1
end
function done(summary, latency, requests)
  local st, sv = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do st[tostring(k)] = (st[tostring(k)] or 0) + v end
    for k, v in pairs(t:get("served")) do sv[k] = (sv[k] or 0) + v end
  end
  local function obj(t)
    local parts = {}
    for k, v in pairs(t) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  io.write(string.format(
    'WRK {"seconds": %.3f, "requests": %d, "socket_errors": %d, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "statuses": %s, "served_by": %s}\n',
    summary.duration / 1e6, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, obj(st), obj(sv)))
end
"""


def request_paths(store: FeatureStore, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lo, hi = traffic_window(store)
    users = rng.choice(store.user_ids, count)
    times = rng.integers(lo, hi, count)
    return [
        f"/post/recommendations/?id={int(u)}&time={np.datetime64(int(t), 's')}"
        for u, t in zip(users, times, strict=True)
    ]


def run_wrk(url: str, connections: int, seconds: float, script: Path, paths: Path, threads: int = 2) -> dict:
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(paths),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    return summarise(json.loads(line[4:]))


def summarise(raw: dict) -> dict:
    seconds = raw["seconds"] or 1.0
    served = raw["served_by"]
    model = served.get("model", 0)
    return {
        **raw,
        "throughput_rps": round(raw["requests"] / seconds, 1),
        "goodput_rps": round(model / seconds, 1),
        "shed": sum(n for k, n in served.items() if k != "model"),
    }


def verdict(light: dict, heavy: dict, overflow_status: int) -> dict:
    """The issue's targets, each with its figure."""
    allowed = {"200", str(overflow_status)}
    ratio = heavy["goodput_rps"] / light["throughput_rps"] if light["throughput_rps"] else 0.0
    checks = {
        "p99_all_64_ms": (heavy["p99_ms"], heavy["p99_ms"] <= P99_BAR_MS),
        "goodput_64_over_throughput_4": (round(ratio, 3), ratio >= GOODPUT_BAR),
        "statuses_64": (heavy["statuses"], set(heavy["statuses"]) <= allowed and not heavy["socket_errors"]),
        "shed_4": (light["shed"], light["shed"] == 0),
    }
    return {name: {"value": value, "met": met} for name, (value, met) in checks.items()}


def merge_rounds(phases: list[dict]) -> dict:
    """One phase's figures over several rounds: counts and rates summed over the rounds' time,
    p50/p90/p99 the worst round's (wrk's percentiles cannot be merged)."""
    if len(phases) == 1:
        return phases[0]
    counts: dict[str, dict[str, int]] = {"statuses": {}, "served_by": {}}
    for phase in phases:
        for key, merged in counts.items():
            for k, n in phase[key].items():
                merged[k] = merged.get(k, 0) + n
    raw = {
        "seconds": sum(p["seconds"] for p in phases),
        "requests": sum(p["requests"] for p in phases),
        "socket_errors": sum(p["socket_errors"] for p in phases),
        **{q: max(p[q] for p in phases) for q in ("p50_ms", "p90_ms", "p99_ms", "max_ms")},
        **counts,
    }
    return summarise(raw)


def bench_overload(
    store: FeatureStore,
    config: Path,
    *,
    workers: int = 2,
    seconds: float = 20.0,
    seed: int = 0,
    compare_unbounded: bool = False,
    against: list[Path] | tuple[Path, ...] = (),
    rounds: int = 1,
) -> dict:
    """``config`` and each ``against`` config (and, with ``compare_unbounded``, ``config`` without
    admission control and deadline) as gateways that stay up for the whole run; each round gives
    each gateway 4 connections, then 64, in turn, so that the drift of a shared machine falls on
    all of them alike. Targets are checked per config on its rounds' merged figures."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="recsys-overload-") as tmp:
        script, paths = Path(tmp) / "overload.lua", Path(tmp) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        paths.write_text("\n".join(request_paths(store, 20_000, seed)) + "\n")
        configs = {"bounded": config}
        for other in against:
            configs[other.stem if other.stem not in configs else f"{other.stem}-{len(configs)}"] = other
        if compare_unbounded:
            configs["unbounded"] = _unbounded(config, Path(tmp) / "unbounded.yaml")
        phases: dict[str, list[dict]] = {}
        load: list[float] = []
        with ExitStack() as stack:
            servers = {
                name: stack.enter_context(start_gateway(path, workers, f"gateway {name}"))
                for name, path in configs.items()
            }
            for server in servers.values():
                run_wrk(server.url, 4, 3, script, paths)  # warm-up: connections, caches, both workers
            for _ in range(rounds):
                for name, server in servers.items():
                    for connections in (4, 64):
                        load.append(os.getloadavg()[0])
                        phase = run_wrk(server.url, connections, seconds, script, paths)
                        phases.setdefault(f"{name}_{connections}", []).append(phase)
            load.append(os.getloadavg()[0])
    runs = {name: merge_rounds(each) for name, each in phases.items()}
    targets = {
        name: verdict(runs[f"{name}_4"], runs[f"{name}_64"], _overflow_status(path))
        for name, path in configs.items()
        if name != "unbounded"
    }
    return {
        "workers": workers,
        "seconds": seconds,
        "rounds": rounds,
        "load_average": [min(load), max(load)],
        "runs": runs,
        "targets": targets,
    }


def _overflow_status(config: Path) -> int:
    settings = yaml.safe_load(config.read_text()) or {}
    admission = settings.get("serving", {}).get("admission", {})
    return 503 if str(admission.get("overflow", "fallback")) == "503" else 200


def _unbounded(config: Path, out: Path) -> Path:
    """``config`` as before admission control: every request queued, no deadline."""
    settings = yaml.safe_load(config.read_text()) or {}
    serving = settings.setdefault("serving", {})
    serving["admission"] = {**serving.get("admission", {}), "max_in_flight": 0}
    serving["deadline_ms"] = 0
    out.write_text(yaml.safe_dump(settings))
    return out
