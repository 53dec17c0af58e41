"""Sequential (always-valid) tests: wider than fixed-horizon, tuned at the planned size, valid under peeking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.sequential import (
    sequential_halfwidth,
    sequential_p_value,
    sequential_rho,
    sequential_ttest,
)
from gateway.analysis.statistics import RatioStatistic, RegressionAdjustedRatioStatistic


def _users(rng, n, rate):
    requests = rng.integers(1, 12, n).astype(float)
    return rng.binomial(requests.astype(int), rate).astype(float), requests


def test_rho_and_halfwidth_by_hand():
    # alpha = 0.05, tuning 5000: rho² = (−2 ln 0.05 + ln(−2 ln 0.05 + 1)) / 5000.
    rho = sequential_rho(0.05, 5000)
    assert rho**2 == pytest.approx((5.991464547 + math.log(6.991464547)) / 5000, rel=1e-9)
    n, s2 = 2000, 4.0
    spread = n * rho**2 + 1
    expected = math.sqrt(s2) * math.sqrt(2 * spread * math.log(math.sqrt(spread) / 0.05) / (n * rho) ** 2)
    assert sequential_halfwidth(s2, n, 5000, 0.05) == pytest.approx(expected, rel=1e-12)
    # One-sided rho uses 2·alpha.
    assert sequential_rho(0.05, 5000, two_sided=False) == pytest.approx(sequential_rho(0.1, 5000))


def test_p_value_does_not_overflow_and_is_capped():
    assert sequential_p_value(0.0, 1.0, 1000, 0.03) == 1.0
    assert sequential_p_value(1e6, 1e-6, 1e6, 0.03) == 0.0


def test_sequential_is_wider_than_fixed_and_narrowest_near_its_tuning():
    rng = np.random.default_rng(0)
    c, t = (
        RatioStatistic.from_values(*_users(rng, 3000, 0.5)),
        RatioStatistic.from_values(*_users(rng, 3000, 0.52)),
    )
    fixed = two_sided_ttest(c, t)

    def width(res):
        return res.ci95_absolute[1] - res.ci95_absolute[0]

    widths = {tuning: width(sequential_ttest(c, t, tuning=tuning)) for tuning in (600, 6000, 60000)}
    assert min(widths.values()) > width(fixed)
    assert widths[6000] < widths[600] and widths[6000] < widths[60000]  # n = 6000 units in all
    seq = sequential_ttest(c, t, tuning=6000)
    assert seq.p_value >= fixed.p_value and seq.df == math.inf
    assert seq.absolute == fixed.absolute and seq.relative == fixed.relative
    with pytest.raises(ValueError):
        sequential_ttest(c, t, tuning=0)


def test_degenerate_input_gives_no_claims():
    flat = RatioStatistic.from_values([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    res = sequential_ttest(flat, RatioStatistic.from_values([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]))
    assert res.message and res.p_value == 1.0 and all(math.isnan(x) for x in res.ci95_absolute)


def _peeking_false_positive_rates(experiments: int, looks: int, step: int, rng) -> tuple[float, float]:
    """A/A experiments looked at after every ``step`` users per arm; stop at the first p < 0.05."""
    fixed_stops = sequential_stops = 0
    for _ in range(experiments):
        arms = [_users(rng, looks * step, 0.3) for _ in range(2)]
        sums = [
            np.cumsum(np.column_stack([m, m * m, d, d * d, m * d]), axis=0)[step - 1 :: step] for m, d in arms
        ]
        fixed_hit = sequential_hit = False
        for look in range(looks):
            c, t = (RatioStatistic((look + 1) * step, *s[look]) for s in sums)
            fixed_hit = fixed_hit or two_sided_ttest(c, t).p_value < 0.05
            sequential_hit = sequential_hit or sequential_ttest(c, t, tuning=2 * looks * step).p_value < 0.05
        fixed_stops += fixed_hit
        sequential_stops += sequential_hit
    return fixed_stops / experiments, sequential_stops / experiments


def test_sequential_stays_valid_under_peeking_where_fixed_does_not():
    fixed, sequential = _peeking_false_positive_rates(200, 12, 100, np.random.default_rng(1))
    assert fixed > 0.12  # peeking at a fixed-horizon test inflates its 5 % several-fold
    assert sequential <= 0.05


def _cuped_arm(rng, n, lift=0.0) -> RegressionAdjustedRatioStatistic:
    """Users whose pre-period like rate and post-period hit rate share a taste."""
    taste = rng.beta(0.5, 0.5, n)
    requests = rng.integers(1, 12, n).astype(float)
    hits = rng.binomial(requests.astype(int), np.clip(0.5 + lift + 0.8 * (taste - 0.5), 0.01, 0.99))
    views = rng.integers(20, 80, n).astype(float)
    likes = rng.binomial(views.astype(int), np.clip(0.1 + 0.18 * (taste - 0.5), 0.005, 0.99))
    return RegressionAdjustedRatioStatistic.from_values(hits, requests, likes, views)


def test_cuped_composes_with_the_sequential_test():
    rng = np.random.default_rng(7)
    c, t = _cuped_arm(rng, 2000), _cuped_arm(rng, 2000, lift=0.02)
    seq, fixed = sequential_ttest(c, t, tuning=4000), two_sided_ttest(c, t)
    assert seq.theta == fixed.theta and seq.variance_reduction == fixed.variance_reduction
    assert seq.absolute == fixed.absolute
    plain_seq = sequential_ttest(c.post, t.post, tuning=4000)
    cuped_width = seq.ci95_absolute[1] - seq.ci95_absolute[0]
    plain_width = plain_seq.ci95_absolute[1] - plain_seq.ci95_absolute[0]
    assert cuped_width == pytest.approx(plain_width * math.sqrt(1 - seq.variance_reduction))
