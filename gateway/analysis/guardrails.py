"""Guardrail and secondary metrics, user-clustered: pure maths on per-user sums.

Metrics (``METRICS``; each per arm, the user the unit):

* ``latency_mean``: Σ latency / Σ requests, a ratio metric (delta method); lower is better;
* ``latency_p99``: the 99th percentile of per-request latency, bootstrapped over users (each
  user's requests as a latency histogram, ``aggregate.latency_histogram``); lower is better;
* ``likes_per_view``: Σ likes / Σ views in the feed during the experiment (delta method);
  higher is better;
* ``user_hitrate@5``: the mean of per-user hit rates (Welch); higher is better;
* ``topic_diversity``: distinct topics per served top 5, Σ over a user's requests / their
  requests (delta method, on a sample of users, ``aggregate.served_lists``); higher is better;
* ``catalogue_coverage``: each arm's share of the catalogue served in the top 5 (one number per
  arm, on the same sample: descriptive, not tested).

A **guardrail** (config.yaml ``analysis.guardrails``) is a one-sided non-inferiority test: the
treatment may not be worse than control by more than ``margin`` (a fraction of control when
``relative``). ``status``: ``pass`` when the one-sided 95 % bound clears the margin
(non-inferiority shown), ``fail`` when the whole two-sided 95 % interval lies beyond it, else
``inconclusive``. Guardrail p-values are Holm-adjusted across the guardrails; the two-sided
p-values of the secondary metrics are Holm-adjusted across the secondary metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.analysis.decision import json_number
from gateway.analysis.frequentist import non_inferiority_test, two_sided_ttest
from gateway.analysis.multiple_testing import holm
from gateway.analysis.statistics import RatioStatistic, SampleMeanStatistic

LOWER_IS_BETTER = {
    "latency_mean": True,
    "latency_p99": True,
    "likes_per_view": False,
    "user_hitrate@5": False,
    "topic_diversity": False,
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

    def tail(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tail histogram's rows sorted by latency: (latency, user index, requests)."""
        order = np.argsort(self.hist_latency, kind="stable")
        return self.hist_latency[order], self.hist_users[order].astype(int), self.hist_requests[order]


def _tail_quantiles(values, owners, counts, requests, weights: np.ndarray, q: float) -> np.ndarray:
    """Inverted-CDF quantile ``q`` under each row of user ``weights``, from the tail rows only:
    the requests below the tail count through each user's total. NaN where it falls below the tail."""
    total = weights @ requests
    tail_weights = weights[:, owners] * counts
    below = total - tail_weights.sum(axis=1)
    cumulative = np.cumsum(tail_weights, axis=1)
    target = q * total - below
    reached = cumulative >= (target - 1e-9 * total)[:, None]
    position = reached.argmax(axis=1)
    out = values[position].astype(float)
    out[(target <= 0) | ~reached.any(axis=1)] = np.nan
    return out


def quantile_bootstrap(
    control: ArmMetrics,
    treatment: ArmMetrics,
    *,
    q: float = 0.99,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Quantile ``q`` of per-request latency, treatment − control, resampling users: the Poisson
    bootstrap (each user drawn Poisson(1) times, each arm on its own), on latency histograms."""
    rng = np.random.default_rng(seed)
    estimates, resampled = [], []
    for arm in (control, treatment):
        values, owners, counts = arm.tail()
        n_users = len(arm.requests)
        estimates.append(
            float(_tail_quantiles(values, owners, counts, arm.requests, np.ones((1, n_users)), q)[0])
        )
        draws = np.empty(n_resamples)
        block = max(1, 4_000_000 // max(1, len(values), n_users))
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            weights = rng.poisson(1.0, (size, n_users)).astype(float)
            draws[start : start + size] = _tail_quantiles(values, owners, counts, arm.requests, weights, q)
        resampled.append(draws)
    if np.isnan(estimates).any() or np.isnan(resampled[0]).any() or np.isnan(resampled[1]).any():
        return {"control": None, "test": None, "absolute": None, "ci95_absolute": [None, None], "p_value": 1.0,
                "message": "the quantile fell below the latency histogram's cut-off"}  # fmt: skip
    differences = resampled[1] - resampled[0]
    low, high, lower, upper = np.quantile(differences, [alpha / 2, 1 - alpha / 2, alpha, 1 - alpha])
    below = (np.count_nonzero(differences <= 0) + 1) / (n_resamples + 1)
    above = (np.count_nonzero(differences >= 0) + 1) / (n_resamples + 1)
    return {
        "control": estimates[0],
        "test": estimates[1],
        "absolute": estimates[1] - estimates[0],
        "ci95_absolute": [float(low), float(high)],
        "p_value": float(min(1.0, 2 * min(below, above))),
        "_bounds": (float(lower), float(upper)),
    }


def secondary(
    control: ArmMetrics,
    treatment: ArmMetrics,
    *,
    diversity: tuple[RatioStatistic, RatioStatistic] | None = None,
    coverage: tuple[float, float] | None = None,
    seed: int = 0,
) -> list[dict]:
    """Every metric of ``METRICS``, treatment − control, two-sided, Holm-adjusted across them.

    ``diversity``: each arm's distinct topics per served top 5 (Σ topics / Σ lists per user, on
    a sample of users); ``coverage``: each arm's share of the catalogue served (descriptive, no
    test: one number per arm, not a per-user quantity)."""
    rows = []
    for metric in METRICS:
        if metric == "topic_diversity":
            if diversity is not None:
                rows.append(
                    _ratio_row(metric, *diversity, "delta method on per-user sums (a sample of users)")
                )
            continue
        if metric == "latency_p99":
            if (
                control.requests.sum() == 0
                or treatment.requests.sum() == 0
                or min(len(control.requests), len(treatment.requests)) < 2
            ):
                rows.append({"metric": metric, "p_value": 1.0, "message": "too few users"})
                continue
            boot = quantile_bootstrap(control, treatment, seed=seed)
            rows.append(
                {
                    "metric": metric,
                    **boot,
                    "method": f"Poisson bootstrap over users ({BOOTSTRAP_RESAMPLES} resamples), 2 % latency buckets",
                }
            )
            continue
        method = "delta method on per-user sums" if metric != "user_hitrate@5" else "Welch on per-user rates"
        rows.append(_ratio_row(metric, control.statistic(metric), treatment.statistic(metric), method))
    for row, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_value_adjusted"] = p
        row["correction"] = "holm across secondary metrics"
    if coverage is not None:
        rows.append(
            {
                "metric": "catalogue_coverage",
                "control": coverage[0],
                "test": coverage[1],
                "absolute": coverage[1] - coverage[0],
                "p_value": None,
                "method": "share of the catalogue in the served top 5 (a sample of users); descriptive",
            }
        )
    return rows


def _ratio_row(metric: str, c, t, method: str) -> dict:
    result = two_sided_ttest(c, t)
    row = {
        "metric": metric,
        "control": json_number(c.mean),
        "test": json_number(t.mean),
        "absolute": json_number(result.absolute),
        "ci95_absolute": [json_number(x) for x in result.ci95_absolute],
        "p_value": float(result.p_value),
        "method": method,
    }
    if result.message:
        row["message"] = result.message
    return row


def guardrails(
    control: ArmMetrics,
    treatment: ArmMetrics,
    rules: Sequence,
    secondary_rows: list[dict],
    alpha: float = 0.05,
    stats: dict | None = None,
) -> list[dict]:
    """One row per rule (``metric``, ``margin``, ``relative``): ``metric``, ``control``, ``test``,
    ``absolute``, ``ci95_absolute``, ``margin``, ``status`` (and ``p_value``, Holm across rules)."""
    by_metric = {r["metric"]: r for r in secondary_rows}
    stats = stats or {}
    rows = []
    for rule in rules:
        if rule.metric not in LOWER_IS_BETTER:
            raise ValueError(f"unknown guardrail metric {rule.metric!r}: use one of {', '.join(METRICS)}")
        lower_better = LOWER_IS_BETTER[rule.metric]
        seen = by_metric.get(rule.metric, {"message": "not measured (no catalogue table)"})
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
            pair = stats.get(rule.metric) or (
                control.statistic(rule.metric),
                treatment.statistic(rule.metric),
            )
            test = non_inferiority_test(
                pair[0],
                pair[1],
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
