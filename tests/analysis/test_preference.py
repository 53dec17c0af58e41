"""The interleaving preference: hand-derived numbers, the user-clustered variance, degenerate input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis import power
from gateway.analysis.effects import ZERO_VARIANCE
from gateway.analysis.preference import (
    NO_WINNER,
    TOO_FEW_USERS,
    preference_statistic,
    preference_test,
    users_for_power,
    winners,
)


def test_winners_are_the_team_with_more_credited_likes():
    assert winners([0, 2, 1, 0, 3], [0, 1, 1, 2, 4]).tolist() == [0, -1, 0, 1, 1]


def test_preference_by_hand():
    # three users: (wins control, wins test) = (1, 2), (0, 1), (2, 0)
    stat = preference_statistic([1, 0, 2], [2, 1, 0])
    result = preference_test(stat)
    assert result.preference == pytest.approx((2 + 1 + 0 - 1 - 0 - 2) / (3 + 1 + 2))  # 0
    # delta method by hand: m = (1, 1, -2), d = (3, 1, 2); R = 0 so Var = Var(m) / mean(d)^2
    m, d = np.array([1.0, 1.0, -2.0]), np.array([3.0, 1.0, 2.0])
    assert result.variance == pytest.approx(m.var(ddof=1) / d.mean() ** 2)
    se = math.sqrt(result.variance / 3)
    assert result.ci95 == pytest.approx((-stats.t.ppf(0.975, 2) * se, stats.t.ppf(0.975, 2) * se))
    assert result.p_value == pytest.approx(1.0) and result.ok


def test_a_clear_preference_is_significant_and_the_interval_is_the_delta_methods():
    rng = np.random.default_rng(0)
    decided = rng.integers(1, 6, 2000)
    wins_test = rng.binomial(decided, 0.6)
    stat = preference_statistic(decided - wins_test, wins_test)
    result = preference_test(stat)
    assert result.preference == pytest.approx((2 * wins_test.sum() - decided.sum()) / decided.sum())
    assert 0.15 < result.preference < 0.25 and result.p_value < 1e-6
    m, d = 2.0 * wins_test - decided, decided.astype(float)
    ratio = m.sum() / d.sum()
    linear = (m - ratio * d) / d.mean()  # the delta method's linearisation per user
    assert result.variance == pytest.approx(linear.var(ddof=1), rel=1e-9)


def test_clustering_widens_the_interval_when_a_users_requests_agree():
    """Users who always prefer the same side: a per-request test would be far too confident."""
    rng = np.random.default_rng(1)
    decided = np.full(400, 10)
    prefers_test = rng.random(400) < 0.5
    wins_test = np.where(prefers_test, decided, 0)
    clustered = preference_test(preference_statistic(decided - wins_test, wins_test))
    per_request_se = math.sqrt(1 / decided.sum())  # the preference of 4,000 independent requests
    assert math.sqrt(clustered.variance / 400) > 2.5 * per_request_se


def test_null_p_values_are_uniform():
    rng = np.random.default_rng(2)
    p_values = []
    for _ in range(400):
        decided = rng.integers(0, 5, 300)
        wins_test = rng.binomial(decided, 0.5)
        p_values.append(preference_test(preference_statistic(decided - wins_test, wins_test)).p_value)
    p_values = np.array(p_values)
    assert 0.02 < np.mean(p_values < 0.05) < 0.09
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


@pytest.mark.parametrize(
    ("control", "test", "message"),
    [
        ([1], [2], TOO_FEW_USERS),
        ([0, 0, 0], [0, 0, 0], NO_WINNER),
        ([0, 0], [3, 1], ZERO_VARIANCE),  # every user always prefers test: no variance to claim from
    ],
)
def test_degenerate_input_never_wins(control, test, message):
    result = preference_test(preference_statistic(control, test))
    assert result.message == message and not result.ok
    assert result.p_value == 1.0 and all(math.isnan(x) for x in result.ci95)


def test_users_for_power_is_the_one_sample_formula():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    n = users_for_power(0.1, 0.5)
    assert n == pytest.approx(z**2 * 0.5 / 0.1**2, abs=2)
    # at that n the one-sample power is 80 % (both tails counted)
    assert power.power_at(0.1, math.sqrt(0.5 / n)) >= 0.8 > power.power_at(0.1, math.sqrt(0.5 / (n - 2)))
