"""Power, users per arm and minimum detectable effect for an absolute effect on the ratio metric.

Inputs are per-user quantities: ``sigma2`` is the per-user variance of the ratio by the delta
method (``RatioStatistic.variance`` on past data) and is assumed equal in both arms, as
GrowthBook's power calculator assumes. The effect estimate's standard error with ``n`` users
per arm is ``sqrt(2 · sigma2 / n)``; CUPED multiplies ``sigma2`` by ``1 − variance_reduction``
(the ``variance_reduction`` a CUPED analysis reports).

Power is two-sided and normal, both tails counted, as gbstats ``MidExperimentPower.power``
(no prior) and GrowthBook's ``powerFrequentist`` compute it: with half-width ``h`` of the
interval (``z · SE``, or the sequential half-width) the power for a true effect Δ is
``1 − Φ((h − Δ)/SE) + Φ(−(h + Δ)/SE)``. The test's settings travel together in a
:class:`Design`; several comparisons (arms × goal metrics) divide alpha Bonferroni-style, as
``MidExperimentPower`` does with ``p_value_corrected``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _st

from gateway.analysis.sequential import sequential_halfwidth


def _halfwidth(standard_error: float, alpha: float, n_total: float, sequential_tuning: float | None) -> float:
    if sequential_tuning is None:
        return float(_st.norm.ppf(1 - alpha / 2)) * standard_error
    return sequential_halfwidth(n_total * standard_error**2, n_total, sequential_tuning, alpha)


def power_at(
    effect: float,
    standard_error: float,
    *,
    alpha: float = 0.05,
    n_total: float | None = None,
    sequential_tuning: float | None = None,
) -> float:
    """Two-sided power for a true ``effect`` when the estimate has ``standard_error``.

    For the sequential test give ``n_total`` (units in both arms) and ``sequential_tuning``
    (gbstats ``MidExperimentPower.power`` with ``sequential=True``: one look at ``n_total``,
    so a lower bound on the power of a test that is looked at as it runs).
    """
    if standard_error <= 0:
        raise ValueError("the standard error must be positive")
    if sequential_tuning is not None and not n_total:
        raise ValueError("the sequential power needs n_total")
    effect = abs(effect)
    half = _halfwidth(standard_error, alpha, n_total or 0, sequential_tuning)
    return float(
        _st.norm.sf((half - effect) / standard_error) + _st.norm.cdf(-(half + effect) / standard_error)
    )


def _se(sigma2: float, n_per_arm: float, variance_reduction: float) -> float:
    if sigma2 <= 0 or n_per_arm <= 0:
        raise ValueError("sigma2 and the users per arm must be positive")
    if not 0 <= variance_reduction < 1:
        raise ValueError("variance_reduction must be in [0, 1)")
    return math.sqrt(2 * sigma2 * (1 - variance_reduction) / n_per_arm)


@dataclass(frozen=True)
class Design:
    """How the experiment will be tested: the settings every power figure depends on.

    ``comparisons`` (arms against control × goal metrics) divides ``alpha``; ``variance_reduction``
    is CUPED's (0 without CUPED); ``sequential_tuning`` set means the sequential test.
    """

    alpha: float = 0.05
    power: float = 0.8
    comparisons: int = 1
    variance_reduction: float = 0.0
    sequential_tuning: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or self.comparisons < 1:
            raise ValueError("alpha must be in (0, 1) and comparisons at least 1")
        if not self.alpha / self.comparisons < self.power < 1:
            raise ValueError("the target power must be between alpha and 1")

    @property
    def test_alpha(self) -> float:
        return self.alpha / self.comparisons


def power(effect: float, sigma2: float, n_per_arm: float, design: Design = Design()) -> float:
    """Power to detect an absolute ``effect`` with ``n_per_arm`` users in each of two arms."""
    return power_at(
        effect,
        _se(sigma2, n_per_arm, design.variance_reduction),
        alpha=design.test_alpha,
        n_total=2 * n_per_arm,
        sequential_tuning=design.sequential_tuning,
    )


def users_per_arm(mde: float, sigma2: float, design: Design = Design()) -> int:
    """The fewest users per arm whose power to detect ``mde`` reaches ``design.power``.

    Starts from the textbook ``2σ²(z₁₋α/₂ + z_power)² / mde²`` and searches integers on the
    exact two-tailed power, so it also serves the sequential test, which has no closed form.
    """
    if mde == 0:
        raise ValueError("the minimum detectable effect must be non-zero")

    def enough(n: int) -> bool:
        return power(mde, sigma2, n, design) >= design.power

    z = float(_st.norm.ppf(1 - design.test_alpha / 2) + _st.norm.ppf(design.power))
    high = max(2, math.ceil(2 * sigma2 * (1 - design.variance_reduction) * z**2 / mde**2))
    while not enough(high):
        high *= 2
    low = 1  # invariant: enough(high) and (low == 1 or not enough(low))
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return max(2, high)  # a t-test needs two users per arm


def minimum_detectable_effect(sigma2: float, n_per_arm: float, design: Design = Design()) -> float:
    """The absolute effect detected with ``design.power`` by ``n_per_arm`` users per arm.

    ``h + z_power · SE`` with ``h`` the interval's half-width: for the fixed-horizon test
    this is GrowthBook's ``SE · (Φ⁻¹(1 − α/2) − Φ⁻¹(1 − π))`` (power-technical docs, absolute
    MDE), which ignores the opposite tail, so the exact power there is a hair above target.
    """
    se = _se(sigma2, n_per_arm, design.variance_reduction)
    half = _halfwidth(se, design.test_alpha, 2 * n_per_arm, design.sequential_tuning)
    return half + float(_st.norm.ppf(design.power)) * se


def days_needed(
    users_per_arm: int,
    users_per_day: float,
    *,
    shares: Sequence[float] = (0.5, 0.5),
    coverage: float = 1.0,
) -> int:
    """Whole days until every arm has ``users_per_arm`` users.

    ``users_per_day`` is the number of *new distinct* users per day who are eligible (a user
    who returns is not a new unit); ``coverage`` of them enter the experiment and are split by
    ``shares`` (use ``assignment.realised_shares``), so the smallest arm sets the pace.
    """
    if users_per_day <= 0 or not 0 < coverage <= 1:
        raise ValueError("users_per_day must be positive and coverage in (0, 1]")
    total = sum(shares)
    smallest = min(shares) / total
    if smallest <= 0:
        raise ValueError("every arm needs a positive share")
    return math.ceil(round(users_per_arm / (users_per_day * coverage * smallest), 9))


@dataclass(frozen=True)
class PowerPlan:
    users_per_arm: int
    mde: float
    relative_mde: float  # mde / baseline
    sigma2: float  # the per-user variance used, after CUPED's reduction
    power: float  # achieved at users_per_arm
    days: int | None


def plan(
    baseline: float,
    sigma2: float,
    mde: float,
    design: Design = Design(),
    *,
    users_per_day: float | None = None,
    shares: Sequence[float] = (0.5, 0.5),
    coverage: float = 1.0,
) -> PowerPlan:
    """Users per arm (and days, given ``users_per_day``) to detect ``mde`` on a metric at ``baseline``."""
    n = users_per_arm(mde, sigma2, design)
    days = None if users_per_day is None else days_needed(n, users_per_day, shares=shares, coverage=coverage)
    return PowerPlan(
        users_per_arm=n,
        mde=mde,
        relative_mde=mde / baseline if baseline else math.nan,
        sigma2=sigma2 * (1 - design.variance_reduction),
        power=power(mde, sigma2, n, design),
        days=days,
    )
