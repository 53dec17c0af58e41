"""SRM against the shares the assignment can realise, not the configured weights."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.srm import srm_check
from gateway.assignment import Experiment, assign, realised_shares


def test_md5_three_equal_weights_realise_34_33_33():
    assert realised_shares(Experiment("e", "s", ("a", "b", "c"), (1, 1, 1))) == pytest.approx(
        (0.34, 0.33, 0.33)
    )
    assert realised_shares(Experiment("e", "s", ("a", "b"), (1, 1))) == (0.5, 0.5)


def test_growthbook_v2_counts_its_ten_thousand_points():
    exp = Experiment("e", "s", ("a", "b", "c"), (1, 1, 1), scheme="growthbook-v2")
    assert realised_shares(exp) == pytest.approx((0.3334, 0.3333, 0.3333))


def test_coverage_is_applied_like_assign():
    # Two arms at 50 % coverage of 30 %: ranges [0, 0.15) and [0.5, 0.65): md5 buckets 0–14 and 50–64.
    exp = Experiment("e", "s", ("a", "b"), (1, 1), coverage=0.3)
    assert realised_shares(exp) == (0.5, 0.5)
    skewed = Experiment("e", "s", ("a", "b"), (1, 2), coverage=0.5)
    # ranges [0, 1/6) and [1/3, 2/3): buckets 0–16 (17) and 34–66 (33).
    assert realised_shares(skewed) == pytest.approx((17 / 50, 33 / 50))
    # A sliver of coverage can leave an arm with no grid point at all: its share is 0.
    sliver = Experiment("e", "s", ("a", "b", "c"), (1, 1, 1), coverage=0.001)
    assert realised_shares(sliver) == (1.0, 0.0, 0.0)  # only point 0 falls in [0, 0.00033)
    with pytest.raises(ValueError):
        realised_shares(Experiment("e", "s", ("a", "b"), (1, 1), coverage=0.0))


@pytest.mark.parametrize("scheme", ["md5", "growthbook-v2"])
def test_realised_shares_match_assign_on_the_grid(scheme):
    exp = Experiment("e", "salt", ("a", "b", "c"), (0.2, 0.3, 0.5), scheme=scheme, coverage=0.9)
    shares = realised_shares(exp)
    # Every user assigned in experiment lands in the arm whose grid points cover its hash point.
    counts = Counter(a.arm for a in (assign(exp, uid) for uid in range(30_000)) if a.in_experiment)
    total = sum(counts.values())
    observed = [counts[arm] for arm in exp.arms]
    assert stats.chisquare(observed, [total * s for s in shares]).pvalue > 0.001


def test_healthy_md5_experiment_at_100k_users_is_not_flagged():
    exp = Experiment("e", "feed-ranker-v1", ("control", "test", "test2"), (1, 1, 1))
    counts = Counter(assign(exp, uid).arm for uid in range(100_000))
    observed = [counts[arm] for arm in exp.arms]
    assert not srm_check(observed, realised_shares(exp)).flag
    old = srm_check(observed, exp.weights)  # the configured weights: 1/3 each
    assert old.flag


def test_healthy_draw_at_realised_shares_is_not_flagged():
    exp = Experiment("e", "s", ("control", "test", "test2"), (1, 1, 1))
    observed = np.random.default_rng(0).multinomial(100_000, realised_shares(exp)).tolist()
    assert not srm_check(observed, realised_shares(exp)).flag
    assert srm_check(observed, [1, 1, 1]).flag


def test_srm_matches_scipy_and_flags_a_real_mismatch():
    res = srm_check([5120, 4880], [0.5, 0.5])
    assert res.p_value == pytest.approx(stats.chisquare([5120, 4880]).pvalue) and not res.flag
    assert srm_check([5400, 4600], [0.5, 0.5]).flag
    assert srm_check([0, 0], [0.5, 0.5]).p_value == 1.0


def test_unreachable_arm_with_users_is_a_mismatch():
    res = srm_check([500, 480, 3], [0.5, 0.5, 0.0])
    assert res.flag and res.p_value == 0.0 and math.isinf(res.chi2)
    # Without users there, the arm is left out, as gbstats does (but the degrees of freedom drop with it).
    fine = srm_check([500, 480, 0], [0.5, 0.5, 0.0])
    assert fine.p_value == pytest.approx(stats.chisquare([500, 480]).pvalue)
    with pytest.raises(ValueError):
        srm_check([1, 2], [0.5])
