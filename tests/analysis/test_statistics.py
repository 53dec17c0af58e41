"""Statistics against independent computations (scipy, the linearisation form of the delta method),
and the degenerate inputs that must never yield a winner."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis import frequentist
from gateway.analysis.frequentist import (
    BASELINE_ZERO,
    TOO_FEW_UNITS,
    ZERO_VARIANCE,
    non_inferiority_test,
    one_sided_ttest,
    two_sided_ttest,
    welch_ttest,
)
from gateway.analysis.srm import srm_check
from gateway.analysis.statistics import RatioStatistic, SampleMeanStatistic


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


def _no_claims(res) -> bool:
    return (
        bool(res.message)
        and res.p_value == 1.0
        and res.p_value_relative == 1.0
        and all(math.isnan(x) for x in (*res.ci95_absolute, *res.ci95_relative))
    )


def test_two_users_per_arm_at_constant_rates_is_not_a_winner():
    # Control's two users at 1 hit of 2 requests each, test's at 2 of 2: the old code gave p = 0.0 and a
    # zero-width interval. Every user in an arm is at the same rate, so there is no variance to test with.
    control = ratio_of(np.array([1.0, 1.0]), np.array([2.0, 2.0]))
    test = ratio_of(np.array([2.0, 2.0]), np.array([2.0, 2.0]))
    res = two_sided_ttest(control, test)
    assert _no_claims(res) and res.message == ZERO_VARIANCE
    assert res.absolute == pytest.approx(0.5) and res.relative == pytest.approx(1.0)  # observed, descriptive
    assert not res.ok and welch_ttest(control, test) == 1.0


def test_a_variance_that_rounds_below_zero_never_reaches_sqrt():
    # Every user at exactly 1/3 with different request counts: the delta-method variance is zero in exact
    # arithmetic, but the formula on sums leaves rounding noise of either sign.
    d = np.array([3.0, 6, 9, 12, 30, 3, 3, 45])
    m = d / 3
    mb, db = m.mean(), d.mean()
    raw = m.var(ddof=1) / db**2 - 2 * np.cov(m, d)[0, 1] * mb / db**3 + mb**2 * d.var(ddof=1) / db**4
    assert raw != 0  # the noise the guard must catch (negative here: sqrt would fail)
    control = RatioStatistic.from_values(m, d)
    assert control.variance == 0.0
    test = RatioStatistic.from_values(d / 2, d)
    res = two_sided_ttest(control, test)
    assert _no_claims(res) and res.message == ZERO_VARIANCE
    # One arm degenerate is enough, even if the other has a genuine variance.
    noisy = RatioStatistic.from_values([1, 2, 0, 3], [2, 3, 2, 4])
    assert noisy.variance > 0 and two_sided_ttest(control, noisy).message == ZERO_VARIANCE


def test_too_few_units_and_empty_arms():
    one = RatioStatistic(1, 1, 1, 2, 4, 2)
    res = two_sided_ttest(one, one)
    assert res.message == TOO_FEW_UNITS and _no_claims(res)
    empty = RatioStatistic(0, 0, 0, 0, 0, 0)
    res = two_sided_ttest(empty, RatioStatistic.from_values([1, 2, 0], [2, 3, 2]))
    assert res.message == TOO_FEW_UNITS and math.isnan(res.absolute) and math.isnan(res.relative)


def test_zero_baseline_gives_no_claims():
    # As gbstats: a control with no hits has no variance (zero-variance first); a mean metric centred on 0
    # has a variance but no baseline to be relative to, and then nothing is claimed at all.
    zero = RatioStatistic(3, 0, 0, 3, 3, 0)
    res = two_sided_ttest(zero, RatioStatistic(3, 1, 1, 3, 3, 1))
    assert res.message == ZERO_VARIANCE and _no_claims(res)
    centred = SampleMeanStatistic.from_values([-1.0, 1.0, -2.0, 2.0])
    res = two_sided_ttest(centred, SampleMeanStatistic.from_values([0.5, 1.5, 2.5, 1.0]))
    assert res.message == BASELINE_ZERO and _no_claims(res) and math.isnan(res.relative)


def test_old_import_path_still_works():
    from gateway.analysis import statistics

    assert statistics.two_sided_ttest is frequentist.two_sided_ttest
    assert statistics.TOO_FEW_UNITS == TOO_FEW_UNITS
    with pytest.raises(AttributeError):
        _ = statistics.no_such_name


def test_relative_p_value_uses_the_relative_standard_error():
    rng = np.random.default_rng(5)
    mc, dc = _users(rng, 3000, 0.60)
    mt, dt = _users(rng, 3000, 0.62)
    res = two_sided_ttest(ratio_of(mc, dc), ratio_of(mt, dt))
    half = (res.ci95_relative[1] - res.ci95_relative[0]) / 2
    se_rel = half / stats.t.ppf(0.975, res.df)
    assert res.p_value_relative == pytest.approx(2 * stats.t.sf(abs(res.relative) / se_rel, res.df))
    assert res.p_value_relative != res.p_value and res.p_value_relative == pytest.approx(
        res.p_value, rel=0.05
    )


def test_one_sided_tests_split_the_two_sided_p_value():
    rng = np.random.default_rng(6)
    c, t = ratio_of(*_users(rng, 2000, 0.6)), ratio_of(*_users(rng, 2000, 0.61))
    greater = one_sided_ttest(c, t, alternative="greater")
    less = one_sided_ttest(c, t, alternative="less")
    assert greater.p_value + less.p_value == pytest.approx(1.0)
    assert 2 * min(greater.p_value, less.p_value) == pytest.approx(two_sided_ttest(c, t).p_value)
    assert greater.ci[1] == math.inf and less.ci[0] == -math.inf
    # The one-sided 95 % bound is the two-sided 90 % interval's end.
    ninety = two_sided_ttest(c, t, alpha=0.10)
    assert greater.ci[0] == pytest.approx(ninety.ci95_absolute[0])
    assert less.ci[1] == pytest.approx(ninety.ci95_absolute[1])
    with pytest.raises(ValueError):
        one_sided_ttest(c, t, alternative="both")


def test_non_inferiority_is_direction_aware():
    rng = np.random.default_rng(7)
    x = rng.normal(100, 10, 4000)
    control, slightly_slower = mean_of(x), mean_of(x + 0.5)
    # Latency: lower is better. 0.5 ms slower is within a 2 ms margin, not within 0.1 ms.
    ok = non_inferiority_test(control, slightly_slower, 2.0, higher_is_better=False)
    assert ok.non_inferior and ok.threshold == 2.0 and ok.bound < 2.0 and ok.p_value < 0.05
    tight = non_inferiority_test(control, slightly_slower, 0.1, higher_is_better=False)
    assert not tight.non_inferior and tight.bound > 0.1
    # The same 0.5 higher is an improvement when higher is better: non-inferior even at a tiny margin.
    assert non_inferiority_test(control, slightly_slower, 0.01).non_inferior
    # Relative margins: 0.5 % slower within a 1 % margin.
    rel = non_inferiority_test(control, slightly_slower, 0.01, higher_is_better=False, relative=True)
    assert rel.non_inferior and rel.relative and rel.estimate == pytest.approx(0.005, rel=0.05)
    # Bound and p-value agree: the bound clears the threshold exactly when p < alpha.
    for margin in np.linspace(0.2, 1.5, 14):
        r = non_inferiority_test(control, slightly_slower, float(margin), higher_is_better=False)
        assert r.non_inferior == (r.bound < r.threshold)
    with pytest.raises(ValueError):
        non_inferiority_test(control, slightly_slower, 0.0)


def test_non_inferiority_degenerate_is_never_non_inferior():
    flat = SampleMeanStatistic.from_values([5.0, 5.0, 5.0])
    res = non_inferiority_test(flat, flat, 1.0)
    assert (
        not res.non_inferior and res.p_value == 1.0 and res.message == ZERO_VARIANCE and math.isnan(res.bound)
    )


def _calibration(test, runs: int, rng) -> float:
    """Share of A/A runs (both arms from one distribution) with p < 0.05."""
    hits = 0
    for _ in range(runs):
        c, t = ratio_of(*_users(rng, 300, 0.3)), ratio_of(*_users(rng, 300, 0.3))
        hits += test(c, t).p_value < 0.05
    return hits / runs


def test_ratio_test_is_calibrated_on_a_a_data():
    rate = _calibration(two_sided_ttest, 600, np.random.default_rng(8))
    assert 0.03 <= rate <= 0.07  # 600 runs: the 5 % rate's sampling sd is 0.9 %
