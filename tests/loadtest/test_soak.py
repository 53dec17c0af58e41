"""The soak: its verdict (each bar fails a run and says so) and, against the real server, a run
far past capacity that ends on time and fails instead of draining a backlog."""

from __future__ import annotations

import time

import pytest

from gateway.features.dataset import traffic_window
from gateway.loadtest.soak import Objectives, SoakResult, run_soak
from tests.conftest import LiveServer, write_config


def _result(p99s, rss, errors=0, **counts) -> SoakResult:
    result = SoakResult(rate=100, seconds=60 * len(p99s), errors=errors, requests=6000 * len(p99s), **counts)
    result.minutes = [
        {"minute": i + 1, "requests": 6000, "p50_ms": 10.0, "p99_ms": p} for i, p in enumerate(p99s)
    ]
    result.latencies_ms = [10.0] * (result.requests - result.missed - 1) + [max(p99s)]
    result.rss_mb = rss
    return result


STEADY = [(0, 1, 500.0), (170, 1, 510.0)]


def test_a_steady_run_passes():
    verdict = _result(
        [20, 25, 29], [(0, 1, 500.0), (1, 2, 480.0), (170, 1, 510.0), (171, 2, 490.0)]
    ).verdict()
    assert verdict["passed"] and verdict["workers_seen"] == 2 and verdict["failures"] == []
    assert verdict["rss_mb_start"] == 980.0 and verdict["rss_mb_end"] == 1000.0
    assert verdict["achieved_rps"] == 100.0 and verdict["p99_ms"] == 10.0


def _fails(result: SoakResult, words: str, objectives: Objectives | None = None) -> None:
    verdict = result.verdict(objectives)
    assert not verdict["passed"]
    assert any(words in failure for failure in verdict["failures"]), verdict["failures"]


def test_each_bar_fails_the_run_and_says_which():
    _fails(_result([20, 31], STEADY), "1.5x the first minute")
    _fails(_result([20, 20], STEADY, errors=13), "errors 0.11% > budget 0.10%")
    leaking = [(0, 1, 500.0), (100, 2, 400.0), (170, 1, 510.0), (171, 2, 421.0)]  # worker 2 grew 5.25 %
    _fails(_result([20, 20], leaking), "grew +5.25 %")
    assert _result([20, 20], leaking).verdict()["rss_growth_pct"] == 5.25
    _fails(_result([20, 20], STEADY, shed=121), "shed 1.01% > budget 1.00%")
    assert _result([20, 20], STEADY, shed=120).verdict()["passed"]
    # 7 % of the requests never answered: short of the rate, and the p99 lies among them
    missed = _result([20, 20], STEADY, missed=840)
    _fails(missed, "achieved 93.0 req/s < target 100")
    _fails(missed, "p99 beyond the run (missed requests) > objective 50 ms")
    slow = _result([20, 20], STEADY)
    slow.latencies_ms = [60.0] * 12000
    _fails(slow, "p99 60.0 ms > objective 50 ms")
    assert slow.verdict(Objectives(p99_ms=80))["passed"]


def test_a_collapse_ends_on_time_and_fails(tiny_store_dir, tiny_models, tiny_db, tiny_store, tmp_path):
    """One worker without admission control, sent far more than it can answer: the soak stops at
    its end plus the grace, counts the rest as missed, and fails on the rate and the p99."""
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",  # not the shared world: its exposures are counted elsewhere
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        serving={"admission": {"max_in_flight": 0}, "deadline_ms": 0},
    )
    server = LiveServer(config, {})
    try:
        started = time.perf_counter()
        result = run_soak(
            server.url,
            tiny_store.user_ids,
            traffic_window(tiny_store),
            rate=3000,
            seconds=4,
            warmup=0,
            grace=1,
            workers=16,
        )
        took = time.perf_counter() - started
        gentle = run_soak(
            server.url, tiny_store.user_ids, traffic_window(tiny_store), rate=20, seconds=4, warmup=1, grace=1
        )
    finally:
        server.stop()
    assert took < 4 + 1 + 3  # the run, the grace, and the memory readings
    verdict = result.verdict()
    assert not verdict["passed"] and verdict["missed"] > verdict["requests"] / 2
    assert any("achieved" in f for f in verdict["failures"])
    assert any("p99" in f and "objective" in f for f in verdict["failures"])
    failures = gentle.verdict(Objectives(p99_ms=2000))["failures"]  # a busy machine
    assert not [f for f in failures if "memory" not in f]  # 4 s are too short to judge memory growth
    assert gentle.missed == 0 and gentle.errors == 0
    assert gentle.verdict()["achieved_rps"] == pytest.approx(20, rel=0.1)
