"""``recsys analyze validate --mode interleave``: does interleaving keep its promises here, and
how many fewer users does it need than an A/B test on the same world?

In process, like the A/B validation (``validation.py``), on the same request pool (users with
1–6 requests in the held-out week). Each request is ranked once by the configured control and
test rankers (one feature computation, both scores; liked-before exclusion), each keeping its
top 5. For every run, each request gets its own team-draft coins, its merged list, and likes
drawn for each shown post with the truth's probability; the interleaving analysis
(``analysis.preference``) then runs exactly as ``recsys analyze`` runs it.

* **A/A**: control's ranking on both teams; the share of runs with p < 0.05 must be 3–7 %.
* **Sign**: in each A/B run (control vs test) the preference's sign against the sign of the
  truth's A/B effect (expected Hitrate@5 of test minus control on the same requests). The
  expected preference itself is computed exactly, over every coin and like pattern.
* **Users for 80 % power** (α = 0.05, two-sided), by simulation: the smallest number of users
  whose simulated experiments (fresh users, coins and likes in each) reach p < 0.05 in 80 % of
  runs, found by bisection — A/B with two equal arms, interleaving with one group. Beside it the
  closed form ``n = (z + z)² σ² / δ²`` (A/B: δ the truth's effect, σ² the per-user
  delta-method variance of Hitrate@5, per arm; interleaving: δ the exact expected preference,
  σ² the per-user variance of the preference) and the simulated power at the closed-form sizes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine

from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.power import users_per_arm
from gateway.analysis.preference import preference_statistic, preference_test, users_for_power
from gateway.analysis.statistics import RatioStatistic
from gateway.config import Settings
from gateway.features.store import FeatureStore
from gateway.interleaving import TEAM_B, team_draft
from gateway.judging.oracle import OracleRanker
from gateway.judging.validation import arm_rankers, binomial_ci, evaluation_window, rank_pool, request_pool
from gateway.rankers.protocol import Ranker
from gateway.ranking import K, expected_hit
from gateway.world.load import load_truth

ROUNDS = (K + 1) // 2  # coin flips per request: one per round of two picks
PATTERNS = np.array(list(itertools.product((True, False), repeat=ROUNDS)))  # every coin sequence


@dataclass
class MergedPool:
    """Every request's merged list under every coin pattern: like chances and teams per position."""

    p: np.ndarray  # (requests, patterns, K) the truth's like probability of each shown post
    teams: np.ndarray  # (requests, patterns, K) TEAM_A (control) or TEAM_B (test); -1 for no post


@dataclass
class InterleaveValidation:
    runs: int
    users: int
    requests: int
    aa_false_positive_rate: float
    aa_ci95: tuple[float, float]
    sign_agreement: float
    ab_true_effect: float
    expected_preference: float
    preference_mean: float
    users_for_80pct_power: dict[str, int]
    variance_per_user: dict[str, float]
    closed_form: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(
        default_factory=dict
    )  # simulation, or closed form if the pool is too small
    empirical_power: dict[str, float] = field(default_factory=dict)
    method: str = (
        "users_for_80pct_power: by simulation (bisection on the number of users, power_runs simulated "
        "experiments per step; A/B: both arms together); closed_form: n = (z_0.975 + z_0.8)^2 sigma^2 / delta^2 "
        "(A/B two arms, interleaving one group against 0); empirical_power: simulated power at the closed-form sizes"
    )

    @property
    def ratio(self) -> float:
        return self.users_for_80pct_power["ab"] / self.users_for_80pct_power["interleave"]

    def as_json(self) -> dict:
        return {"mode": "interleave", **self.__dict__, "ratio": round(self.ratio, 2)}


def merge_all(top_a: np.ndarray, top_b: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> MergedPool:
    """Team-draft merges of two top-K lists per request, for every coin pattern."""
    n = len(top_a)
    p = np.zeros((n, len(PATTERNS), K))
    teams = np.full((n, len(PATTERNS), K), -1, dtype=np.int8)
    for r in range(n):
        chance = dict(zip(top_a[r].tolist(), p_a[r].tolist(), strict=True))
        chance.update(zip(top_b[r].tolist(), p_b[r].tolist(), strict=True))
        a = [i for i in top_a[r].tolist() if i >= 0]
        b = [i for i in top_b[r].tolist() if i >= 0]
        for c, coins in enumerate(PATTERNS):
            merged = team_draft(a, b, K, coins)
            length = len(merged.items)
            p[r, c, :length] = [chance[i] for i in merged.items]
            teams[r, c, :length] = merged.teams
    return MergedPool(p, teams)


def expected_preference(pool: MergedPool) -> float:
    """E[Σ (wins_test − wins_control)] / E[Σ requests with a winner], exactly: every coin pattern
    (equally likely) and every like pattern (independent likes with the truth's p)."""
    numerator = denominator = 0.0
    test = pool.teams == TEAM_B
    control = pool.teams == 1 - TEAM_B
    for likes in itertools.product((False, True), repeat=K):
        liked = np.array(likes)
        chance = np.prod(np.where(liked, pool.p, 1 - pool.p), axis=2)  # (requests, patterns)
        outcome = np.sign((test & liked).sum(axis=2) - (control & liked).sum(axis=2))
        numerator += float((chance * outcome).sum())
        denominator += float((chance * np.abs(outcome)).sum())
    return numerator / denominator if denominator else 0.0


def interleave_runs(
    pool: MergedPool, users: np.ndarray, runs: int, seed: int, label: str, sample: int | None = None
) -> list:
    """``runs`` simulated interleaving experiments: coins, likes, the clustered preference test.

    ``users`` is each request's dense user number; ``sample`` (users) restricts each run to a
    fresh random subset of that many users."""
    n_users = int(users.max()) + 1
    rows = np.arange(len(users))
    results = []
    for run in range(runs):
        rng = np.random.default_rng([seed, 31, run, sum(map(ord, label))])
        keep = np.ones(len(users), dtype=bool)
        if sample is not None:
            keep = np.isin(users, rng.choice(n_users, sample, replace=False))
        pattern = rng.integers(0, len(PATTERNS), len(users))
        p, teams = pool.p[rows, pattern], pool.teams[rows, pattern]
        liked = rng.random(p.shape) < p
        outcome = np.sign((liked & (teams == TEAM_B)).sum(1) - (liked & (teams == 1 - TEAM_B)).sum(1))
        u = users[keep]
        wins_test = np.bincount(u, (outcome[keep] > 0).astype(float), n_users)
        wins_control = np.bincount(u, (outcome[keep] < 0).astype(float), n_users)
        present = np.bincount(u, minlength=n_users) > 0
        results.append(preference_test(preference_statistic(wins_control[present], wins_test[present])))
    return results


def _hits_statistic(users: np.ndarray, hits: np.ndarray, mask: np.ndarray, n_users: int) -> RatioStatistic:
    m = np.bincount(users[mask], hits[mask].astype(float), n_users)
    d = np.bincount(users[mask], minlength=n_users).astype(float)
    keep = d > 0
    return RatioStatistic.from_values(m[keep], d[keep])


def ab_variance(users: np.ndarray, q_control: np.ndarray, q_test: np.ndarray, runs: int, seed: int) -> float:
    """Per-user delta-method variance of Hitrate@5, pooled over both rankers and ``runs`` draws."""
    n_users = int(users.max()) + 1
    everyone = np.ones(len(users), dtype=bool)
    values = []
    for run in range(runs):
        rng = np.random.default_rng([seed, 32, run])
        for q in (q_control, q_test):
            values.append(_hits_statistic(users, rng.random(len(q)) < q, everyone, n_users).variance)
    return float(np.mean(values))


def ab_power(
    users: np.ndarray, q_control: np.ndarray, q_test: np.ndarray, per_arm: int, runs: int, seed: int
) -> float:
    """Share of simulated A/B tests with ``per_arm`` random users per arm that reach p < 0.05."""
    n_users = int(users.max()) + 1
    detected = 0
    for run in range(runs):
        rng = np.random.default_rng([seed, 33, run])
        chosen = rng.permutation(n_users)[: 2 * per_arm]
        arm = np.full(n_users, -1)
        arm[chosen[:per_arm]], arm[chosen[per_arm:]] = 0, 1
        hits = rng.random(len(users)) < np.where(arm[users] == 1, q_test, q_control)
        control = _hits_statistic(users, hits, arm[users] == 0, n_users)
        test = _hits_statistic(users, hits, arm[users] == 1, n_users)
        detected += two_sided_ttest(control, test).p_value < 0.05
    return detected / runs


def smallest_sample(power_of, low: int, high: int, target: float = 0.8) -> int | None:
    """The smallest n in [low, high] whose simulated power reaches ``target``, by bisection to
    2 % (the runs reuse their seeds at every n, so the power is nearly monotone in n); None when
    even ``high`` falls short."""
    if power_of(high) < target:
        return None
    while high - low > max(1, low // 50):
        middle = (low + high) // 2
        if power_of(middle) >= target:
            high = middle
        else:
            low = middle
    return high


def validate_interleaving(
    store: FeatureStore,
    rankers: tuple[Ranker, Ranker],
    oracle: OracleRanker,
    window: tuple[int, int],
    *,
    runs: int,
    seed: int,
    users: int = 4000,
    power_runs: int = 400,
) -> InterleaveValidation:
    user_idx, seconds = request_pool(store, window, users, seed)
    top_c, top_t, p_c, p_t = rank_pool(store, rankers, oracle, user_idx, seconds)
    q_control, q_test = expected_hit(p_c), expected_hit(p_t)
    true_effect = float(q_test.mean() - q_control.mean())
    _, dense = np.unique(user_idx, return_inverse=True)
    n_users = int(dense.max()) + 1

    aa = interleave_runs(merge_all(top_c, top_c, p_c, p_c), dense, runs, seed, "aa")
    ab_pool = merge_all(top_c, top_t, p_c, p_t)
    ab = interleave_runs(ab_pool, dense, runs, seed, "ab")
    false_positives = sum(r.p_value < 0.05 for r in aa)
    estimates = np.array([r.preference for r in ab])
    preference = expected_preference(ab_pool)

    sigma2_ab = ab_variance(dense, q_control, q_test, min(runs, power_runs), seed)
    sigma2_il = float(np.mean([r.variance for r in ab if r.ok]))
    per_arm = users_per_arm(true_effect, sigma2_ab)
    n_interleave = users_for_power(preference, sigma2_il)

    def ab_at(n: int) -> float:
        return ab_power(dense, q_control, q_test, n, power_runs, seed)

    def interleave_at(n: int) -> float:
        runs_at_n = interleave_runs(ab_pool, dense, power_runs, seed, "power", sample=n)
        return float(np.mean([r.p_value < 0.05 for r in runs_at_n]))

    empirical = {}
    if 2 * per_arm <= n_users:
        empirical["ab"] = round(ab_at(per_arm), 4)
    if n_interleave <= n_users:
        empirical["interleave"] = round(interleave_at(n_interleave), 4)
    simulated_per_arm = smallest_sample(ab_at, 2, n_users // 2)
    simulated_interleave = smallest_sample(interleave_at, 2, n_users)
    closed_form = {"ab": 2 * per_arm, "interleave": n_interleave}
    return InterleaveValidation(
        runs=runs,
        users=n_users,
        requests=len(user_idx),
        aa_false_positive_rate=round(false_positives / runs, 4),
        aa_ci95=binomial_ci(false_positives, runs),
        sign_agreement=round(float(np.mean(np.sign(estimates) == np.sign(true_effect))), 4),
        ab_true_effect=round(true_effect, 5),
        expected_preference=round(preference, 5),
        preference_mean=round(float(estimates.mean()), 5),
        users_for_80pct_power={
            "ab": 2 * simulated_per_arm if simulated_per_arm else closed_form["ab"],
            "interleave": simulated_interleave or closed_form["interleave"],
        },
        variance_per_user={"ab": round(sigma2_ab, 6), "interleave": round(sigma2_il, 6)},
        closed_form=closed_form,
        source={
            "ab": "simulation" if simulated_per_arm else "closed form",
            "interleave": "simulation" if simulated_interleave else "closed form",
        },
        empirical_power=empirical,
    )


def validate_interleaving_on_world(
    settings: Settings, store: FeatureStore, engine: Engine, *, runs: int, seed: int, users: int = 4000
) -> InterleaveValidation:
    """``validate_interleaving`` with config.yaml's first two arms (compiled forests attached when
    cached) over the held-out period, the world in ``engine`` as the truth."""
    oracle = OracleRanker(load_truth(engine), store)
    rankers = arm_rankers(settings, store)
    window = evaluation_window(settings, store)
    return validate_interleaving(store, rankers, oracle, window, runs=runs, seed=seed, users=users)
