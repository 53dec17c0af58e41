"""Guardrail and secondary metrics, user-clustered: pure maths on per-user sums.

Metrics (``METRICS``; each per arm, the user the unit):

* ``latency_mean``: Σ latency / Σ requests, a ratio metric (delta method); lower is better;
* ``latency_p99``: the 99th percentile of per-request latency, bootstrapped over users (each
  user's requests as a latency histogram, ``aggregate.latency_histogram``); lower is better;
* ``likes_per_view``: Σ likes / Σ views in the feed during the experiment (delta method);
  higher is better;
* ``user_hitrate@5``: the mean of per-user hit rates (Welch); higher is better.

A **guardrail** (config.yaml ``analysis.guardrails``) is a one-sided non-inferiority test: the
treatment may not be worse than control by more than ``margin`` (a fraction of control when
``relative``). ``status``: ``pass`` when the one-sided 95 % bound clears the margin
(non-inferiority shown), ``fail`` when the whole two-sided 95 % interval lies beyond it, else
``inconclusive``. Guardrail p-values are Holm-adjusted across the guardrails; the two-sided
p-values of the secondary metrics are Holm-adjusted across the secondary metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.analysis.bootstrap import bootstrap_quantile_difference
from gateway.analysis.frequentist import non_inferiority_test, two_sided_ttest
from gateway.analysis.multiple_testing import holm
from gateway.analysis.statistics import RatioStatistic, SampleMeanStatistic

LOWER_IS_BETTER = {
    "latency_mean": True,
    "latency_p99": True,
    "likes_per_view": False,
    "user_hitrate@5": False,
}
METRICS = tuple(LOWER_IS_BETTER)
BOOTSTRAP_RESAMPLES = 400


@dataclass(frozen=True)
class ArmMetrics:
    """One arm's per-user inputs: ``requests``, ``latency_sum``, ``hits``, ``likes``, ``views``
    (aligned arrays, one entry per user) and the latency histogram (``hist_users``: the user's
    index into those arrays, ``hist_latency``, ``hist_requests``)."""

    requests: np.ndarray
    latency_sum: np.ndarray
    hits: np.ndarray
    likes: np.ndarray
    views: np.ndarray
    hist_users: np.ndarray
    hist_latency: np.ndarray
    hist_requests: np.ndarray

    def statistic(self, metric: str):
        if metric == "latency_mean":
            return RatioStatistic.from_values(self.latency_sum, self.requests)
        if metric == "likes_per_view":
            return RatioStatistic.from_values(self.likes, self.views)
        if metric == "user_hitrate@5":
            keep = self.requests > 0
            return SampleMeanStatistic.from_values(self.hits[keep] / self.requests[keep])
        raise ValueError(f"no sufficient statistic for {metric!r}")

    def request_latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-request latencies (bucketed) and their users, expanded from the histogram."""
        counts = self.hist_requests.astype(int)
        return np.repeat(self.hist_latency, counts), np.repeat(self.hist_users, counts)


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _p99(latencies: np.ndarray) -> float | None:
    if len(latencies) == 0:
        return None
    return float(np.quantile(latencies, 0.99, method="inverted_cdf"))


def secondary(control: ArmMetrics, treatment: ArmMetrics, *, seed: int = 0) -> list[dict]:
    """Every metric of ``METRICS``, treatment − control, two-sided, Holm-adjusted across them."""
    rows = []
    for metric in METRICS:
        if metric == "latency_p99":
            c_values, c_users = control.request_latencies()
            t_values, t_users = treatment.request_latencies()
            if len(c_values) == 0 or len(t_values) == 0:
                rows.append({"metric": metric, "p_value": 1.0, "message": "no requests"})
                continue
            boot = bootstrap_quantile_difference(
                c_values, t_values, control_users=c_users, treatment_users=t_users,
                n_resamples=BOOTSTRAP_RESAMPLES, seed=seed,
            )  # fmt: skip
            rows.append(
                {
                    "metric": metric,
                    "control": _p99(c_values),
                    "test": _p99(t_values),
                    "absolute": boot.estimate,
                    "ci95_absolute": [boot.ci[0], boot.ci[1]],
                    "p_value": boot.p_value,
                    "method": f"bootstrap over users ({BOOTSTRAP_RESAMPLES} resamples), 2 % latency buckets",
                    "_bounds": (boot.lower, boot.upper),
                }
            )
            continue
        c, t = control.statistic(metric), treatment.statistic(metric)
        result = two_sided_ttest(c, t)
        row = {
            "metric": metric,
            "control": _finite(c.mean),
            "test": _finite(t.mean),
            "absolute": _finite(result.absolute),
            "ci95_absolute": [_finite(x) for x in result.ci95_absolute],
            "p_value": float(result.p_value),
            "method": "delta method on per-user sums"
            if metric != "user_hitrate@5"
            else "Welch on per-user rates",
        }
        if result.message:
            row["message"] = result.message
        rows.append(row)
    for row, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_value_adjusted"] = p
        row["correction"] = "holm across secondary metrics"
    return rows


def guardrails(
    control: ArmMetrics,
    treatment: ArmMetrics,
    rules: Sequence,
    secondary_rows: list[dict],
    alpha: float = 0.05,
) -> list[dict]:
    """One row per rule (``metric``, ``margin``, ``relative``): ``metric``, ``control``, ``test``,
    ``absolute``, ``ci95_absolute``, ``margin``, ``status`` (and ``p_value``, Holm across rules)."""
    by_metric = {r["metric"]: r for r in secondary_rows}
    rows = []
    for rule in rules:
        if rule.metric not in LOWER_IS_BETTER:
            raise ValueError(f"unknown guardrail metric {rule.metric!r}: use one of {', '.join(METRICS)}")
        lower_better = LOWER_IS_BETTER[rule.metric]
        seen = by_metric[rule.metric]
        base = seen.get("control")
        row = {k: seen.get(k) for k in ("control", "test", "absolute", "ci95_absolute")}
        row = {"metric": rule.metric, **row, "margin": rule.margin, "relative": rule.relative}
        if base is None or row["absolute"] is None or "message" in seen:
            rows.append(
                row | {"status": "inconclusive", "p_value": 1.0, "message": seen.get("message", "no data")}
            )
            continue
        threshold = (rule.margin * abs(base) if rule.relative else rule.margin) * (1 if lower_better else -1)
        if rule.metric == "latency_p99":
            lower, upper = seen["_bounds"]
            ok = upper < threshold if lower_better else lower > threshold
            p = 0.0 if ok else 1.0  # the bootstrap gives a bound, not an exact p-value
        else:
            test = non_inferiority_test(
                control.statistic(rule.metric),
                treatment.statistic(rule.metric),
                rule.margin,
                higher_is_better=not lower_better,
                relative=rule.relative,
                alpha=alpha,
            )
            ok, p = test.non_inferior, test.p_value
        low, high = row["ci95_absolute"]
        worse = low is not None and (low > threshold if lower_better else high < threshold)
        rows.append(
            row
            | {
                "threshold": threshold,
                "p_value": p,
                "status": "pass" if ok else "fail" if worse else "inconclusive",
            }
        )
    for row, p in zip(rows, holm([r["p_value"] for r in rows]) if rows else [], strict=True):
        row["p_value_adjusted"] = p
        if row["status"] == "pass" and p >= alpha:
            row["status"] = "inconclusive"  # not non-inferior once the guardrails' multiplicity is counted
    for r in secondary_rows:
        r.pop("_bounds", None)
    return rows
