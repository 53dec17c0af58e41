"""``recsys analyze validate`` (A/B): the pool's sufficient statistics, the simulations' bars,
the pre-period covariate, and a run with the real rankers on the tiny world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.statistics import RegressionAdjustedRatioStatistic
from gateway.judging.validation import (
    FIELDS,
    Pool,
    arm_statistics,
    binomial_ci,
    pre_period,
    request_pool,
    validate,
    validate_pool,
)
from gateway.storage import connect
from gateway.world.load import load_truth


def hand_pool(users: int = 1500, seed: int = 5, effect: float = 0.0, look_seconds: int = 12 * 3600) -> Pool:
    """Users with 1-6 requests over a week; hit chances and pre-period like rates that move with
    a latent propensity; a fifth of users without a pre-period."""
    rng = np.random.default_rng(seed)
    propensity = rng.normal(0, 1, users)
    user = np.repeat(np.arange(users), rng.integers(1, 7, users))
    seconds = rng.integers(0, 7 * 86400, len(user))
    q = np.clip(0.45 + 0.15 * propensity[user] + rng.normal(0, 0.05, len(user)), 0.01, 0.99)
    d_pre = rng.poisson(30, users).astype(float)
    d_pre[rng.random(users) < 0.2] = 0
    m_pre = rng.binomial(d_pre.astype(int), np.clip(0.3 + 0.1 * propensity, 0.01, 0.99)).astype(float)
    return Pool.build(
        user, seconds, q, np.clip(q + effect, 0, 1), m_pre, d_pre, start=0, look_seconds=look_seconds
    )


def direct(pool: Pool, hits: np.ndarray, in_arm: np.ndarray, end: int) -> RegressionAdjustedRatioStatistic:
    """The arm's statistic from per-user totals over the first ``end`` requests."""
    rows = np.arange(len(pool.user)) < end
    rows &= in_arm
    users = np.unique(pool.user[rows])
    m = np.array([hits[rows & (pool.user == u)].sum() for u in users], dtype=float)
    d = np.array([(rows & (pool.user == u)).sum() for u in users], dtype=float)
    return RegressionAdjustedRatioStatistic.from_values(m, d, pool.m_pre[users], pool.d_pre[users])


def test_incremental_statistics_equal_per_user_totals_at_every_look():
    pool = hand_pool(users=120, look_seconds=36 * 3600)
    rng = np.random.default_rng(0)
    hits = rng.random(len(pool.user)) < pool.q_control
    in_test = (rng.random(pool.n_users) < 0.5)[pool.user]
    increments = pool.increments(hits)
    assert np.all(np.diff(pool.seconds) >= 0) and pool.look_end[-1] == len(pool.user)
    for arm in (in_test, ~in_test):
        for ours, end in zip(arm_statistics(increments, arm, pool.look_end), pool.look_end, strict=True):
            theirs = direct(pool, hits, arm, end)
            for name in FIELDS:
                assert getattr(ours, name) == pytest.approx(getattr(theirs, name), abs=1e-9), name


def test_hits_before_counts_each_users_earlier_hits():
    pool = hand_pool(users=50)
    hits = np.random.default_rng(1).random(len(pool.user)) < 0.5
    before = pool.hits_before(hits)
    for r in range(len(pool.user)):
        same = (pool.user == pool.user[r]) & (np.arange(len(pool.user)) < r)
        assert before[r] == hits[same].sum() and pool.prior[r] == same.sum()


@pytest.fixture(scope="module")
def aa_pool_result():
    return validate_pool(hand_pool(), runs=200, seed=3, power_runs=60)


def test_aa_false_positives_and_peeking_on_a_hand_built_pool(aa_pool_result):
    result = aa_pool_result
    fpr = result.aa["false_positive_rate"]
    # 200 runs at a true 5 %: the binomial's 99.9 % range is 1-22 false positives
    low, high = stats.binom.ppf([0.0005, 0.9995], 200, 0.05) / 200
    for name in ("plain", "cuped"):
        assert low <= fpr[name]["rate"] <= high, name
    assert result.looks == 14  # a look every 12 simulated hours over a week
    # stopping at the first p < 0.05 of 14 looks inflates the fixed-horizon test; not the sequential one
    assert result.peeking["fixed_horizon"]["rate"] > 2 * fpr["plain"]["rate"]
    assert result.peeking["sequential"]["rate"] <= high
    assert result.peeking["inflation"] == pytest.approx(
        result.peeking["fixed_horizon"]["rate"] / 0.05, abs=0.01
    )


def test_ab_coverage_cuped_width_and_power_on_a_hand_built_pool():
    result = validate_pool(hand_pool(effect=0.06), runs=120, seed=4, power_runs=80)
    ab = result.ab
    assert ab["true_effect"] == pytest.approx(0.06, abs=0.003)
    for name in ("plain", "cuped", "sequential", "sequential_every_look"):
        assert ab["coverage"][name]["rate"] >= 0.88, name
    assert (
        ab["coverage"]["fixed_horizon_every_look"]["rate"] < ab["coverage"]["sequential_every_look"]["rate"]
    )
    assert 0 < ab["variance_reduction"] < 0.5 and ab["theta"] > 0
    assert ab["width_ratio"]["cuped_to_plain"] == pytest.approx(
        np.sqrt(1 - ab["variance_reduction"]), abs=0.02
    )
    assert ab["width_ratio"]["sequential_to_plain"] > 1
    whole = result.power["whole_pool"]
    for name in ("plain", "cuped", "sequential"):
        assert abs(whole["empirical"][name]["rate"] - whole["predicted"][name]) < 0.15, name
    at_80 = result.power["at_80pct"]
    assert at_80["cuped"]["users_per_arm"] < at_80["plain"]["users_per_arm"] <= result.users // 2
    for name in ("plain", "cuped"):
        assert at_80[name]["predicted"] == pytest.approx(0.8, abs=0.01)
        assert 0.6 <= at_80[name]["empirical"]["rate"] <= 0.95, name
    assert set(result.checks) >= {
        "aa_fpr_plain_3_7pct",
        "peeking_sequential_at_most_5pct",
        "coverage_cuped_93_97pct",
    }


def test_runs_are_deterministic_for_a_seed():
    pool = hand_pool(users=300)
    first = validate_pool(pool, runs=20, seed=7, power_runs=10).as_json()
    assert first == validate_pool(pool, runs=20, seed=7, power_runs=10).as_json()
    assert first != validate_pool(pool, runs=20, seed=8, power_runs=10).as_json()


@pytest.mark.parametrize(("k", "n"), [(50, 1000), (0, 200), (200, 200), (37, 123)])
def test_binomial_ci_is_wilsons(k, n):
    lo, hi = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert binomial_ci(k, n) == pytest.approx((round(lo, 4), round(hi, 4)), abs=1e-4)
    assert all(np.isnan(binomial_ci(0, 0)))


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


def test_pre_period_counts_likes_and_views_before_the_first_request(tiny_store):
    from gateway.features.dataset import time_split

    window = time_split(tiny_store, 7, 7).evaluation
    user_idx, seconds = request_pool(tiny_store, window, users=40, seed=2)
    users, likes, views = pre_period(tiny_store, user_idx, seconds, days=14)
    log = tiny_store.events
    assert len(users) == 40 and (views > 0).any() and (likes <= views + likes).all()
    for u, m, d in zip(users, likes, views, strict=True):
        first = seconds[user_idx == u].min()
        mine = (log["user"] == u) & (log["seconds"] >= first - 14 * 86400) & (log["seconds"] < first)
        like = log["like"].astype(bool)
        assert m == (mine & like).sum() and d == (mine & ~like).sum()


def test_validate_with_the_real_rankers_on_the_tiny_world(tiny_store, tiny_db, tiny_models):
    from gateway.config import ArmSettings
    from gateway.features.dataset import time_split
    from gateway.judging.oracle import OracleRanker
    from gateway.rankers.libraries import load_arm_rankers

    arms = [ArmSettings(name=a, weight=1, model=tiny_models / a) for a in ("control", "test")]
    models = load_arm_rankers(arms, tiny_store.manifest["feature_set_version"])
    oracle = OracleRanker(load_truth(connect(tiny_db)), tiny_store)
    window = time_split(tiny_store, 7, 7).evaluation
    result = validate(
        tiny_store,
        (models["control"], models["test"]),
        oracle,
        window,
        runs=150,
        seed=0,
        users=400,
        power_runs=40,
        look_seconds=12 * 3600,
    )
    out = result.as_json()
    assert out["mode"] == "ab" and result.users == 400 and result.requests >= 400
    assert result.rankers == {"control": models["control"].version, "test": models["test"].version}
    assert 0 < result.pre_period_share <= 1
    low, high = stats.binom.ppf([0.0005, 0.9995], 150, 0.05) / 150
    for name in ("plain", "cuped"):
        assert low <= out["aa"]["false_positive_rate"][name]["rate"] <= high, name
    assert out["peeking"]["sequential"]["rate"] <= high
    assert out["peeking"]["fixed_horizon"]["rate"] >= out["aa"]["false_positive_rate"]["plain"]["rate"]
    for name in ("plain", "cuped", "sequential"):
        assert out["ab"]["coverage"][name]["rate"] >= 0.85, name
    assert 0 < out["ab"]["width_ratio"]["cuped_to_plain"] <= 1.01


def test_the_cli_validates_config_yamls_arms_on_the_tiny_world(
    tiny_db, tiny_store_dir, tiny_models, tmp_path
):
    import json

    from typer.testing import CliRunner

    from gateway.cli import app
    from tests.conftest import write_config

    config = write_config(
        tmp_path / "config.yaml", db=tiny_db, features_dir=tiny_store_dir.parent, models=tiny_models
    )
    args = [
        "analyze",
        "validate",
        "--config",
        str(config),
        "--runs",
        "10",
        "--users",
        "150",
        "--power-runs",
        "10",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["mode"] == "ab" and out["users"] == 150 and out["runs"] == 10
    assert out["look_hours"] == 1 and out["looks"] >= 150  # a look every simulated hour of the week
    assert out["pre_period_days"] == 14 and out["sequential_tuning"] == 150
    assert set(out["rankers"]) == {"control", "test"}
    assert set(out["ab"]["coverage"]) >= {"plain", "cuped", "sequential", "sequential_every_look"}
