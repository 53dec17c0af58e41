"""Power, users per arm and MDE: the textbook formulas, their inverses, and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.power import (
    Design,
    days_needed,
    minimum_detectable_effect,
    plan,
    power,
    power_at,
    users_per_arm,
)
from gateway.analysis.statistics import RatioStatistic

SIGMA2, MDE = 0.09, 0.01  # per-user delta-method variance of Hitrate@5, an absolute lift of 1 point


def test_users_per_arm_is_the_smallest_n_with_enough_power():
    n = users_per_arm(MDE, SIGMA2)
    textbook = 2 * SIGMA2 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 / MDE**2
    assert n == math.ceil(textbook) or n == math.ceil(textbook) - 1
    assert power(MDE, SIGMA2, n) >= 0.8 > power(MDE, SIGMA2, n - 1)


def test_mde_inverts_users_per_arm():
    for n in (500, 5_000, 50_000):
        mde = minimum_detectable_effect(SIGMA2, n)
        assert mde == pytest.approx(math.sqrt(2 * SIGMA2 / n) * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)))
        assert power(mde, SIGMA2, n) == pytest.approx(0.8, abs=1e-4)  # the ignored tail is tiny
        assert users_per_arm(mde, SIGMA2) in (n - 1, n)


def test_cuped_scales_the_variance():
    cuped = Design(variance_reduction=0.4)
    assert users_per_arm(MDE, SIGMA2, cuped) == pytest.approx(0.6 * users_per_arm(MDE, SIGMA2), abs=2)
    assert minimum_detectable_effect(SIGMA2, 10_000, cuped) == pytest.approx(
        math.sqrt(0.6) * minimum_detectable_effect(SIGMA2, 10_000)
    )
    with pytest.raises(ValueError):
        power(MDE, SIGMA2, 100, Design(variance_reduction=1.0))
    with pytest.raises(ValueError):
        Design(power=0.01)


def test_sequential_and_several_comparisons_need_more_users():
    fixed = users_per_arm(MDE, SIGMA2)
    design = Design(sequential_tuning=2 * fixed)
    sequential = users_per_arm(MDE, SIGMA2, design)
    assert sequential > fixed
    assert power(MDE, SIGMA2, sequential, design) >= 0.8 > power(MDE, SIGMA2, sequential - 1, design)
    mde = minimum_detectable_effect(SIGMA2, sequential, design)
    assert power(mde, SIGMA2, sequential, design) == pytest.approx(0.8, abs=1e-4)
    assert users_per_arm(MDE, SIGMA2, Design(comparisons=2)) == users_per_arm(
        MDE, SIGMA2, Design(alpha=0.025)
    )


def test_power_is_two_tailed_and_symmetric():
    se = 0.004
    assert power_at(0.0, se) == pytest.approx(0.05)
    assert power_at(0.01, se) == power_at(-0.01, se)
    z = stats.norm.ppf(0.975)
    assert power_at(0.01, se) == pytest.approx(stats.norm.sf(z - 2.5) + stats.norm.cdf(-z - 2.5))
    with pytest.raises(ValueError):
        power_at(0.01, se, sequential_tuning=1000)


def test_days_needed_uses_the_smallest_arm():
    assert days_needed(1000, 100) == 20
    assert days_needed(1000, 100, shares=(0.34, 0.33, 0.33)) == math.ceil(1000 / (100 * 0.33))
    assert days_needed(1000, 100, coverage=0.5) == 40
    with pytest.raises(ValueError):
        days_needed(1000, 0)


def test_plan():
    p = plan(0.6, SIGMA2, MDE, Design(variance_reduction=0.3), users_per_day=2000)
    assert p.users_per_arm == users_per_arm(MDE, SIGMA2, Design(variance_reduction=0.3))
    assert p.relative_mde == pytest.approx(MDE / 0.6) and p.sigma2 == pytest.approx(0.7 * SIGMA2)
    assert p.power >= 0.8 and p.days == days_needed(p.users_per_arm, 2000)


def test_simulated_power_matches_the_plan():
    # Users with 1–11 requests at a hit rate of 0.30 vs 0.33: sigma² from a pilot, n from the plan,
    # then the share of simulated experiments with p < 0.05 should be about 80 %.
    rng = np.random.default_rng(0)

    def arm(n, rate):
        requests = rng.integers(1, 12, n)
        return rng.binomial(requests, rate).astype(float), requests.astype(float)

    sigma2 = RatioStatistic.from_values(*arm(200_000, 0.30)).variance
    n = users_per_arm(0.03, sigma2)
    runs = 400
    wins = sum(
        two_sided_ttest(
            RatioStatistic.from_values(*arm(n, 0.30)), RatioStatistic.from_values(*arm(n, 0.33))
        ).p_value
        < 0.05
        for _ in range(runs)
    )
    assert 0.74 <= wins / runs <= 0.86  # 400 runs: sd of the share 2 %
