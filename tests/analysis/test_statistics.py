"""Statistics against independent computations (scipy, the linearisation form of the delta method)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.statistics import (
    BASELINE_ZERO,
    TOO_FEW_UNITS,
    RatioStatistic,
    SampleMeanStatistic,
    srm_check,
    two_sided_ttest,
    welch_ttest,
)


def ratio_of(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
    return RatioStatistic(len(m), m.sum(), (m**2).sum(), d.sum(), (d**2).sum(), (m * d).sum())


def mean_of(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(len(x), x.sum(), (x**2).sum())


def _users(rng, n, rate):
    requests = rng.integers(1, 12, n).astype(float)
    hits = rng.binomial(requests.astype(int), rate).astype(float)
    return hits, requests


def test_sample_mean_statistic_matches_numpy():
    x = np.random.default_rng(0).normal(3, 2, 500)
    s = mean_of(x)
    assert s.mean == pytest.approx(x.mean()) and s.variance == pytest.approx(x.var(ddof=1))
    assert (mean_of(x[:200]) + mean_of(x[200:])).variance == pytest.approx(x.var(ddof=1))


def test_ratio_variance_equals_linearisation():
    rng = np.random.default_rng(1)
    m, d = _users(rng, 3000, 0.6)
    r = ratio_of(m, d)
    ratio = m.sum() / d.sum()
    linearised = (m - ratio * d) / d.mean()  # influence function of the ratio
    assert r.mean == pytest.approx(ratio)
    assert r.variance == pytest.approx(linearised.var(ddof=1), rel=1e-9)


def test_ratio_test_against_independent_formula():
    rng = np.random.default_rng(2)
    mc, dc = _users(rng, 4000, 0.60)
    mt, dt = _users(rng, 4000, 0.63)
    res = two_sided_ttest(ratio_of(mc, dc), ratio_of(mt, dt))
    rc, rt = mc.sum() / dc.sum(), mt.sum() / dt.sum()
    var_c = ((mc - rc * dc) / dc.mean()).var(ddof=1) / len(mc)
    var_t = ((mt - rt * dt) / dt.mean()).var(ddof=1) / len(mt)
    df = (var_c + var_t) ** 2 / (var_c**2 / (len(mc) - 1) + var_t**2 / (len(mt) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(var_c + var_t)
    assert res.absolute == pytest.approx(rt - rc)
    assert res.ci95_absolute[0] == pytest.approx(rt - rc - half) and res.ci95_absolute[1] == pytest.approx(
        rt - rc + half
    )
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(rt - rc) / math.sqrt(var_c + var_t), df))
    # Relative effect: delta method on the ratio of two independent means.
    se_rel = math.sqrt(var_t / rc**2 + var_c * rt**2 / rc**4)
    assert res.relative == pytest.approx(rt / rc - 1)
    assert res.ci95_relative[1] - res.ci95_relative[0] == pytest.approx(2 * stats.t.ppf(0.975, df) * se_rel)


def test_welch_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 0.2, 800), rng.normal(0.52, 0.3, 600)
    expected = stats.ttest_ind(b, a, equal_var=False)
    assert welch_ttest(mean_of(a), mean_of(b)) == pytest.approx(expected.pvalue, rel=1e-9)
    res = two_sided_ttest(mean_of(a), mean_of(b))
    assert res.df == pytest.approx(expected.df, rel=1e-9)


def test_srm_matches_scipy_chisquare():
    observed = [5120, 4880]
    expected = stats.chisquare(observed, [5000, 5000])
    res = srm_check(observed, [50, 50])
    assert res.p_value == pytest.approx(expected.pvalue) and res.chi2 == pytest.approx(expected.statistic)
    assert not res.flag
    skewed = srm_check([5400, 4600], [0.5, 0.5])
    assert skewed.flag and skewed.p_value < 0.001
    three = srm_check([300, 310, 590], [1, 1, 2])
    assert three.p_value == pytest.approx(stats.chisquare([300, 310, 590], [300, 300, 600]).pvalue)


def test_frozen_reference_numbers():
    # Worked by hand: control m̄ = 1.5, d̄ = 2.5, var(m) = var(d) = cov = 1
    #   → 1/2.5² − 2·1·1.5/2.5³ + 1.5²·1/2.5⁴ = 0.16 − 0.192 + 0.0576 = 0.0256;
    # treatment m̄ = 2, var(m) = cov = 2/3 → 0.10667 − 0.17067 + 0.1024 = 0.0384.
    control = RatioStatistic(
        n=4, m_sum=6, m_sum_squares=12, d_sum=10, d_sum_squares=28, m_d_sum_of_products=18
    )
    treatment = RatioStatistic(
        n=4, m_sum=8, m_sum_squares=18, d_sum=10, d_sum_squares=28, m_d_sum_of_products=22
    )
    assert round(control.variance, 5) == 0.0256 and round(treatment.variance, 5) == 0.0384
    res = two_sided_ttest(control, treatment)
    assert round(res.absolute, 5) == 0.2
    se = math.sqrt(0.0256 / 4 + 0.0384 / 4)
    df = (0.0064 + 0.0096) ** 2 / (0.0064**2 / 3 + 0.0096**2 / 3)
    assert round(res.df, 5) == round(df, 5)
    assert round(res.p_value, 5) == round(2 * stats.t.sf(0.2 / se, df), 5)


def test_degenerate_inputs_give_messages_not_exceptions():
    one = RatioStatistic(1, 1, 1, 2, 4, 2)
    assert two_sided_ttest(one, one).message == TOO_FEW_UNITS
    zero = RatioStatistic(3, 0, 0, 3, 3, 0)
    res = two_sided_ttest(zero, RatioStatistic(3, 1, 1, 3, 3, 1))
    assert res.message == BASELINE_ZERO and math.isnan(res.relative)
