"""``recsys analyze validate``: does the A/B analysis keep its promises with the real rankers?

In process, for speed. A pool of requests (users with 1–6 requests each, times over the
held-out week) is ranked **once** by config.yaml's control and test rankers; each request's
chance of a hit under each arm is the truth's ``1 − Π(1 − p)`` over that arm's top 5, and each
user's pre-period covariate (likes and views in the ``pre_period_days`` before their first
request) is read from the event log. Then every simulated experiment only re-randomises users
50/50 and draws hits from those chances — pure numpy, seeded — and runs the same tests as
``recsys analyze`` (``analysis.frequentist``, ``analysis.sequential``, CUPED via
``analysis.cuped``) on per-arm sufficient statistics accumulated hour by hour.

* **A/A** (control's chances in both arms): false-positive rate at α = 0.05 of the plain and
  the CUPED test at the end of the week; and, looking **every simulated hour** and stopping at
  the first p < 0.05, of the fixed-horizon test (inflated) and of the sequential test.
* **A/B** (control vs test): the true effect of a run is the truth's — the mean over the run's
  requests of test's minus control's expected hit. Coverage of the 95 % intervals (plain,
  CUPED, sequential at the end, and the sequential interval at every look at once), CUPED's
  interval width relative to plain, the variance reduction.
* **Power**: the share of A/B runs with p < 0.05 against ``analysis.power``'s prediction, over
  the whole pool and at the calculator's own 80 %-power sample size (runs on random subsets of
  that many users, each subset's true effect from its own requests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _st
from sqlalchemy import Engine

from gateway.analysis.decision import ArmUsers, compare
from gateway.analysis.effects import EffectMoments, effect_moments
from gateway.analysis.power import Design, power, users_per_arm
from gateway.analysis.sequential import sequential_halfwidth, sequential_p_value, sequential_rho
from gateway.analysis.statistics import RegressionAdjustedRatioStatistic
from gateway.config import Settings
from gateway.features.dataset import time_split
from gateway.features.store import FeatureStore
from gateway.judging.oracle import OracleRanker
from gateway.progress import track
from gateway.rankers.compiled import compile_ranker
from gateway.rankers.libraries import load_arm_rankers
from gateway.rankers.protocol import Ranker
from gateway.ranking import Z_95, K, expected_hit, top_k
from gateway.world.load import load_truth

ALPHA = 0.05
LOOK_SECONDS = 3600  # a look every simulated hour
FIELDS = tuple(f for f in RegressionAdjustedRatioStatistic.__dataclass_fields__ if f != "theta")

# The bars the issue sets (the report says which are met).
FPR_BAND = (0.03, 0.07)
COVERAGE_BAND = (0.93, 0.97)


def binomial_ci(k: int, n: int) -> tuple[float, float]:
    """Wilson 95 % interval for a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    z, p = Z_95, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(float(centre - half), 4), round(float(centre + half), 4))


def request_pool(
    store: FeatureStore, window: tuple[int, int], users: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Requests (user index, epoch seconds): ``users`` distinct users, 1-6 requests each, at
    times from 06:00 of the window's first day to its end."""
    rng = np.random.default_rng([seed, 11])
    chosen = rng.choice(len(store.user_ids), min(users, len(store.user_ids)), replace=False)
    per_user = rng.integers(1, 7, len(chosen))
    user_idx = np.repeat(chosen, per_user)
    seconds = rng.integers(window[0] + 6 * 3600, window[1], len(user_idx))
    return user_idx.astype(np.int64), seconds.astype(np.int64)


def rank_pool(
    store: FeatureStore,
    rankers: tuple[Ranker, Ranker],
    oracle: OracleRanker,
    user_idx: np.ndarray,
    seconds: np.ndarray,
    chunk: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each ranker's top K per request (features computed once) and the truth's p of those posts."""
    tops: list[list[np.ndarray]] = [[], []]
    chances: list[list[np.ndarray]] = [[], []]
    for start in track(
        range(0, len(user_idx), chunk), "ranking the pool (control, test)", total=-(-len(user_idx) // chunk)
    ):
        u, s = user_idx[start : start + chunk], seconds[start : start + chunk]
        features = store.compute(u, s)
        excluded = store.liked_before_each(u, s)
        for i, ranker in enumerate(rankers):
            best = top_k(ranker.score(store, u, s, features), K, excluded)
            p = oracle.like_prob(u, s, np.maximum(best, 0))
            tops[i].append(best)
            chances[i].append(np.where(best >= 0, p, 0.0))
    return (*(np.concatenate(t) for t in tops), *(np.concatenate(c) for c in chances))


def pre_period(
    store: FeatureStore, user_idx: np.ndarray, seconds: np.ndarray, days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct user of the pool (sorted): (user index, likes, views) in the ``days`` before
    their first request — the CUPED covariate, 0/0 for a user without a pre-period."""
    users, inverse = np.unique(user_idx, return_inverse=True)
    first = np.full(len(users), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, seconds)
    views, likes = store.activity_between(users, first - round(days * 86400), first)
    return users, likes.astype(float), views.astype(float)


@dataclass(frozen=True)
class Pool:
    """The simulated requests in time order, with everything a run needs precomputed.

    ``user`` is each request's dense user number; ``prior`` how many earlier requests that user
    made; ``q`` each arm's chance of a hit; ``m_pre``/``d_pre`` each user's pre-period likes and
    views; ``look_end[j]`` the number of requests before the end of look ``j`` (the last look
    is the whole pool).
    """

    user: np.ndarray
    seconds: np.ndarray
    prior: np.ndarray
    q_control: np.ndarray
    q_test: np.ndarray
    m_pre: np.ndarray
    d_pre: np.ndarray
    look_end: np.ndarray
    look_seconds: int
    by_user: np.ndarray = field(repr=False)  # request order grouped by user (time order within)
    group_start: np.ndarray = field(repr=False)  # for each entry of by_user: its group's first position

    @property
    def n_users(self) -> int:
        return len(self.m_pre)

    @classmethod
    def build(
        cls,
        user: np.ndarray,
        seconds: np.ndarray,
        q_control: np.ndarray,
        q_test: np.ndarray,
        m_pre: np.ndarray,
        d_pre: np.ndarray,
        *,
        start: int | None = None,
        look_seconds: int = LOOK_SECONDS,
    ) -> Pool:
        """``user`` dense (0 … users − 1, indexing ``m_pre``/``d_pre``); looks every
        ``look_seconds`` from ``start`` (default: the first request) until the last request."""
        order = np.argsort(seconds, kind="stable")
        user, seconds = np.asarray(user)[order], np.asarray(seconds)[order]
        by_user = np.lexsort((np.arange(len(user)), user))
        grouped = user[by_user]
        new_group = np.r_[True, grouped[1:] != grouped[:-1]]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(user)), 0))
        prior = np.empty(len(user), dtype=np.int64)
        prior[by_user] = np.arange(len(user)) - group_start
        begin = int(seconds[0]) if start is None else start
        bounds = np.arange(begin + look_seconds, int(seconds[-1]) + look_seconds + 1, look_seconds)
        look_end = np.searchsorted(seconds, bounds, side="left")
        look_end[-1] = len(user)
        return cls(
            user=user,
            seconds=seconds,
            prior=prior,
            q_control=np.asarray(q_control, dtype=float)[order],
            q_test=np.asarray(q_test, dtype=float)[order],
            m_pre=np.asarray(m_pre, dtype=float),
            d_pre=np.asarray(d_pre, dtype=float),
            look_end=look_end,
            look_seconds=look_seconds,
            by_user=by_user,
            group_start=group_start,
        )

    def arm_users(self, hits: np.ndarray, rows: np.ndarray) -> ArmUsers:
        """Per-user sums over ``rows`` (a request mask): the input of ``decision.compare``."""
        m = np.bincount(self.user[rows], hits[rows].astype(float), self.n_users)
        d = np.bincount(self.user[rows], minlength=self.n_users).astype(float)
        present = d > 0
        return ArmUsers.of(m[present], d[present], self.m_pre[present], self.d_pre[present])

    def hits_before(self, hits: np.ndarray) -> np.ndarray:
        """Each request's user's hits in their earlier requests."""
        grouped = hits[self.by_user].astype(float)
        inclusive = np.cumsum(grouped)
        before_group = np.r_[0.0, inclusive][self.group_start]
        out = np.empty(len(hits))
        out[self.by_user] = inclusive - grouped - before_group
        return out

    def increments(self, hits: np.ndarray) -> np.ndarray:
        """(requests, fields): what each request adds to its arm's sufficient statistics, in the
        order of ``FIELDS`` (a user's pre-period enters with their first request)."""
        h = hits.astype(float)
        k = self.prior.astype(float)
        before = self.hits_before(hits)
        first = (self.prior == 0).astype(float)
        mp, dp = self.m_pre[self.user], self.d_pre[self.user]
        columns = {
            "n": first,
            "m_sum": h,
            "m_sum_squares": h * (2 * before + 1),
            "d_sum": np.ones_like(h),
            "d_sum_squares": 2 * k + 1,
            "m_pre_sum": first * mp,
            "m_pre_sum_squares": first * mp * mp,
            "d_pre_sum": first * dp,
            "d_pre_sum_squares": first * dp * dp,
            "m_d_sum_of_products": before + h * (k + 1),
            "m_m_pre_sum_of_products": h * mp,
            "m_d_pre_sum_of_products": h * dp,
            "d_m_pre_sum_of_products": mp,
            "d_d_pre_sum_of_products": dp,
            "m_pre_d_pre_sum_of_products": first * mp * dp,
        }
        return np.column_stack([columns[f] for f in FIELDS])


def arm_statistics(
    increments: np.ndarray, in_arm: np.ndarray, ends: np.ndarray
) -> list[RegressionAdjustedRatioStatistic]:
    """An arm's CUPED ratio statistic over the first ``end`` requests, for each of ``ends``."""
    cumulative = np.vstack([np.zeros(len(FIELDS)), np.cumsum(increments * in_arm[:, None], axis=0)])
    return [
        RegressionAdjustedRatioStatistic(int(round(row[0])), *map(float, row[1:])) for row in cumulative[ends]
    ]


@dataclass(frozen=True)
class Run:
    """One simulated experiment: at the end of the week, the ``delta``, ``cuped`` and
    ``sequential`` objects exactly as ``recsys analyze`` computes them (``decision.compare``);
    at every look, the plain effect's fixed-horizon and sequential p-values and whether each
    interval covered ``truth``."""

    truth: float
    delta: dict
    cuped: dict
    sequential: dict
    sigma2: float  # per-user delta-method variance of Hitrate@5, mean of the two arms
    fixed_p: np.ndarray
    sequential_p: np.ndarray
    fixed_covers: np.ndarray
    sequential_covers: np.ndarray


def _looks(effects: list[EffectMoments], truth: float, tuning: float) -> np.ndarray:
    """(looks, 4): fixed-horizon p, sequential p, and whether each interval covers ``truth``, for
    each look's plain effect — the formulas of ``two_sided_ttest`` and ``sequential_ttest``, with
    the t distribution evaluated once for all looks. A look without a usable effect claims
    nothing: p = 1, covered."""
    out = np.tile([1.0, 1.0, 1.0, 1.0], (len(effects), 1))
    ok = [i for i, e in enumerate(effects) if e.ok]
    if not ok:
        return out
    estimate = np.array([effects[i].estimate for i in ok])
    se = np.array([effects[i].standard_error for i in ok])
    df = np.array([effects[i].df for i in ok])
    out[ok, 0] = 2 * _st.t.sf(np.abs(estimate) / se, df)
    fixed_half = _st.t.ppf(1 - ALPHA / 2, df) * se
    out[ok, 2] = np.abs(estimate - truth) <= fixed_half
    rho = sequential_rho(ALPHA, tuning)
    for i in ok:
        e = effects[i]
        s2 = e.variance * e.n
        out[i, 1] = sequential_p_value(e.estimate, s2, e.n, rho)
        out[i, 3] = abs(e.estimate - truth) <= sequential_halfwidth(s2, e.n, tuning, ALPHA, rho)
    return out


def simulate_run(
    pool: Pool,
    in_test_user: np.ndarray,
    rng: np.random.Generator,
    *,
    q_test: np.ndarray,
    tuning: float,
    requests: np.ndarray | None = None,
    every_look: bool = True,
) -> Run:
    """One experiment: users in test where ``in_test_user``, hits drawn from control's chances
    or ``q_test``; only ``requests`` (a mask; default all) take part."""
    keep = np.ones(len(pool.user), dtype=bool) if requests is None else requests
    in_test = in_test_user[pool.user]
    hits = rng.random(len(pool.user)) < np.where(in_test, q_test, pool.q_control)
    truth = float(np.mean(q_test[keep]) - np.mean(pool.q_control[keep]))
    increments = pool.increments(hits)
    ends = pool.look_end if every_look else pool.look_end[-1:]
    control = arm_statistics(increments, keep & ~in_test, ends)
    test = arm_statistics(increments, keep & in_test, ends)
    looks = _looks(
        [effect_moments(a.post, b.post) for a, b in zip(control, test, strict=True)], truth, tuning
    )
    c, t = pool.arm_users(hits, keep & ~in_test), pool.arm_users(hits, keep & in_test)
    final = compare(c, t, planned_users=tuning, alpha=ALPHA)
    return Run(
        truth=truth,
        delta=final["delta"],
        cuped=final["cuped"],
        sequential=final["sequential"],
        sigma2=(c.ratio().variance + t.ratio().variance) / 2,
        fixed_p=looks[:, 0],
        sequential_p=looks[:, 1],
        fixed_covers=looks[:, 2].astype(bool),
        sequential_covers=looks[:, 3].astype(bool),
    )


def _coin(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n) < 0.5


def _covers(result: dict, truth: float) -> bool:
    low, high = result["ci95_absolute"]
    return low is not None and low <= truth <= high  # no interval never covers


def _rate(flags: list[bool] | np.ndarray) -> dict:
    flags = np.asarray(flags, dtype=bool)
    return {"rate": round(float(flags.mean()), 4), "ci95": binomial_ci(int(flags.sum()), len(flags))}


def _width(result: dict) -> float:
    return result["ci95_absolute"][1] - result["ci95_absolute"][0]


def _significant(result: dict) -> bool:
    return result["p_value"] < ALPHA


def _subset_power(
    pool: Pool,
    per_arm: int,
    runs: int,
    seed: int,
    label: str,
    test_of: Callable[[Run], dict],
    tuning: float,
) -> dict:
    """Runs on random subsets of ``2 · per_arm`` users split exactly in two: share with p < α."""
    detected, truths = [], []
    for run in range(runs):
        rng = np.random.default_rng([seed, 42, run, sum(map(ord, label))])
        chosen = rng.permutation(pool.n_users)[: 2 * per_arm]
        in_test_user = np.zeros(pool.n_users, dtype=bool)
        in_test_user[chosen[per_arm:]] = True
        taking_part = np.zeros(pool.n_users, dtype=bool)
        taking_part[chosen] = True
        result = simulate_run(
            pool, in_test_user, rng, q_test=pool.q_test, tuning=tuning,
            requests=taking_part[pool.user], every_look=False,
        )  # fmt: skip
        detected.append(_significant(test_of(result)))
        truths.append(result.truth)
    return {**_rate(detected), "true_effect_mean": round(float(np.mean(truths)), 5)}


@dataclass
class ABValidation:
    runs: int
    users: int
    requests: int
    looks: int
    look_hours: float
    sequential_tuning: float
    pre_period_days: float
    pre_period_share: float  # users with any pre-period view
    aa: dict
    peeking: dict
    ab: dict
    power: dict
    checks: dict  # each bar of the issue: met or not
    rankers: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"mode": "ab", **self.__dict__}


def validate_pool(
    pool: Pool,
    *,
    runs: int,
    seed: int,
    tuning: float | None = None,
    power_runs: int = 400,
    pre_period_days: float = 14.0,
) -> ABValidation:
    """The A/A, peeking, A/B and power simulations on a ranked pool."""
    tuning = float(tuning or pool.n_users)
    aa: list[Run] = []
    for run in track(range(runs), f"A/A experiments ({len(pool.look_end)} looks each)", total=runs):
        rng = np.random.default_rng([seed, 21, run])
        aa.append(simulate_run(pool, _coin(rng, pool.n_users), rng, q_test=pool.q_control, tuning=tuning))
    ab: list[Run] = []
    for run in track(range(runs), f"A/B experiments ({len(pool.look_end)} looks each)", total=runs):
        rng = np.random.default_rng([seed, 22, run])
        ab.append(simulate_run(pool, _coin(rng, pool.n_users), rng, q_test=pool.q_test, tuning=tuning))

    tests: dict[str, Callable[[Run], dict]] = {
        "plain": lambda r: r.delta,
        "cuped": lambda r: r.cuped,
        "sequential": lambda r: r.sequential,
    }
    fpr = {name: _rate([_significant(test(r)) for r in aa]) for name, test in tests.items()}
    peeking = {
        "fixed_horizon": _rate([bool((r.fixed_p < ALPHA).any()) for r in aa]),
        "sequential": _rate([bool((r.sequential_p < ALPHA).any()) for r in aa]),
    }
    peeking["inflation"] = round(peeking["fixed_horizon"]["rate"] / ALPHA, 2)
    truth = float(np.mean([r.truth for r in ab]))
    coverage = {name: _rate([_covers(test(r), r.truth) for r in ab]) for name, test in tests.items()}
    coverage["sequential_every_look"] = _rate([bool(r.sequential_covers.all()) for r in ab])
    coverage["fixed_horizon_every_look"] = _rate([bool(r.fixed_covers.all()) for r in ab])
    usable = [r for r in ab if all(test(r)["ci95_absolute"][0] is not None for test in tests.values())]
    reduction = float(np.mean([r.cuped["variance_reduction"] for r in usable]))
    ab_summary = {
        "true_effect": round(truth, 5),
        "mean_estimate": {
            name: round(float(np.mean([test(r)["absolute"] for r in usable])), 5)
            for name, test in tests.items()
        },
        "coverage": coverage,
        "width_ratio": {
            f"{name}_to_plain": round(
                float(np.mean([_width(tests[name](r)) / _width(r.delta) for r in usable])), 4
            )
            for name in ("cuped", "sequential")
        },
        "variance_reduction": round(reduction, 4),
        "theta": round(float(np.mean([r.cuped["theta"] for r in usable])), 4),
    }

    sigma2 = float(np.mean([r.sigma2 for r in ab]))
    half = pool.n_users // 2
    designs = {
        "plain": Design(alpha=ALPHA),
        "cuped": Design(alpha=ALPHA, variance_reduction=max(reduction, 0.0)),
        "sequential": Design(alpha=ALPHA, sequential_tuning=tuning),
    }
    power_report: dict = {
        "sigma2": round(sigma2, 6),
        "whole_pool": {
            "users_per_arm": half,
            "empirical": {name: _rate([_significant(tests[name](r)) for r in ab]) for name in designs},
            "predicted": {name: round(power(truth, sigma2, half, d), 4) for name, d in designs.items()},
        },
        "at_80pct": {},
    }
    for name in ("plain", "cuped"):
        design = designs[name]
        needed = users_per_arm(truth, sigma2, design) if truth else None
        entry: dict = {"users_per_arm": needed}
        if needed is not None and 2 * needed <= pool.n_users:
            entry["predicted"] = round(power(truth, sigma2, needed, design), 4)
            entry["empirical"] = _subset_power(pool, needed, power_runs, seed, name, tests[name], tuning)
        else:
            entry["message"] = "the pool has too few users for the calculator's sample size"
        power_report["at_80pct"][name] = entry

    checks = {
        "aa_fpr_plain_3_7pct": FPR_BAND[0] <= fpr["plain"]["rate"] <= FPR_BAND[1],
        "aa_fpr_cuped_3_7pct": FPR_BAND[0] <= fpr["cuped"]["rate"] <= FPR_BAND[1],
        "peeking_sequential_at_most_5pct": peeking["sequential"]["rate"] <= ALPHA,
        **{
            f"coverage_{name}_93_97pct": COVERAGE_BAND[0] <= coverage[name]["rate"] <= COVERAGE_BAND[1]
            for name in ("plain", "cuped")
        },
        "coverage_sequential_at_least_95pct": coverage["sequential"]["rate"] >= 1 - ALPHA,
        **{
            f"power_{name}_at_80pct_within_ci": (
                entry["empirical"]["ci95"][0] <= entry["predicted"] <= entry["empirical"]["ci95"][1]
            )
            for name, entry in power_report["at_80pct"].items()
            if "empirical" in entry
        },
    }
    return ABValidation(
        runs=runs,
        users=pool.n_users,
        requests=len(pool.user),
        looks=len(pool.look_end),
        look_hours=pool.look_seconds / 3600,
        sequential_tuning=tuning,
        pre_period_days=pre_period_days,
        pre_period_share=round(float(np.mean(pool.d_pre > 0)), 4),
        aa={"false_positive_rate": fpr},
        peeking=peeking,
        ab=ab_summary,
        power=power_report,
        checks=checks,
    )


def validate(
    store: FeatureStore,
    rankers: tuple[Ranker, Ranker],
    oracle: OracleRanker,
    window: tuple[int, int],
    *,
    runs: int,
    seed: int,
    users: int = 4000,
    tuning: float | None = None,
    power_runs: int = 400,
    pre_period_days: float = 14.0,
    look_seconds: int = LOOK_SECONDS,
) -> ABValidation:
    """Rank a pool of ``users`` once with (control, test), then :func:`validate_pool`."""
    user_idx, seconds = request_pool(store, window, users, seed)
    _, _, p_c, p_t = rank_pool(store, rankers, oracle, user_idx, seconds)
    users_sorted, m_pre, d_pre = pre_period(store, user_idx, seconds, pre_period_days)
    dense = np.searchsorted(users_sorted, user_idx)
    pool = Pool.build(
        dense,
        seconds,
        expected_hit(p_c),
        expected_hit(p_t),
        m_pre,
        d_pre,
        start=window[0] + 6 * 3600,
        look_seconds=look_seconds,
    )
    result = validate_pool(
        pool, runs=runs, seed=seed, tuning=tuning, power_runs=power_runs, pre_period_days=pre_period_days
    )
    result.rankers = {"control": rankers[0].version, "test": rankers[1].version}
    return result


def arm_rankers(settings: Settings, store: FeatureStore) -> tuple[Ranker, Ranker]:
    """config.yaml's first two arms (control, test), compiled forests attached when cached."""
    arms = settings.experiment.arms[:2]
    models = load_arm_rankers(arms, store.manifest["feature_set_version"])
    for ranker in models.values():
        with contextlib.suppress(Exception):  # no usable cache: the library's predictor scores the same
            compile_ranker(ranker, compile_if_missing=False)
    return models[arms[0].name], models[arms[1].name]


def evaluation_window(settings: Settings, store: FeatureStore) -> tuple[int, int]:
    return time_split(store, settings.training.validation_days, settings.training.evaluation_days).evaluation


def validate_on_world(
    settings: Settings,
    store: FeatureStore,
    engine: Engine,
    *,
    runs: int,
    seed: int,
    users: int = 4000,
    tuning: float | None = None,
    power_runs: int = 400,
) -> ABValidation:
    """``validate`` with config.yaml's control and test over the held-out period, the world in
    ``engine`` as the truth, CUPED's pre-period from ``analysis.cuped_days``."""
    oracle = OracleRanker(load_truth(engine), store)
    return validate(
        store,
        arm_rankers(settings, store),
        oracle,
        evaluation_window(settings, store),
        runs=runs,
        seed=seed,
        users=users,
        tuning=tuning,
        power_runs=power_runs,
        pre_period_days=settings.analysis.cuped_days,
    )
