"""A bootstrap over users for a quantile difference (e.g. p99 latency, treatment − control).

A quantile of per-request latency has no sufficient statistics and no delta method, and the
requests of one user are correlated, so the unit resampled is the **user**, each arm on its
own: every resample draws the arm's users with replacement and weights each user's requests
by how often the user was drawn. The quantile is the inverted-CDF one (the smallest value
whose weighted cumulative share reaches q; numpy's ``method="inverted_cdf"``), for the
estimate and every resample alike.

Vectorised: values are sorted once per arm; a block of resamples is a matrix of user counts,
gathered onto the sorted requests, cumulated, and searched for the quantile in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_CELLS = 4_000_000  # resamples × requests handled at once: bounds the memory used


@dataclass(frozen=True)
class BootstrapResult:
    """``estimate`` on the data; percentile ``ci`` (1 − alpha, two-sided); one-sided (1 − alpha) bounds.

    ``p_value`` is the percentile bootstrap's two-sided p-value-ish, 2 · min(share of
    resampled differences ≤ 0, share ≥ 0) with the +1 correction, capped at 1: a rough
    guide, not an exact test. For a guardrail, compare ``upper`` (lower is better, e.g.
    latency) or ``lower`` (higher is better) with the tolerated margin.
    """

    estimate: float
    ci: tuple[float, float]
    lower: float
    upper: float
    p_value: float
    n_resamples: int
    seed: int


def _prepare(values, users) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted values, each one's user index (0..U−1), and U."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("each arm needs a non-empty 1-D array of values")
    if np.isnan(x).any():
        raise ValueError("values must not be NaN")
    if users is None:
        index = np.arange(len(x))
    else:
        labels = np.asarray(users)
        if labels.shape != x.shape:
            raise ValueError("users must label every value")
        index = np.unique(labels, return_inverse=True)[1].ravel()
    order = np.argsort(x, kind="stable")
    return x[order], index[order], int(index.max()) + 1


def _weighted_quantiles(sorted_values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Inverted-CDF quantile of ``sorted_values`` under each row of ``weights``."""
    cumulative = np.cumsum(weights, axis=1)
    target = q * cumulative[:, -1:]
    # Tolerate the rounding of q · total so that integer cumulative counts hit it exactly.
    position = (cumulative >= target - 1e-9 * cumulative[:, -1:]).argmax(axis=1)
    return sorted_values[position]


def _resampled_quantiles(arm, q: float, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    sorted_values, user_of, n_users = arm
    block = max(1, BLOCK_CELLS // len(sorted_values))
    out = np.empty(n_resamples)
    uniform = np.full(n_users, 1 / n_users)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        counts = rng.multinomial(n_users, uniform, size=size)  # users drawn, per resample
        out[start : start + size] = _weighted_quantiles(sorted_values, counts[:, user_of], q)
    return out


def bootstrap_quantile_difference(
    control,
    treatment,
    *,
    q: float = 0.99,
    control_users=None,
    treatment_users=None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> BootstrapResult:
    """Quantile ``q`` of treatment minus that of control, resampling users.

    ``control`` and ``treatment`` are per-request values; ``*_users`` label each value with
    its user (omit them when there is one value per user). Deterministic for a given ``seed``.
    """
    if not 0 < q < 1:
        raise ValueError("q must be in (0, 1)")
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")
    arms = [_prepare(control, control_users), _prepare(treatment, treatment_users)]
    estimate = float(
        _weighted_quantiles(arms[1][0], np.ones((1, len(arms[1][0]))), q)[0]
        - _weighted_quantiles(arms[0][0], np.ones((1, len(arms[0][0]))), q)[0]
    )
    rng = np.random.default_rng(seed)
    differences = _resampled_quantiles(arms[1], q, n_resamples, rng) - _resampled_quantiles(
        arms[0], q, n_resamples, rng
    )
    low, high, lower, upper = np.quantile(differences, [alpha / 2, 1 - alpha / 2, alpha, 1 - alpha])
    below = (np.count_nonzero(differences <= 0) + 1) / (n_resamples + 1)
    above = (np.count_nonzero(differences >= 0) + 1) / (n_resamples + 1)
    return BootstrapResult(
        estimate=estimate,
        ci=(float(low), float(high)),
        lower=float(lower),
        upper=float(upper),
        p_value=float(min(1.0, 2 * min(below, above))),
        n_resamples=n_resamples,
        seed=seed,
    )
