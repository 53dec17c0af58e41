"""``recsys analyze validate``: does the analysis keep its promises on this world?

In process, for speed. A pool of requests (users with 1–6 requests each, times in the
held-out week) is ranked once per ranker; each request's chance of a hit is the truth's
1 − Π(1 − p) over the top 5. Every run re-randomises users with a new salt (md5 scheme,
50/50), draws hits from those chances and runs the same test as ``recsys analyze``.

* A/A (both arms the same ranker): the share of runs with p < 0.05 must be near 5 %.
* A/B (popularity vs the oracle): the true effect is known — the mean over the pool of the
  difference in hit chances — and the 95 % interval must cover it in ~95 % of runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from gateway.analysis.statistics import RatioStatistic, two_sided_ttest
from gateway.assignment import md5_bucket
from gateway.config import Settings
from gateway.features.dataset import time_split
from gateway.features.store import FeatureStore
from gateway.judging.oracle import OracleRanker
from gateway.progress import track
from gateway.rankers.baselines import PopularityRanker
from gateway.rankers.protocol import Ranker
from gateway.ranking import Z_95, K, top_k_expected_hit
from gateway.world.load import load_truth


@dataclass
class ValidationResult:
    runs: int
    users: int
    requests: int
    aa_false_positive_rate: float
    aa_ci95: tuple[float, float]
    ab_true_effect: float
    ab_coverage: float
    ab_coverage_ci95: tuple[float, float]
    ab_power: float

    def as_json(self) -> dict:
        return self.__dict__


def _binomial_ci(k: int, n: int) -> tuple[float, float]:
    """Wilson 95 % interval for a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    z, p = Z_95, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(centre - half, 4), round(centre + half, 4))


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


def hit_chances(
    store: FeatureStore, ranker: Ranker, oracle: OracleRanker, user_idx, seconds, chunk: int = 100
) -> np.ndarray:
    out = []
    for start in track(
        range(0, len(user_idx), chunk), f"ranking the pool ({ranker.name})", total=-(-len(user_idx) // chunk)
    ):
        u, s = user_idx[start : start + chunk], seconds[start : start + chunk]
        truth_p = oracle.like_prob(u, s)
        scores = truth_p if ranker is oracle else ranker.score(store, u, s)
        out.append(top_k_expected_hit(scores, truth_p, K, store.liked_before_each(u, s))[1])
    return np.concatenate(out)


def _ratio(hits: np.ndarray, requests: np.ndarray) -> RatioStatistic:
    keep = requests > 0
    m, d = hits[keep].astype(float), requests[keep].astype(float)
    return RatioStatistic(int(keep.sum()), m.sum(), (m**2).sum(), d.sum(), (d**2).sum(), (m * d).sum())


def run_trials(
    user_idx: np.ndarray,
    user_ids: np.ndarray,
    q_control: np.ndarray,
    q_test: np.ndarray,
    runs: int,
    seed: int,
    label: str,
) -> list:
    """Re-randomise and re-draw ``runs`` times; return the test results."""
    users, inverse = np.unique(user_idx, return_inverse=True)
    results = []
    for run in range(runs):
        salt = f"{label}-{seed}-{run}"
        in_test = np.array([md5_bucket(int(user_ids[u]), salt) >= 50 for u in users])[inverse]
        rng = np.random.default_rng([seed, 12, run])
        hits = rng.random(len(user_idx)) < np.where(in_test, q_test, q_control)
        stats = []
        for arm in (False, True):
            mask = in_test == arm
            stats.append(
                _ratio(
                    np.bincount(inverse[mask], hits[mask], len(users)),
                    np.bincount(inverse[mask], minlength=len(users)),
                )
            )
        results.append(two_sided_ttest(stats[0], stats[1]))
    return results


def validate(
    store: FeatureStore,
    oracle: OracleRanker,
    window: tuple[int, int],
    *,
    runs: int,
    seed: int,
    users: int = 4000,
    aa_ranker: Ranker | None = None,
) -> ValidationResult:
    user_idx, seconds = request_pool(store, window, users, seed)
    aa_ranker = aa_ranker or PopularityRanker()
    q_pop = hit_chances(store, aa_ranker, oracle, user_idx, seconds)
    q_oracle = hit_chances(store, oracle, oracle, user_idx, seconds)
    aa = run_trials(user_idx, store.user_ids, q_pop, q_pop, runs, seed, "aa")
    ab = run_trials(user_idx, store.user_ids, q_pop, q_oracle, runs, seed, "ab")
    false_positives = sum(r.p_value < 0.05 for r in aa)
    true_effect = float(q_oracle.mean() - q_pop.mean())
    covered = sum(r.ci95_absolute[0] <= true_effect <= r.ci95_absolute[1] for r in ab)
    return ValidationResult(
        runs=runs,
        users=int(len(np.unique(user_idx))),
        requests=int(len(user_idx)),
        aa_false_positive_rate=round(false_positives / runs, 4),
        aa_ci95=_binomial_ci(false_positives, runs),
        ab_true_effect=round(true_effect, 5),
        ab_coverage=round(covered / runs, 4),
        ab_coverage_ci95=_binomial_ci(covered, runs),
        ab_power=round(sum(r.p_value < 0.05 for r in ab) / runs, 4),
    )


def validate_on_world(
    settings: Settings, store: FeatureStore, engine: Engine, *, runs: int, seed: int, users: int = 4000
) -> ValidationResult:
    """``validate`` over the held-out period, with the world in ``engine`` as the truth."""
    oracle = OracleRanker(load_truth(engine), store)
    window = time_split(store, settings.training.validation_days, settings.training.evaluation_days).evaluation
    return validate(store, oracle, window, runs=runs, seed=seed, users=users)
