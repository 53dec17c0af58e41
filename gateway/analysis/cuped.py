"""CUPED for the ratio metric: choose theta from both arms, report what the adjustment bought.

gbstats adjusts inside every test (``create_theta_adjusted_statistics``); here
:func:`adjust` does the same once, and every test (fixed-horizon, one-sided, sequential)
calls it, so CUPED composes with all of them. Statistics that are not
``RegressionAdjustedRatioStatistic`` pass through untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.analysis.effects import effect_moments
from gateway.analysis.statistics import (
    THETA_ZERO,
    RegressionAdjustedRatioStatistic,
    Statistic,
    regression_theta,
)

NO_PRE_PERIOD = "an arm has no pre-period data: CUPED not applied"
NO_ADJUSTMENT = "theta is zero (no pre-period variance or correlation): CUPED not applied"


@dataclass(frozen=True)
class Adjustment:
    """The statistics to test, with ``theta`` and ``variance_reduction`` (None when not CUPED).

    ``variance_reduction`` is 1 − Var(adjusted absolute effect) / Var(unadjusted absolute
    effect): the share of the effect's variance that the pre-period explained (0 when CUPED
    was not applied, NaN when either variance is degenerate). ``note`` says why CUPED was
    not applied, if it was asked for and was not.
    """

    control: Statistic
    treatment: Statistic
    theta: float | None = None
    variance_reduction: float | None = None
    note: str = ""


def adjust(control: Statistic, treatment: Statistic) -> Adjustment:
    """Set theta on a pair of CUPED ratio statistics (gbstats ``create_theta_adjusted_statistics``).

    A theta already set on both arms is kept. Otherwise theta comes from
    :func:`statistics.regression_theta`; if it is (near) zero, the unadjusted ratios are
    tested, as in gbstats. **Deliberate difference:** if an arm has no pre-period at all
    (Σd_pre = 0, e.g. only cold-start users), gbstats' gradient for that arm is zero and the
    test ends in a zero-variance error; here the unadjusted ratios are tested instead and
    ``note`` says so.
    """
    if not (
        isinstance(control, RegressionAdjustedRatioStatistic)
        and isinstance(treatment, RegressionAdjustedRatioStatistic)
    ):
        return Adjustment(control, treatment)
    if control.theta is not None and treatment.theta is not None:
        theta, note = control.theta, ""
    elif not (control.has_pre_period and treatment.has_pre_period):
        theta, note = 0.0, NO_PRE_PERIOD
    else:
        theta = regression_theta(control, treatment)
        note = "" if abs(theta) >= THETA_ZERO else NO_ADJUSTMENT
    if note:
        return Adjustment(control.post, treatment.post, 0.0, 0.0, note)
    adjusted_c, adjusted_t = control.with_theta(theta), treatment.with_theta(theta)
    return Adjustment(adjusted_c, adjusted_t, theta, variance_reduction(adjusted_c, adjusted_t))


def variance_reduction(
    control: RegressionAdjustedRatioStatistic, treatment: RegressionAdjustedRatioStatistic
) -> float:
    """1 − Var(adjusted absolute effect) / Var(unadjusted absolute effect); NaN if either is degenerate."""
    adjusted = effect_moments(control, treatment)
    unadjusted = effect_moments(control.post, treatment.post)
    if not (adjusted.ok and unadjusted.ok):
        return math.nan
    return 1 - adjusted.variance / unadjusted.variance
