"""Multiplicity: Holm–Bonferroni and Benjamini–Hochberg adjustments, and many arms against control.

The adjustments are GrowthBook's (``adjustPValuesHolmBonferroni``,
``adjustPValuesBenjaminiHochberg`` in ``shared/src/experiments/experiments.ts``): adjusted
p-values, capped at 1 and made monotone in the order of the raw ones, returned in the input
order. Compare an adjusted p-value with the unadjusted alpha.

* Holm controls the family-wise error rate (any false winner) under any dependence: use it
  across the arms of one experiment, and for guardrails.
* Benjamini–Hochberg controls the false discovery rate (for independent or positively
  dependent tests): for many secondary metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

from gateway.analysis.frequentist import TestResult, two_sided_ttest
from gateway.analysis.statistics import Statistic


def _sorted(p_values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The p-values ascending, and the order that sorts them (to put the result back)."""
    values = np.asarray(p_values, dtype=float).reshape(-1)
    if np.isnan(values).any() or ((values < 0) | (values > 1)).any():
        raise ValueError("p-values must be numbers in [0, 1]")
    order = np.argsort(values, kind="stable")
    return values[order], order


def _in_input_order(adjusted_sorted: np.ndarray, order: np.ndarray) -> list[float]:
    adjusted = np.empty_like(adjusted_sorted)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down: the i-th smallest (from 0) times (m − i), running maximum, capped at 1."""
    ascending, order = _sorted(p_values)
    m = len(ascending)
    scaled = np.minimum(1.0, ascending * (m - np.arange(m)))
    return _in_input_order(np.maximum.accumulate(scaled) if m else scaled, order)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up: the i-th smallest (from 1) times m / i, running minimum from the top, capped at 1."""
    ascending, order = _sorted(p_values)
    m = len(ascending)
    scaled = np.minimum(1.0, ascending * (m / np.arange(1, m + 1)))  # m / i >= 1: never below the raw value
    return _in_input_order(np.minimum.accumulate(scaled[::-1])[::-1] if m else scaled, order)


CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "holm": holm,
    "benjamini-hochberg": benjamini_hochberg,
}


def adjusted_interval(
    estimate: float, p_adjusted: float, interval: tuple[float, float], alpha: float = 0.05
) -> tuple[float, float]:
    """The interval widened to agree with an adjusted p-value (GrowthBook ``getAdjustedCI``).

    Back out the standard error that would give ``p_adjusted`` for ``estimate`` under a
    normal test and rebuild a (1 − alpha) interval from it; never narrower than ``interval``;
    (−inf, inf) when the adjusted p-value is 1. An approximation: Holm has no exact interval.
    """
    if math.isnan(estimate) or math.isnan(interval[0]):
        return (math.nan, math.nan)
    if p_adjusted > 0.999999:
        return (-math.inf, math.inf)
    if estimate == 0:
        return interval
    width = float(_st.norm.ppf(1 - alpha / 2)) * abs(estimate / _st.norm.ppf(1 - p_adjusted / 2))
    low, high = estimate - width, estimate + width
    return (low, high) if low < interval[0] and high > interval[1] else interval


@dataclass(frozen=True)
class ArmComparison:
    """One arm against control: the test, its p-value adjusted across arms, and the verdict."""

    arm: str
    result: TestResult
    p_value_adjusted: float
    ci95_absolute_adjusted: tuple[float, float]
    significant: bool


def compare_arms(
    stats: Mapping[str, Statistic],
    control: str,
    *,
    test: Callable[[Statistic, Statistic], TestResult] = two_sided_ttest,
    correction: Literal["holm", "benjamini-hochberg"] = "holm",
    alpha: float = 0.05,
) -> dict[str, ArmComparison]:
    """Every arm against ``control``, p-values adjusted across the arms (Holm by default).

    ``test`` is any two-arm test returning a ``TestResult`` — ``two_sided_ttest``,
    ``sequential.sequential_ttest`` (bind its tuning with ``functools.partial``) — and CUPED
    statistics work as they do there. The absolute effect's p-value is adjusted; a degenerate
    comparison keeps p = 1 and still counts as one of the hypotheses. ``significant`` is
    ``p_value_adjusted < alpha``. The adjusted absolute interval follows GrowthBook's
    ``getAdjustedCI``; ``result`` holds the unadjusted, per-comparison intervals.
    """
    if control not in stats:
        raise ValueError(f"control arm {control!r} not among {sorted(stats)}")
    arms = [arm for arm in stats if arm != control]
    if not arms:
        raise ValueError("need at least one arm besides control")
    results = {arm: test(stats[control], stats[arm]) for arm in arms}
    adjusted = CORRECTIONS[correction]([results[arm].p_value for arm in arms])
    comparisons = {}
    for arm, p in zip(arms, adjusted, strict=True):
        result = results[arm]
        comparisons[arm] = ArmComparison(
            arm=arm,
            result=result,
            p_value_adjusted=p,
            ci95_absolute_adjusted=adjusted_interval(result.absolute, p, result.ci95_absolute, alpha),
            significant=result.ok and p < alpha,
        )
    return comparisons
