"""The decision for one comparison, from per-user sufficient statistics: pure maths, no I/O.

Input is one row per user of an arm (``hits``, ``requests`` and, for CUPED, ``pre_likes``,
``pre_views``: see ``aggregate.py``), as numpy arrays or a DataFrame; output is the JSON-ready
objects of ``recsys analyze``. Callers that simulate experiments (validation) call these
functions directly on their own per-user arrays.

**The primary metric** is Hitrate@5 = Σhits / Σrequests over the arm's users: a ratio metric,
user-clustered by the delta method (``"delta"``). Every other figure on it is the same test
with more information (``"cuped"``: the pre-period as covariate) or a different guarantee
(``"sequential"``: valid at every look); the mean of per-user hit rates is a different,
*secondary* metric (``user_hitrate@5``), not a second opinion on the primary one.

Degenerate input (too few users, zero or negative variance) never reaches ``sqrt``: the pure
layer (``effects.py``) returns p = 1 and a message, which is passed on here as ``"message"``
with null intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.analysis.frequentist import TestResult, two_sided_ttest
from gateway.analysis.multiple_testing import CORRECTIONS, adjusted_interval
from gateway.analysis.sequential import DEFAULT_TUNING, sequential_ttest
from gateway.analysis.statistics import RatioStatistic, RegressionAdjustedRatioStatistic, SampleMeanStatistic

PRIMARY_METRIC = "hitrate@5"
SECONDARY_USER_METRIC = "user_hitrate@5"
DELTA_METHOD = "delta method on per-user sums (ratio metric Hitrate@5 = hits / requests, user-clustered)"
CUPED_METHOD = (
    "CUPED: regression adjustment by each user's pre-period likes / views (gbstats "
    "RegressionAdjustedRatioStatistic, theta from both arms pooled); delta method"
)
SEQUENTIAL_METHOD = (
    "always-valid confidence sequence (gbstats SequentialTwoSidedTTest, normal mixture tuned "
    "to the planned users); valid at any number of looks"
)


@dataclass(frozen=True)
class ArmUsers:
    """Per-user sums of one arm: the sufficient statistics of every test here."""

    hits: np.ndarray
    requests: np.ndarray
    pre_likes: np.ndarray
    pre_views: np.ndarray

    @classmethod
    def of(cls, hits, requests, pre_likes=None, pre_views=None) -> ArmUsers:
        hits, requests = np.asarray(hits, dtype=float), np.asarray(requests, dtype=float)
        zeros = np.zeros_like(hits)
        return cls(
            hits,
            requests,
            zeros if pre_likes is None else np.asarray(pre_likes, dtype=float),
            zeros if pre_views is None else np.asarray(pre_views, dtype=float),
        )

    @classmethod
    def from_frame(cls, frame) -> ArmUsers:
        """From a DataFrame with ``hits``, ``requests`` and optionally ``pre_likes``, ``pre_views``."""
        get = frame.get
        return cls.of(frame["hits"], frame["requests"], get("pre_likes"), get("pre_views"))

    @property
    def n(self) -> int:
        return len(self.hits)

    @property
    def with_pre_period(self) -> int:
        return int((self.pre_views > 0).sum())

    def ratio(self) -> RatioStatistic:
        return RatioStatistic.from_values(self.hits, self.requests)

    def cuped(self) -> RegressionAdjustedRatioStatistic:
        return RegressionAdjustedRatioStatistic.from_values(
            self.hits, self.requests, self.pre_likes, self.pre_views
        )

    def user_rates(self) -> SampleMeanStatistic:
        keep = self.requests > 0
        return SampleMeanStatistic.from_values(self.hits[keep] / self.requests[keep])


def json_number(value: float | None) -> float | None:
    """JSON-safe: NaN and infinities become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def result_object(result: TestResult, method: str) -> dict:
    """``absolute``, ``relative``, ``ci95_absolute``, ``ci95_relative``, ``p_value`` (and ``message``)."""
    out = {
        "absolute": json_number(result.absolute),
        "relative": json_number(result.relative),
        "ci95_absolute": [json_number(x) for x in result.ci95_absolute],
        "ci95_relative": [json_number(x) for x in result.ci95_relative],
        "p_value": float(result.p_value),
        "method": method,
    }
    if result.message:
        out["message"] = result.message
    return out


def arm_summary(users: ArmUsers) -> dict:
    """Users, requests, hits, Hitrate@5 and its 95 % interval (delta method) for one arm."""
    stat = users.ratio()
    requests, hits = int(users.requests.sum()), int(users.hits.sum())
    if stat.n > 1 and stat.variance > 0:
        half = 1.959963984540054 * math.sqrt(stat.variance / stat.n)
        ci = [round(stat.mean - half, 6), round(stat.mean + half, 6)]
    else:
        ci = [None, None]
    return {
        "users": stat.n,
        "requests": requests,
        "hits": hits,
        "hitrate": round(hits / requests, 6) if requests else None,
        "ci95": ci,
        "users_with_pre_period": users.with_pre_period,
    }


def cuped_object(control: ArmUsers, treatment: ArmUsers, alpha: float = 0.05) -> dict:
    """``"cuped"``: the delta-method test on the regression-adjusted ratio, with ``theta`` and
    ``variance_reduction`` (1 − Var(adjusted effect) / Var(plain effect))."""
    result = two_sided_ttest(control.cuped(), treatment.cuped(), alpha)
    out = result_object(result, CUPED_METHOD)
    out["theta"] = json_number(result.theta) if result.theta is not None else 0.0
    out["variance_reduction"] = (
        json_number(result.variance_reduction) if result.variance_reduction is not None else 0.0
    )
    out["users_with_pre_period"] = control.with_pre_period + treatment.with_pre_period
    out["cold_start_users"] = control.n + treatment.n - out["users_with_pre_period"]
    if result.note:
        out["note"] = result.note
    return out


def sequential_object(
    control: ArmUsers, treatment: ArmUsers, *, planned_users: float = DEFAULT_TUNING, alpha: float = 0.05
) -> dict:
    """``"sequential"``: the always-valid interval and p-value of the primary (plain) comparison."""
    out = result_object(
        sequential_ttest(control.ratio(), treatment.ratio(), tuning=planned_users, alpha=alpha),
        SEQUENTIAL_METHOD,
    )
    out["planned_users"] = planned_users
    return out


def compare(
    control: ArmUsers, treatment: ArmUsers, *, planned_users: float = DEFAULT_TUNING, alpha: float = 0.05
) -> dict:
    """The primary comparison of ``treatment`` against ``control``: ``delta`` (fixed horizon),
    ``cuped`` and ``sequential``, plus the secondary user-weighted metric as ``welch``."""
    delta = result_object(two_sided_ttest(control.ratio(), treatment.ratio(), alpha), DELTA_METHOD)
    delta["metric"] = PRIMARY_METRIC
    user_weighted = two_sided_ttest(control.user_rates(), treatment.user_rates(), alpha)
    welch = result_object(user_weighted, "Welch's t-test on per-user hit rates")
    welch["metric"] = SECONDARY_USER_METRIC
    welch["note"] = (
        "a secondary metric (every user weighs the same), not a second test of Hitrate@5: "
        "decide on 'delta' (or 'cuped' / 'sequential')"
    )
    return {
        "delta": delta,
        "cuped": cuped_object(control, treatment, alpha),
        "sequential": sequential_object(control, treatment, planned_users=planned_users, alpha=alpha),
        "welch": welch,
    }


def compare_many(
    arms: Mapping[str, ArmUsers],
    control: str,
    *,
    planned_users: float = DEFAULT_TUNING,
    alpha: float = 0.05,
    correction: str = "holm",
) -> dict[str, dict]:
    """Every arm against ``control``; each primary p-value (delta, cuped) also adjusted across
    the arms (``p_value_adjusted``, Holm by default) with the matching widened interval."""
    others = [a for a in arms if a != control]
    out = {a: compare(arms[control], arms[a], planned_users=planned_users, alpha=alpha) for a in others}
    for key in ("delta", "cuped"):
        adjusted = adjust_p_values([out[a][key]["p_value"] for a in others], correction)
        for a, p in zip(others, adjusted, strict=True):
            entry = out[a][key]
            entry["p_value_adjusted"] = p
            entry["correction"] = correction if len(others) > 1 else "none (one comparison)"
            if entry["absolute"] is not None and entry["ci95_absolute"][0] is not None:
                low, high = adjusted_interval(entry["absolute"], p, tuple(entry["ci95_absolute"]), alpha)
                entry["ci95_absolute_adjusted"] = [json_number(low), json_number(high)]
    return out


def adjust_p_values(p_values: Sequence[float], correction: str = "holm") -> list[float]:
    """Holm (family-wise) or Benjamini–Hochberg (false discovery rate) adjusted p-values."""
    if not p_values:
        return []
    return [float(p) for p in CORRECTIONS[correction](list(p_values))]
