"""The soak verdict: the reliability issue's bars, applied per worker."""

from __future__ import annotations

from gateway.loadtest.soak import SoakResult


def _result(p99s, rss, errors=0) -> SoakResult:
    result = SoakResult(rate=100, seconds=60 * len(p99s), errors=errors, requests=6000 * len(p99s))
    result.minutes = [
        {"minute": i + 1, "requests": 6000, "p50_ms": 10.0, "p99_ms": p} for i, p in enumerate(p99s)
    ]
    result.rss_mb = rss
    return result


def test_a_steady_run_passes():
    verdict = _result(
        [20, 25, 29], [(0, 1, 500.0), (1, 2, 480.0), (170, 1, 510.0), (171, 2, 490.0)]
    ).verdict()
    assert verdict["passed"] and verdict["workers_seen"] == 2
    assert verdict["rss_mb_start"] == 980.0 and verdict["rss_mb_end"] == 1000.0


def test_each_bar_can_fail():
    steady = [(0, 1, 500.0), (170, 1, 510.0)]
    assert not _result([20, 31], steady).verdict()["passed"]  # p99 beyond 1.5x the first minute
    assert not _result([20, 20], steady, errors=1).verdict()["passed"]
    leaking = [(0, 1, 500.0), (100, 2, 400.0), (170, 1, 510.0), (171, 2, 421.0)]  # worker 2 grew 5.25 %
    verdict = _result([20, 20], leaking).verdict()
    assert not verdict["passed"] and verdict["rss_growth_pct"] == 5.25
