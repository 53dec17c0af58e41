"""``recsys analyze validate``: the request pool, repeated A/A and A/B trials, the Wilson interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gateway.judging.validation import _binomial_ci, request_pool, run_trials, validate
from gateway.storage import connect
from gateway.world.load import load_truth


def _pool(users: int = 2000, seed: int = 5):
    """A hand-built pool: users with 1-6 requests each, user ids unrelated to their indices."""
    rng = np.random.default_rng(seed)
    user_idx = np.repeat(np.arange(users), rng.integers(1, 7, users))
    user_ids = np.arange(users, dtype=np.int64) * 7 + 1000
    return user_idx, user_ids, rng


def test_aa_trials_with_identical_chances_reject_about_5_percent():
    user_idx, user_ids, rng = _pool()
    q = rng.uniform(0.05, 0.6, len(user_idx))  # per-request chances, the same in both arms
    results = run_trials(user_idx, user_ids, q, q, runs=300, seed=1, label="aa")
    p_values = np.array([r.p_value for r in results])
    assert len(results) == 300
    assert 0.02 <= np.mean(p_values < 0.05) <= 0.09
    assert stats.kstest(p_values, "uniform").pvalue > 0.01  # roughly uniform under the null
    # the intervals are centred on zero: as many runs above as below
    assert 0.4 <= np.mean([r.absolute > 0 for r in results]) <= 0.6


def test_ab_trials_detect_a_big_effect_and_cover_it():
    user_idx, user_ids, _ = _pool()
    q_control = np.full(len(user_idx), 0.2)
    q_test = np.full(len(user_idx), 0.3)
    results = run_trials(user_idx, user_ids, q_control, q_test, runs=100, seed=2, label="ab")
    assert all(r.p_value < 0.05 for r in results)
    assert all(r.absolute > 0 for r in results)
    covered = np.mean([r.ci95_absolute[0] <= 0.1 <= r.ci95_absolute[1] for r in results])
    assert covered >= 0.88


def test_trials_are_deterministic_for_a_seed():
    user_idx, user_ids, rng = _pool(500)
    q = rng.uniform(0.1, 0.5, len(user_idx))
    first = [r.p_value for r in run_trials(user_idx, user_ids, q, q, runs=20, seed=3, label="aa")]
    again = [r.p_value for r in run_trials(user_idx, user_ids, q, q, runs=20, seed=3, label="aa")]
    other = [r.p_value for r in run_trials(user_idx, user_ids, q, q, runs=20, seed=4, label="aa")]
    assert first == again and first != other


@pytest.mark.parametrize(("k", "n"), [(50, 1000), (0, 200), (200, 200), (37, 123)])
def test_binomial_ci_is_wilsons(k, n):
    lo, hi = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert _binomial_ci(k, n) == pytest.approx((round(lo, 4), round(hi, 4)), abs=1e-4)
    assert all(np.isnan(_binomial_ci(0, 0)))


def test_request_pool_shape_window_and_determinism(tiny_store):
    window = (tiny_store.manifest["day0"], tiny_store.manifest["day0"] + 7 * 86400)
    user_idx, seconds = request_pool(tiny_store, window, users=300, seed=9)
    per_user = np.bincount(user_idx)
    assert len(np.unique(user_idx)) == 300 and len(user_idx) == len(seconds)
    assert per_user[per_user > 0].min() >= 1 and per_user.max() <= 6
    assert seconds.min() >= window[0] + 6 * 3600 and seconds.max() < window[1]
    again = request_pool(tiny_store, window, users=300, seed=9)
    assert np.array_equal(user_idx, again[0]) and np.array_equal(seconds, again[1])
    assert not np.array_equal(seconds, request_pool(tiny_store, window, users=300, seed=10)[1])
    everyone, _ = request_pool(tiny_store, window, users=10**6, seed=9)
    assert len(np.unique(everyone)) == len(tiny_store.user_ids)  # capped at the store's users


def test_validate_on_the_tiny_world(tiny_store, tiny_db):
    from gateway.features.dataset import time_split
    from gateway.judging.oracle import OracleRanker

    oracle = OracleRanker(load_truth(connect(tiny_db)), tiny_store)
    window = time_split(tiny_store, 7, 7).evaluation
    result = validate(tiny_store, oracle, window, runs=40, seed=0, users=300)
    assert result.runs == 40 and result.users == 300 and result.requests >= 300
    assert result.ab_true_effect > 0  # the oracle beats popularity
    assert 0 <= result.aa_false_positive_rate <= 0.2
    assert result.aa_ci95[0] <= result.aa_false_positive_rate <= result.aa_ci95[1]
    assert result.ab_coverage >= 0.8 and result.ab_power > 0.5
