"""``recsys bench --overload``: the targets' arithmetic, and wrk's Lua script against the real server."""

from __future__ import annotations

import shutil

import pytest

from gateway.loadtest.overload import WRK_SCRIPT, request_paths, run_wrk, summarise, verdict
from tests.conftest import LiveServer, write_config


def _phase(requests, seconds, model, shed=0, p99=20.0, statuses=None, errors=0) -> dict:
    served = {"model": model, **({"fallback:shed": shed} if shed else {})}
    raw = {"seconds": seconds, "requests": requests, "socket_errors": errors, "p50_ms": 5.0, "p90_ms": 9.0}
    return summarise(
        {**raw, "p99_ms": p99, "max_ms": p99, "statuses": statuses or {"200": requests}, "served_by": served}
    )


def test_targets():
    light = _phase(4000, 10, 4000)
    good = verdict(light, _phase(12000, 10, 3300, shed=8700, p99=45.0), 200)
    assert all(check["met"] for check in good.values())
    assert good["goodput_64_over_throughput_4"]["value"] == 0.825
    bad = verdict(
        _phase(4000, 10, 3990, shed=10),
        _phase(5000, 10, 3000, shed=2000, p99=51.0, statuses={"200": 4990, "500": 10}),
        200,
    )
    assert not any(check["met"] for check in bad.values())
    assert verdict(light, _phase(9000, 10, 3300, shed=5700, statuses={"200": 3300, "503": 5700}), 503)[
        "statuses_64"
    ]["met"]


def test_wrk_counts_statuses_and_who_served(tiny_store_dir, tiny_models, tiny_db, tiny_store, tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is required (apt-get install wrk)")
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",  # not the shared world: its exposures are counted elsewhere
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        serving={"admission": {"max_in_flight": 1, "shed_delay_ms": 0}, "deadline_ms": 0},
    )
    script, paths = tmp_path / "s.lua", tmp_path / "paths.txt"
    script.write_text(WRK_SCRIPT)
    paths.write_text("\n".join(request_paths(tiny_store, 500, 0)) + "\n")
    server = LiveServer(config, {})
    try:
        run = run_wrk(server.url, 8, 2, script, paths)
    finally:
        server.stop()
    assert run["requests"] > 0 and run["statuses"] == {"200": run["requests"]}
    assert set(run["served_by"]) == {"model", "fallback:shed"}  # 8 connections, 1 slot: both kinds
    assert run["served_by"]["model"] + run["shed"] == run["requests"]
    assert 0 < run["p50_ms"] <= run["p99_ms"]
