"""The oracle ranker: orders posts by the world's true like probability (judging only)."""

from __future__ import annotations

import numpy as np

from gateway.features.store import FeatureStore
from gateway.world.truth import Truth


class OracleRanker:
    name = "oracle"
    version = "oracle-1"

    def __init__(self, truth: Truth, store: FeatureStore) -> None:
        self.truth = truth
        self.user_map = truth.user_index(store.user_ids)
        self.post_map = truth.post_index(store.post_ids)

    def like_prob(
        self, user_idx: np.ndarray, seconds: np.ndarray, post_idx: np.ndarray | None = None
    ) -> np.ndarray:
        """True p for (request x catalogue), or for (request, post) pairs when ``post_idx`` given."""
        users = self.user_map[np.asarray(user_idx)]
        if post_idx is None:
            return self.truth.like_prob(users[:, None], self.post_map[None, :], np.asarray(seconds)[:, None])
        return self.truth.like_prob(users[:, None], self.post_map[post_idx], np.asarray(seconds)[:, None])

    def score(self, store, user_idx, seconds, features=None) -> np.ndarray:
        return self.like_prob(user_idx, seconds)
