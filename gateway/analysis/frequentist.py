"""Fixed-horizon frequentist tests: two-sided Welch t-test, one-sided tests, non-inferiority.

Mirrors gbstats ``frequentist/tests.py`` (``TwoSidedTTest``, ``OneSidedTreatmentGreaterTTest``,
``OneSidedTreatmentLesserTTest``): a t distribution with Welch–Satterthwaite degrees of
freedom from the arms' per-unit variances, the same df for the absolute and the relative
effect. Every test accepts the statistics of ``statistics.py``; CUPED ratio statistics are
adjusted first (``cuped.adjust``), so the result then also carries ``theta`` and
``variance_reduction``.

**Degenerate input** (too few units, a zero or negative variance, a zero baseline; see
``effects.py``) gives ``p_value = 1``, intervals of ``(nan, nan)`` and a ``message``; the
point estimates are then the observed differences (NaN where undefined), descriptive only.
A non-empty ``message`` is the flag: no claim can be made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats as _st

from gateway.analysis import cuped
from gateway.analysis.effects import (
    BASELINE_ZERO,
    TOO_FEW_UNITS,
    ZERO_VARIANCE,
    EffectMoments,
    effect_moments,
)
from gateway.analysis.statistics import Statistic

__all__ = [
    "BASELINE_ZERO",
    "TOO_FEW_UNITS",
    "ZERO_VARIANCE",
    "NonInferiorityResult",
    "OneSidedResult",
    "TestResult",
    "non_inferiority_test",
    "one_sided_ttest",
    "two_sided_ttest",
    "welch_ttest",
]

NAN_INTERVAL = (math.nan, math.nan)


@dataclass(frozen=True)
class TestResult:
    """Treatment − control, absolute and relative (over |control's unadjusted mean|).

    ``ci95_*`` hold the (1 − alpha) interval (95 % at the default alpha; the names are the
    CLI's JSON keys). ``p_value`` tests absolute effect = 0; ``p_value_relative`` tests the
    relative effect = 0 by its own delta-method standard error, as gbstats reports for
    ``difference_type="relative"`` — the two differ slightly. ``df`` is Welch's (inf for the
    normal-based sequential test). ``theta`` and ``variance_reduction`` are set for CUPED.
    """

    __test__ = False  # not a pytest class

    absolute: float
    relative: float
    ci95_absolute: tuple[float, float]
    ci95_relative: tuple[float, float]
    p_value: float
    df: float
    message: str = ""
    p_value_relative: float = math.nan
    theta: float | None = None
    variance_reduction: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.message


def _degenerate(absolute: EffectMoments, relative: EffectMoments, adjustment: cuped.Adjustment) -> TestResult:
    return TestResult(
        absolute=absolute.estimate,
        relative=relative.estimate,
        ci95_absolute=NAN_INTERVAL,
        ci95_relative=NAN_INTERVAL,
        p_value=1.0,
        df=math.nan,
        message=absolute.message or relative.message,
        p_value_relative=1.0,
        theta=adjustment.theta,
        variance_reduction=adjustment.variance_reduction,
        note=adjustment.note,
    )


def moments_pair(
    control: Statistic, treatment: Statistic
) -> tuple[EffectMoments, EffectMoments, cuped.Adjustment]:
    """Absolute and relative effect moments after the CUPED adjustment (if any)."""
    adjustment = cuped.adjust(control, treatment)
    absolute = effect_moments(adjustment.control, adjustment.treatment, relative=False)
    relative = effect_moments(adjustment.control, adjustment.treatment, relative=True)
    return absolute, relative, adjustment


def assemble(absolute, relative, adjustment, *, interval, p_value, df) -> TestResult:
    """A TestResult from both effects, given how to make an interval and a p-value of one effect."""
    if not (absolute.ok and relative.ok):
        return _degenerate(absolute, relative, adjustment)
    return TestResult(
        absolute=absolute.estimate,
        relative=relative.estimate,
        ci95_absolute=interval(absolute),
        ci95_relative=interval(relative),
        p_value=p_value(absolute),
        df=df,
        p_value_relative=p_value(relative),
        theta=adjustment.theta,
        variance_reduction=adjustment.variance_reduction,
        note=adjustment.note,
    )


def two_sided_ttest(control: Statistic, treatment: Statistic, alpha: float = 0.05) -> TestResult:
    """Two-sided Welch t-test of treatment − control (gbstats ``TwoSidedTTest``)."""
    absolute, relative, adjustment = moments_pair(control, treatment)
    df = absolute.df

    def interval(effect: EffectMoments) -> tuple[float, float]:
        half = float(_st.t.ppf(1 - alpha / 2, df)) * effect.standard_error
        return (effect.estimate - half, effect.estimate + half)

    def p_value(effect: EffectMoments) -> float:
        return float(2 * _st.t.sf(abs(effect.estimate) / effect.standard_error, df))

    return assemble(absolute, relative, adjustment, interval=interval, p_value=p_value, df=df)


def welch_ttest(control: Statistic, treatment: Statistic) -> float:
    """Two-sided p-value of Welch's t-test (e.g. on per-user hit rates as SampleMeanStatistic)."""
    return two_sided_ttest(control, treatment).p_value


@dataclass(frozen=True)
class OneSidedResult:
    """One-sided test of the effect against ``test_value``.

    ``ci`` is the one-sided (1 − alpha) interval: ``(lower, inf)`` for ``alternative="greater"``,
    ``(-inf, upper)`` for ``"less"``; ``(nan, nan)`` with ``p_value = 1`` when degenerate.
    """

    estimate: float
    ci: tuple[float, float]
    p_value: float
    df: float
    alternative: str
    test_value: float
    relative: bool
    message: str = ""
    theta: float | None = None
    variance_reduction: float | None = None

    @property
    def ok(self) -> bool:
        return not self.message


def one_sided_ttest(
    control: Statistic,
    treatment: Statistic,
    *,
    alternative: Literal["greater", "less"],
    test_value: float = 0.0,
    relative: bool = False,
    alpha: float = 0.05,
) -> OneSidedResult:
    """H1: effect > ``test_value`` (``"greater"``) or effect < ``test_value`` (``"less"``).

    gbstats ``OneSidedTreatmentGreaterTTest`` / ``OneSidedTreatmentLesserTTest`` with
    ``FrequentistConfig.test_value``; the effect is relative when ``relative``.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', not {alternative!r}")
    absolute, rel, adjustment = moments_pair(control, treatment)
    effect = rel if relative else absolute
    extras = {"theta": adjustment.theta, "variance_reduction": adjustment.variance_reduction}
    common = {"alternative": alternative, "test_value": test_value, "relative": relative}
    if not effect.ok:
        return OneSidedResult(
            effect.estimate, NAN_INTERVAL, 1.0, math.nan, message=effect.message, **common, **extras
        )
    df, se = effect.df, effect.standard_error
    statistic = (effect.estimate - test_value) / se
    half = float(_st.t.ppf(1 - alpha, df)) * se
    if alternative == "greater":
        p, ci = _st.t.sf(statistic, df), (effect.estimate - half, math.inf)
    else:
        p, ci = _st.t.cdf(statistic, df), (-math.inf, effect.estimate + half)
    return OneSidedResult(effect.estimate, ci, float(p), df, **common, **extras)


@dataclass(frozen=True)
class NonInferiorityResult:
    """Is the treatment no worse than control by more than ``margin``?

    ``threshold`` is the signed limit the effect is tested against (−margin when higher is
    better, +margin when lower is better); ``bound`` is the one-sided (1 − alpha) confidence
    bound on the effect on the "worse" side. ``non_inferior`` is ``p_value < alpha``, which
    is the same as the bound clearing the threshold.
    """

    estimate: float
    bound: float
    threshold: float
    p_value: float
    non_inferior: bool
    relative: bool
    message: str = ""


def non_inferiority_test(
    control: Statistic,
    treatment: Statistic,
    margin: float,
    *,
    higher_is_better: bool = True,
    relative: bool = False,
    alpha: float = 0.05,
) -> NonInferiorityResult:
    """One-sided guardrail test, direction aware.

    Higher is better (hit rate): H0 effect ≤ −margin vs H1 effect > −margin. Lower is
    better (latency, errors): H0 effect ≥ +margin vs H1 effect < +margin. ``margin`` is in
    the metric's units, or a fraction of the control mean when ``relative``. Built on
    :func:`one_sided_ttest` with gbstats' ``test_value``.
    """
    if not margin > 0:
        raise ValueError("the non-inferiority margin must be positive")
    threshold = -margin if higher_is_better else margin
    alternative = "greater" if higher_is_better else "less"
    result = one_sided_ttest(
        control, treatment, alternative=alternative, test_value=threshold, relative=relative, alpha=alpha
    )
    bound = result.ci[0] if higher_is_better else result.ci[1]
    return NonInferiorityResult(
        estimate=result.estimate,
        bound=bound,
        threshold=threshold,
        p_value=result.p_value,
        non_inferior=result.ok and result.p_value < alpha,
        relative=relative,
        message=result.message,
    )
