"""Bootstrap over users for a quantile difference."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.analysis.bootstrap import bootstrap_quantile_difference


def _latencies(rng, users, scale=1.0):
    """Per-request latencies of ``users`` users with 1–19 requests each; a user's requests share a level."""
    per_user = rng.integers(1, 20, users)
    owner = np.repeat(np.arange(users), per_user)
    level = rng.lognormal(3.0, 0.4, users)[owner]
    return level * rng.lognormal(0.0, 0.3, len(owner)) * scale, owner


def test_estimate_is_the_inverted_cdf_quantile_difference():
    rng = np.random.default_rng(0)
    for n in (7, 100, 1001):
        c, t = rng.normal(100, 10, n), rng.normal(102, 10, n + 3)
        for q in (0.5, 0.9, 0.99):
            res = bootstrap_quantile_difference(c, t, q=q, n_resamples=20)
            expected = np.quantile(t, q, method="inverted_cdf") - np.quantile(c, q, method="inverted_cdf")
            assert res.estimate == pytest.approx(expected)


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    c, cu = _latencies(rng, 300)
    t, tu = _latencies(rng, 300)
    a = bootstrap_quantile_difference(c, t, control_users=cu, treatment_users=tu, n_resamples=200, seed=7)
    b = bootstrap_quantile_difference(c, t, control_users=cu, treatment_users=tu, n_resamples=200, seed=7)
    assert a == b
    assert a != bootstrap_quantile_difference(
        c, t, control_users=cu, treatment_users=tu, n_resamples=200, seed=8
    )


def test_resampling_users_is_wider_than_resampling_requests():
    # Requests of one user are correlated: treating them as independent understates the uncertainty.
    rng = np.random.default_rng(2)
    c, cu = _latencies(rng, 1000)
    t, tu = _latencies(rng, 1000)
    by_user = bootstrap_quantile_difference(
        c, t, q=0.9, control_users=cu, treatment_users=tu, n_resamples=400
    )
    by_request = bootstrap_quantile_difference(c, t, q=0.9, n_resamples=400)
    assert by_user.estimate == by_request.estimate
    assert by_user.ci[1] - by_user.ci[0] > 1.5 * (by_request.ci[1] - by_request.ci[0])


def test_p99_at_5k_users_and_1000_resamples():
    rng = np.random.default_rng(3)
    c, cu = _latencies(rng, 5000)
    t, tu = _latencies(rng, 5000, scale=1.15)
    res = bootstrap_quantile_difference(c, t, control_users=cu, treatment_users=tu, n_resamples=1000, seed=1)
    assert res.ci[0] <= res.estimate <= res.ci[1] and res.ci[0] > 0 and res.p_value < 0.01
    assert (
        res.lower > res.ci[0] and res.upper < res.ci[1]
    )  # one-sided 95 % bounds sit inside the 95 % interval
    same = bootstrap_quantile_difference(
        c, c * 1.0, control_users=cu, treatment_users=cu, n_resamples=300, seed=2
    )
    assert same.estimate == 0 and same.p_value > 0.2


def test_coverage_on_a_known_difference():
    # Lognormal latencies per user (one value per user): the true p90 difference is known in closed form.
    rng = np.random.default_rng(4)
    z90 = 1.2815515655446004
    truth = np.exp(3.1 + 0.5 * z90) - np.exp(3.0 + 0.5 * z90)
    covered = 0
    runs = 60
    for _ in range(runs):
        c, t = rng.lognormal(3.0, 0.5, 800), rng.lognormal(3.1, 0.5, 800)
        res = bootstrap_quantile_difference(c, t, q=0.9, n_resamples=200, seed=int(rng.integers(1 << 31)))
        covered += res.ci[0] <= truth <= res.ci[1]
    assert covered / runs >= 0.85


def test_bad_input():
    with pytest.raises(ValueError):
        bootstrap_quantile_difference([], [1.0])
    with pytest.raises(ValueError):
        bootstrap_quantile_difference([1.0, np.nan], [1.0])
    with pytest.raises(ValueError):
        bootstrap_quantile_difference([1.0, 2.0], [1.0], control_users=[1])
    with pytest.raises(ValueError):
        bootstrap_quantile_difference([1.0], [1.0], q=1.0)
