"""``recsys bench --overload``: the targets' arithmetic, and wrk's Lua script against the real server."""

from __future__ import annotations

import shutil

import pytest
import yaml

from gateway.loadtest.overload import (
    WRK_SCRIPT,
    _unbounded,
    merge_rounds,
    request_paths,
    run_wrk,
    summarise,
    verdict,
)
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


def test_rounds_merge_into_one_phase_with_the_worst_percentiles():
    first = _phase(1000, 10, 900, shed=100, p99=40.0)
    second = _phase(3000, 10, 1000, shed=2000, p99=70.0, statuses={"200": 2990, "503": 10})
    merged = merge_rounds([first, second])
    assert merged["requests"] == 4000 and merged["seconds"] == 20
    assert merged["throughput_rps"] == 200.0 and merged["goodput_rps"] == 95.0 and merged["shed"] == 2100
    assert merged["p99_ms"] == 70.0 and merged["statuses"] == {"200": 3990, "503": 10}
    assert merge_rounds([first]) is first


def test_the_unbounded_gateway_is_the_same_config_without_admission_control_or_deadline(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"serving": {"admission": {"max_in_flight": 3, "overflow": "503"}, "deadline_ms": 40}})
    )
    serving = yaml.safe_load(_unbounded(config, tmp_path / "u.yaml").read_text())["serving"]
    assert serving == {"admission": {"max_in_flight": 0, "overflow": "503"}, "deadline_ms": 0}


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
