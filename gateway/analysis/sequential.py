"""Always-valid (sequential) intervals and p-values: gbstats ``SequentialTwoSidedTTest``.

Asymptotic confidence sequences with a normal mixture (Waudby-Smith et al., arXiv
2103.06476v7: eq. 9 for the half-width, eq. 155 for the p-value, eq. 161 for rho). They stay
valid however often the experiment is looked at, at the price of wider intervals than the
fixed-horizon test. ``tuning`` (gbstats ``sequential_tuning_parameter``) is the number of
units (both arms) at which the interval is tightest: set it to the planned sample size.

``n`` is the units in both arms, ``s2 = n · SE²`` the per-unit variance of the effect. The same
half-width serves the absolute and the relative effect, plain or CUPED-adjusted, as gbstats
composes them.
"""

from __future__ import annotations

import math

from gateway.analysis.effects import EffectMoments
from gateway.analysis.frequentist import TestResult, assemble, moments_pair
from gateway.analysis.statistics import Statistic

DEFAULT_TUNING = 5000.0  # gbstats SequentialConfig.sequential_tuning_parameter


def sequential_rho(alpha: float, tuning: float, *, two_sided: bool = True) -> float:
    """The mixture's rho that makes the sequence tightest at ``tuning`` units (gbstats ``sequential_rho``)."""
    a = alpha if two_sided else 2 * alpha
    return math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / tuning)


def sequential_halfwidth(s2: float, n: float, tuning: float, alpha: float, rho: float | None = None) -> float:
    """Half-width of the two-sided confidence sequence (gbstats ``sequential_interval_halfwidth``)."""
    if rho is None:
        rho = sequential_rho(alpha, tuning)
    spread = n * rho**2 + 1
    return math.sqrt(s2) * math.sqrt(2 * spread * math.log(math.sqrt(spread) / alpha) / (n * rho) ** 2)


def sequential_p_value(estimate: float, s2: float, n: float, rho: float, test_value: float = 0.0) -> float:
    """Always-valid p-value: 1 / the mixture e-value, capped at 1 (gbstats ``SequentialTwoSidedTTest.p_value``).

    The e-value is that of the running sum ``n · (estimate − test_value)`` of ``n`` units of
    per-unit variance ``s2``: ``exp(ρ² S² / (2 (nρ² + 1))) / sqrt(nρ² + 1)`` with
    ``S² = n² (estimate − test_value)² / s2``; computed in logs so that it cannot overflow.
    """
    running_sum_squared = n**2 * (estimate - test_value) ** 2 / s2
    spread = n * rho**2 + 1
    log_evalue = rho**2 * running_sum_squared / (2 * spread) - 0.5 * math.log(spread)
    return min(math.exp(-log_evalue), 1.0)


def sequential_ttest(
    control: Statistic, treatment: Statistic, *, tuning: float = DEFAULT_TUNING, alpha: float = 0.05
) -> TestResult:
    """Two-sided always-valid test of treatment − control, absolute and relative.

    CUPED ratio statistics are adjusted first, as in ``frequentist.two_sided_ttest``.
    Degenerate input gives ``p_value = 1`` and NaN intervals with a message. ``df`` is inf:
    the sequence is normal-based.
    """
    if tuning <= 0:
        raise ValueError("the sequential tuning parameter must be positive")
    absolute, relative, adjustment = moments_pair(control, treatment)
    rho = sequential_rho(alpha, tuning)

    def interval(effect: EffectMoments) -> tuple[float, float]:
        half = sequential_halfwidth(effect.variance * effect.n, effect.n, tuning, alpha, rho)
        return (effect.estimate - half, effect.estimate + half)

    def p_value(effect: EffectMoments) -> float:
        return sequential_p_value(effect.estimate, effect.variance * effect.n, effect.n, rho)

    return assemble(absolute, relative, adjustment, interval=interval, p_value=p_value, df=math.inf)
