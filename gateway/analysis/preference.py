"""Interleaving preference: which ranker do users prefer, with a user-clustered interval.

Pure: numbers in, numbers out. Per interleaved request the winner is the team with more
credited likes (equal credit is a tie). The preference for the treatment is

    (wins_treatment − wins_control) / requests with a winner,

in [−1, 1], 0 when users are indifferent (Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale
validation and analysis of interleaved search evaluation": the ``Δ_AB`` statistic). Requests of
one user are not independent, so the user is the unit: per user the numerator
``m = wins_treatment − wins_control`` and denominator ``d = requests with a winner`` make a
ratio metric, whose variance is the delta method's (``statistics.RatioStatistic``, the same
as for Hitrate@5), and the test is one-sample, of preference = 0, with a t distribution on
n − 1 degrees of freedom. Degenerate input (fewer than 2 users, no request with a winner, zero
variance) gives p = 1, a NaN interval and a message, like every test in ``frequentist.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from gateway.analysis import power
from gateway.analysis.effects import MIN_UNITS, ZERO_VARIANCE
from gateway.analysis.statistics import RatioStatistic

NO_WINNER = "no interleaved request had a winner: no preference can be measured"
TOO_FEW_USERS = "at least 2 users are needed"


def winners(credit_control: np.ndarray, credit_treatment: np.ndarray) -> np.ndarray:
    """Per request: +1 the treatment won, −1 control won, 0 a tie (no likes, or as many each)."""
    return np.sign(np.asarray(credit_treatment, dtype=float) - np.asarray(credit_control, dtype=float))


def preference_statistic(wins_control, wins_treatment) -> RatioStatistic:
    """Per-user sums m = wins_treatment − wins_control, d = wins_treatment + wins_control."""
    c, t = np.asarray(wins_control, dtype=float), np.asarray(wins_treatment, dtype=float)
    return RatioStatistic.from_values(t - c, t + c)


@dataclass(frozen=True)
class PreferenceResult:
    """The preference for the treatment with its (1 − alpha) interval and two-sided p-value."""

    preference: float
    ci95: tuple[float, float]
    p_value: float
    users: int
    variance: float  # per user, delta method: the sampling variance is variance / users
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.message


def preference_test(stat: RatioStatistic, alpha: float = 0.05) -> PreferenceResult:
    """One-sample test of preference = 0, clustered by user (delta method on per-user sums)."""
    estimate = stat.mean if stat.d_sum else math.nan
    if stat.n < MIN_UNITS:
        return PreferenceResult(estimate, (math.nan, math.nan), 1.0, stat.n, 0.0, TOO_FEW_USERS)
    if stat.d_sum == 0:
        return PreferenceResult(estimate, (math.nan, math.nan), 1.0, stat.n, 0.0, NO_WINNER)
    variance = stat.variance
    if variance <= 0:
        return PreferenceResult(estimate, (math.nan, math.nan), 1.0, stat.n, 0.0, ZERO_VARIANCE)
    se = math.sqrt(variance / stat.n)
    df = stat.n - 1
    half = float(_st.t.ppf(1 - alpha / 2, df)) * se
    p_value = float(2 * _st.t.sf(abs(estimate) / se, df))
    return PreferenceResult(float(estimate), (estimate - half, estimate + half), p_value, stat.n, variance)


def users_for_power(preference: float, variance: float, design: power.Design = power.Design()) -> int:
    """Users needed to detect ``preference`` with ``design.power``: n = (z₁₋α/₂ + z_power)² σ² / δ².

    Interleaving is one group tested against 0, so the estimate's standard error is
    ``sqrt(σ²/n)`` — that of a two-arm test with ``σ²/2`` per arm — and the two-arm search
    in ``power.users_per_arm`` gives it exactly.
    """
    return power.users_per_arm(preference, variance / 2, design)
