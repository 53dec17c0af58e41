"""CUPED for the ratio metric against an independent per-user linearisation, and cold start."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.cuped import NO_ADJUSTMENT, NO_PRE_PERIOD, adjust
from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.statistics import RatioStatistic, RegressionAdjustedRatioStatistic, regression_theta


def _arm(rng, n, rate, cold=0.0, lift=0.0):
    """Users whose pre-period like rate and post-period hit rate share a taste: correlated periods."""
    taste = rng.beta(0.5, 0.5, n)
    requests = rng.integers(1, 12, n).astype(float)
    hits = rng.binomial(requests.astype(int), np.clip(rate + lift + 0.8 * (taste - 0.5), 0.01, 0.99)).astype(
        float
    )
    views = rng.integers(20, 80, n).astype(float)
    likes = rng.binomial(views.astype(int), np.clip(0.1 + 0.18 * (taste - 0.5), 0.005, 0.99)).astype(float)
    is_cold = rng.random(n) < cold
    views[is_cold], likes[is_cold] = 0.0, 0.0
    return hits, requests, likes, views


def _stat(arm) -> RegressionAdjustedRatioStatistic:
    return RegressionAdjustedRatioStatistic.from_values(*arm)


def _influence(arm):
    """Per-user linearisations of the post ratio (p) and of the pre-period ratio (q)."""
    m, d, mp, dp = arm
    p = (m - m.sum() / d.sum() * d) / d.mean()
    q = (mp - mp.sum() / dp.sum() * dp) / dp.mean()
    return p, q


def test_sums_match_their_parts():
    rng = np.random.default_rng(0)
    arm = _arm(rng, 500, 0.5)
    whole = _stat(arm)
    parts = _stat(tuple(x[:200] for x in arm)) + _stat(tuple(x[200:] for x in arm))
    assert all(
        getattr(parts, f) == pytest.approx(getattr(whole, f))
        for f in whole.__dataclass_fields__
        if f != "theta"
    )
    assert whole.post == RatioStatistic.from_values(arm[0], arm[1])
    assert whole.covariance_matrix == pytest.approx(np.cov(np.vstack(arm)))


def test_cuped_against_per_user_linearisation():
    rng = np.random.default_rng(1)
    control, treatment = _arm(rng, 3000, 0.5), _arm(rng, 3000, 0.5, lift=0.02)
    (pc, qc), (pt, qt) = _influence(control), _influence(treatment)
    theta = (np.cov(pc, qc)[0, 1] + np.cov(pt, qt)[0, 1]) / (qc.var(ddof=1) + qt.var(ddof=1))
    assert regression_theta(_stat(control), _stat(treatment)) == pytest.approx(theta, rel=1e-9)

    res = two_sided_ttest(_stat(control), _stat(treatment))
    assert res.ok and res.theta == pytest.approx(theta, rel=1e-9)

    def ratio(x, y):
        return x.sum() / y.sum()

    adjusted_c = ratio(control[0], control[1]) - theta * ratio(control[2], control[3])
    adjusted_t = ratio(treatment[0], treatment[1]) - theta * ratio(treatment[2], treatment[3])
    assert res.absolute == pytest.approx(adjusted_t - adjusted_c, rel=1e-9)
    var_adj = (pc - theta * qc).var(ddof=1) / len(pc) + (pt - theta * qt).var(ddof=1) / len(pt)
    var_plain = pc.var(ddof=1) / len(pc) + pt.var(ddof=1) / len(pt)
    df = res.df
    half = stats.t.ppf(0.975, df) * math.sqrt(var_adj)
    assert res.ci95_absolute == pytest.approx((res.absolute - half, res.absolute + half), rel=1e-9)
    assert res.variance_reduction == pytest.approx(1 - var_adj / var_plain, rel=1e-9)
    assert 0.2 < res.variance_reduction < 0.9  # the periods are correlated by construction
    # Relative: (A_t − A_c) / unadjusted control ratio.
    assert res.relative == pytest.approx((adjusted_t - adjusted_c) / ratio(control[0], control[1]), rel=1e-9)
    # CUPED narrows the interval against the plain ratio test on the same users.
    plain = two_sided_ttest(_stat(control).post, _stat(treatment).post)
    width = res.ci95_absolute[1] - res.ci95_absolute[0]
    assert width == pytest.approx(
        (plain.ci95_absolute[1] - plain.ci95_absolute[0]) * math.sqrt(1 - res.variance_reduction)
    )


def test_cold_start_users_are_not_adjusted_and_dilute_the_reduction():
    rng = np.random.default_rng(2)
    control, treatment = _arm(rng, 3000, 0.5, cold=0.3), _arm(rng, 3000, 0.5, cold=0.3)
    cold = control[3] == 0
    _, q = _influence(control)
    assert cold.any() and np.all(q[cold] == 0)  # a cold user sits exactly at the pooled pre-period rate
    warm = _arm(np.random.default_rng(2), 3000, 0.5), _arm(np.random.default_rng(3), 3000, 0.5)
    with_cold = two_sided_ttest(_stat(control), _stat(treatment))
    all_warm = two_sided_ttest(_stat(warm[0]), _stat(warm[1]))
    assert 0 < with_cold.variance_reduction < all_warm.variance_reduction
    assert with_cold.note == "" and with_cold.theta != 0


def test_cuped_is_unbiased_with_cold_start_users():
    # Many A/B draws with a known lift and 40 % cold start: the adjusted estimate averages to the lift.
    rng = np.random.default_rng(3)
    plain, adjusted = [], []
    for _ in range(150):
        c, t = _arm(rng, 400, 0.5, cold=0.4), _arm(rng, 400, 0.5, cold=0.4, lift=0.03)
        res = two_sided_ttest(_stat(c), _stat(t))
        adjusted.append(res.absolute)
        plain.append(two_sided_ttest(_stat(c).post, _stat(t).post).absolute)
    assert np.mean(adjusted) == pytest.approx(0.03, abs=3 * np.std(adjusted) / math.sqrt(150))
    assert np.std(adjusted) < np.std(plain)


def test_arm_without_any_pre_period_falls_back_to_the_plain_ratio():
    rng = np.random.default_rng(4)
    control, treatment = _arm(rng, 800, 0.5, cold=1.0), _arm(rng, 800, 0.5)
    res = two_sided_ttest(_stat(control), _stat(treatment))
    plain = two_sided_ttest(_stat(control).post, _stat(treatment).post)
    assert res.note == NO_PRE_PERIOD and res.theta == 0.0 and res.variance_reduction == 0.0
    assert res.ok and res.p_value == plain.p_value and res.ci95_absolute == plain.ci95_absolute


def test_no_pre_period_variance_means_no_adjustment():
    rng = np.random.default_rng(5)
    control, treatment = _arm(rng, 500, 0.5), _arm(rng, 500, 0.5)
    for arm in (control, treatment):  # everyone liked exactly a tenth of what they viewed
        arm[3][:] = 10.0
        arm[2][:] = 1.0
    res = two_sided_ttest(_stat(control), _stat(treatment))
    assert res.note == NO_ADJUSTMENT and res.theta == 0.0
    assert res.p_value == two_sided_ttest(_stat(control).post, _stat(treatment).post).p_value


def test_a_given_theta_is_kept():
    rng = np.random.default_rng(6)
    c, t = _stat(_arm(rng, 500, 0.5)).with_theta(0.7), _stat(_arm(rng, 500, 0.5)).with_theta(0.7)
    assert adjust(c, t).theta == 0.7


def test_cuped_a_a_calibration():
    rng = np.random.default_rng(9)
    runs, positives = 500, 0
    for _ in range(runs):
        positives += (
            two_sided_ttest(
                _stat(_arm(rng, 250, 0.4, cold=0.2)), _stat(_arm(rng, 250, 0.4, cold=0.2))
            ).p_value
            < 0.05
        )
    assert 0.025 <= positives / runs <= 0.075
