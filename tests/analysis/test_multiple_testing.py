"""Holm and Benjamini–Hochberg against worked examples and scipy; many arms against control."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from gateway.analysis.frequentist import ZERO_VARIANCE, two_sided_ttest
from gateway.analysis.multiple_testing import adjusted_interval, benjamini_hochberg, compare_arms, holm
from gateway.analysis.sequential import sequential_ttest
from gateway.analysis.statistics import RatioStatistic

P_VALUES = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30)


def test_worked_examples_in_input_order():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 → 0.02, 0.03, 0.06, 0.04 → running max.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: times 4/1, 4/2, 4/3, 4/4 → 0.02, 0.02, 0.04, 0.04 → running min from the top.
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == [] and benjamini_hochberg([0.2]) == [0.2]


@given(P_VALUES)
def test_benjamini_hochberg_matches_scipy(p):
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p).tolist(), abs=1e-12)


@given(P_VALUES)
def test_adjustments_are_valid_and_order_preserving(p):
    for adjust in (holm, benjamini_hochberg):
        adjusted = adjust(p)
        assert all(raw <= adj <= 1 for raw, adj in zip(p, adjusted, strict=True))
        for i in range(len(p)):
            for j in range(len(p)):
                if p[i] < p[j]:
                    assert adjusted[i] <= adjusted[j]
    assert all(b <= h + 1e-15 for b, h in zip(benjamini_hochberg(p), holm(p), strict=True))
    # Permuting the input permutes the output.
    order = list(reversed(range(len(p))))
    assert holm([p[i] for i in order]) == [holm(p)[i] for i in order]


def test_rejects_non_p_values():
    for bad in ([0.1, math.nan], [1.2], [-0.1]):
        with pytest.raises(ValueError):
            holm(bad)


def _arm(rng, n, rate):
    requests = rng.integers(1, 12, n).astype(float)
    return RatioStatistic.from_values(rng.binomial(requests.astype(int), rate).astype(float), requests)


def test_compare_arms_adjusts_across_arms_with_holm():
    rng = np.random.default_rng(0)
    arms = {
        "control": _arm(rng, 4000, 0.30),
        "catboost": _arm(rng, 4000, 0.33),
        "same": _arm(rng, 4000, 0.30),
        "flat": RatioStatistic.from_values([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]),  # degenerate
    }
    result = compare_arms(arms, "control")
    assert list(result) == ["catboost", "same", "flat"]
    raw = [result[a].result.p_value for a in result]
    assert [result[a].p_value_adjusted for a in result] == holm(raw)
    assert result["flat"].result.message == ZERO_VARIANCE and result["flat"].p_value_adjusted == 1.0
    assert not result["flat"].significant and math.isnan(result["flat"].ci95_absolute_adjusted[0])
    assert result["catboost"].significant and not result["same"].significant
    low, high = result["catboost"].ci95_absolute_adjusted
    plain = result["catboost"].result.ci95_absolute
    assert low <= plain[0] and high >= plain[1]
    # Other tests plug in; BH is available.
    seq = compare_arms(
        arms, "control", test=partial(sequential_ttest, tuning=8000), correction="benjamini-hochberg"
    )
    assert seq["catboost"].result.df == math.inf
    with pytest.raises(ValueError):
        compare_arms(arms, "nobody")
    with pytest.raises(ValueError):
        compare_arms({"control": arms["control"]}, "control")


def test_adjusted_interval_follows_growthbook():
    # Unadjusted: estimate 0.02 with p = 0.01 → the interval that p = 0.03 implies is wider.
    z = stats.norm.ppf(0.975)
    se_for = 0.02 / stats.norm.ppf(1 - 0.03 / 2)
    assert adjusted_interval(0.02, 0.03, (0.005, 0.035)) == pytest.approx(
        (0.02 - z * se_for, 0.02 + z * se_for)
    )
    assert adjusted_interval(0.02, 1.0, (0.005, 0.035)) == (-math.inf, math.inf)
    assert adjusted_interval(0.02, 0.001, (0.005, 0.035)) == (0.005, 0.035)  # never narrower
    assert adjusted_interval(0.0, 0.5, (-0.01, 0.01)) == (-0.01, 0.01)


def test_two_arm_compare_equals_the_plain_test():
    rng = np.random.default_rng(1)
    arms = {"control": _arm(rng, 1000, 0.3), "test": _arm(rng, 1000, 0.31)}
    only = compare_arms(arms, "control")["test"]
    assert (
        only.p_value_adjusted == only.result.p_value == two_sided_ttest(arms["control"], arms["test"]).p_value
    )
