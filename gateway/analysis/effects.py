"""Effect moments: the point estimate of treatment − control and its variance (gbstats ``EffectMoments``).

Works on any statistic of ``statistics.py`` through its delta-method interface, so the plain
ratio, the plain mean and the CUPED-adjusted ratio share one code path:

* absolute effect ``A_t − A_c``, variance ``g_t' Λ_t g_t / n_t + g_c' Λ_c g_c / n_c``;
* relative effect ``(A_t − A_c) / |U_c|`` where ``U_c`` is the control's *unadjusted* mean,
  variance by the delta method on both arms' moments. For the plain ratio and mean this is
  gbstats ``frequentist_variance`` (``variance_of_ratios``); for the CUPED ratio it is
  ``frequentist_variance_relative_cuped_ratio`` (the sign of the baseline folded in).

Degenerate input never yields an effect with a variance: the result then carries a
``message`` (one of the constants below), a variance of 0 and no estimate to test. The checks
follow ``EffectMoments.compute_result``: too few units, a zero or negative variance in either
arm or of the effect (after ``statistics.clean_variance``), a zero baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gateway.analysis.statistics import Statistic, clean_variance

MIN_UNITS = 2
TOO_FEW_UNITS = "each arm needs at least 2 units"
ZERO_VARIANCE = "zero or negative variance: no interval or p-value can be claimed"
BASELINE_ZERO = "control mean is zero: relative effect undefined"


@dataclass(frozen=True)
class EffectMoments:
    """``estimate`` and its sampling ``variance``; Welch ``df`` from the arms' variances.

    ``message`` is empty for a usable effect; otherwise ``variance`` is 0 and ``estimate`` is
    the observed difference where it can be computed (NaN where not): descriptive only.
    """

    estimate: float
    variance: float
    df: float
    n: int  # units in both arms: the sequential tests' sample size
    message: str = ""

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance) if self.variance > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.message


def welch_df(var_c: float, n_c: int, var_t: float, n_t: int) -> float:
    """Welch–Satterthwaite degrees of freedom from per-unit variances (gbstats ``TTest.dof``)."""
    a, b = var_c / n_c, var_t / n_t
    return (a + b) ** 2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))


def _observed(control: Statistic, treatment: Statistic, relative: bool) -> float:
    """The difference as observed, for degenerate results (NaN where undefined)."""
    if control.n == 0 or treatment.n == 0:
        return math.nan
    difference = treatment.mean - control.mean
    if not relative:
        return difference
    baseline = control.unadjusted_mean
    return difference / abs(baseline) if baseline != 0 else math.nan


def _relative_variance(control: Statistic, treatment: Statistic) -> float:
    """Delta method for (A_t − A_c) / |U_c| over both arms' moments."""
    baseline = control.unadjusted_mean
    difference = treatment.mean - control.mean
    scale = abs(baseline)
    # d/d(control moments): −g_c/|U_c| − (A_t − A_c)·sign(U_c)·u_c/U_c²
    grad_c = (
        -control.gradient / scale - difference * np.sign(baseline) * control.unadjusted_gradient / baseline**2
    )
    grad_t = treatment.gradient / scale
    lam_c, lam_t = control.covariance_matrix, treatment.covariance_matrix
    value = grad_c @ lam_c @ grad_c / control.n + grad_t @ lam_t @ grad_t / treatment.n
    size = np.abs(grad_c) @ np.abs(lam_c) @ np.abs(grad_c) / control.n + (
        np.abs(grad_t) @ np.abs(lam_t) @ np.abs(grad_t) / treatment.n
    )
    return clean_variance(value, size)


def effect_moments(control: Statistic, treatment: Statistic, *, relative: bool = False) -> EffectMoments:
    """Treatment − control (absolute) or that over |control's unadjusted mean| (relative)."""
    n = control.n + treatment.n

    def degenerate(message: str) -> EffectMoments:
        return EffectMoments(_observed(control, treatment, relative), 0.0, math.nan, n, message)

    if control.n < MIN_UNITS or treatment.n < MIN_UNITS:
        return degenerate(TOO_FEW_UNITS)
    var_c, var_t = control.variance, treatment.variance
    if var_c <= 0 or var_t <= 0:
        return degenerate(ZERO_VARIANCE)
    if control.mean == 0 or control.unadjusted_mean == 0:
        return degenerate(BASELINE_ZERO)
    df = welch_df(var_c, control.n, var_t, treatment.n)
    difference = treatment.mean - control.mean
    if relative:
        estimate, variance = difference / abs(control.unadjusted_mean), _relative_variance(control, treatment)
    else:
        estimate, variance = difference, var_c / control.n + var_t / treatment.n
    if variance <= 0:
        return degenerate(ZERO_VARIANCE)
    return EffectMoments(float(estimate), float(variance), float(df), n)
