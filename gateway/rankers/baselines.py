"""Baseline rankers: uniformly random, and most liked before the request's day."""

from __future__ import annotations

import numpy as np


class RandomRanker:
    """Uniformly random order, reproducible per (seed, user, time)."""

    name = "random"
    version = "random-1"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, store, user_idx, seconds, features=None) -> np.ndarray:
        out = np.empty((len(user_idx), len(store.post_ids)))
        for row, (user, second) in enumerate(zip(user_idx, seconds, strict=True)):
            out[row] = np.random.default_rng([self.seed, int(user), int(second)]).random(len(store.post_ids))
        return out


class PopularityRanker:
    """Most liked posts before the request's day (point in time)."""

    name = "popularity"
    version = "popularity-1"

    def score(self, store, user_idx, seconds, features=None) -> np.ndarray:
        likes = store.popularity_before(seconds).astype(np.float64)
        # Ties broken by the daily like rate so that the order is total.
        views = store.views_before(seconds)
        return likes + (likes + 1) / (views + 10) * 1e-3
