"""Ranking metrics: pure functions over arrays, and the two constants every judge shares."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

K = 5  # Hitrate@K: a request is a hit when one of its first K posts is liked
Z_95 = 1.959964  # two-sided 95 % normal quantile


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_hit(p_top: np.ndarray) -> np.ndarray:
    """Probability that at least one of the recommended posts is liked: 1 - prod(1 - p)."""
    return 1.0 - np.prod(1.0 - np.asarray(p_top, dtype=np.float64), axis=-1)


def mean_ci95(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and normal 95 % interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    half = Z_95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, mean - half, mean + half


def log_odds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), elementwise (the like log-odds of features and retrieval alike)."""
    return np.log(p) - np.log1p(-p)


def found_in_sorted(sorted_values: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Ascending positions in ``sorted_values`` (sorted ascending) of the values that are among
    ``items``: ``np.flatnonzero(np.isin(sorted_values, items))`` by binary search, without the
    sorts ``isin`` does for a few hundred values."""
    items = np.asarray(items)
    if not len(items) or not len(sorted_values):
        return np.zeros(0, np.int64)
    pos = np.searchsorted(sorted_values, items)
    inside = pos < len(sorted_values)
    pos = pos[inside]
    mask = np.zeros(len(sorted_values), bool)
    mask[pos[sorted_values[pos] == items[inside]]] = True
    return np.flatnonzero(mask)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-d array: one sort and a comparison with the neighbour,
    without ``np.unique``'s hashing and checks (a few hundred values per serving request)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def top_k(scores: np.ndarray, k: int, excluded: list[np.ndarray] | None = None) -> np.ndarray:
    """Indices of the k best scores per row, best first, never an excluded index.

    Rows with fewer than k allowed items return what is left, padded with -1.
    """
    scores = np.array(scores, dtype=np.float64, ndmin=2)
    if excluded is not None:
        for row, items in enumerate(excluded):
            if len(items):
                scores[row, items] = -np.inf
    k_eff = min(k, scores.shape[1])
    if scores.shape[0] == 1 and k_eff > 0:  # a serving request: the same choice on the row itself
        return _top_k_row(scores[0], k_eff)[None]
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    # Ties go to the lower index, also at the k-th place (argpartition picks any of the tied):
    # every index scoring at least the k-th best, by score descending, then index ascending.
    threshold = np.take_along_axis(scores, part, axis=1).min(axis=1)
    best = np.empty((scores.shape[0], k_eff), dtype=np.int64)
    for row in range(scores.shape[0]):
        candidates = np.flatnonzero(scores[row] >= threshold[row])
        order = np.lexsort((candidates, -scores[row, candidates]))
        best[row] = candidates[order[:k_eff]]
    best_scores = np.take_along_axis(scores, best, axis=1)
    return np.where(np.isneginf(best_scores), -1, best)


def _top_k_row(scores: np.ndarray, k: int) -> np.ndarray:
    """``top_k`` of one row (``k`` at most its length)."""
    threshold = scores[np.argpartition(-scores, k - 1)[:k]].min()
    candidates = np.flatnonzero(scores >= threshold)
    best = candidates[np.lexsort((candidates, -scores[candidates]))[:k]]
    return np.where(np.isneginf(scores[best]), -1, best)


def top_k_expected_hit(
    scores: np.ndarray, truth_p: np.ndarray, k: int, excluded: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top k (never an excluded index) and its expected hit under ``truth_p``:
    1 - prod(1 - p) over the chosen posts (a missing slot counts as p = 0)."""
    best = top_k(scores, k, excluded)
    p_top = np.where(best >= 0, np.take_along_axis(truth_p, np.maximum(best, 0), axis=1), 0.0)
    return best, expected_hit(p_top)


def session_hitrate(groups: np.ndarray, scores: np.ndarray, targets: np.ndarray, k: int = K) -> float:
    """Logged-data Hitrate@k: within each group (user-day) rank its viewed posts by score;
    a hit when any of the top k was liked. Groups with fewer than 2k views are skipped."""
    order = np.lexsort((-scores, groups))
    g, t = groups[order], targets[order]
    start = np.r_[True, g[1:] != g[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
    rank = np.arange(len(g)) - first
    sizes = np.bincount(np.cumsum(start) - 1)
    group_id = np.cumsum(start) - 1
    hits = np.zeros(len(sizes))
    np.maximum.at(hits, group_id[rank < k], t[rank < k])
    keep = sizes >= 2 * k
    return float(hits[keep].mean()) if keep.any() else float("nan")
