"""The fallback list: what a request gets when its arm's model cannot serve it in time (shed by
admission control, or past the deadline).

The posts most liked before the request's day, in that order, without the posts the user liked
before the request's time, optionally of one topic. Each day's order is sorted once at start-up,
so a request costs a walk down one precomputed row (README "Overload" has the cost).
"""

from __future__ import annotations

import numpy as np

from gateway.features.store import FeatureStore

FALLBACK_VERSION = "fallback:popularity"


class PopularityFallback:
    def __init__(self, store: FeatureStore, topic_codes: np.ndarray) -> None:
        likes = np.asarray(store.post_likes_before)
        self._order = np.argsort(-likes, axis=1, kind="stable").astype(np.int32)  # (days, posts)
        self._topics = np.asarray(topic_codes)
        self._store = store
        self._day0, self._days = int(store.manifest["day0"]), len(likes)

    def top(self, user_idx: int, seconds: int, limit: int, topic_code: int | None = None) -> list[int]:
        """Dense post indices, most liked before the request's day first; never a post the user
        (``user_idx`` < 0: unknown, nothing excluded) liked before ``seconds``."""
        day = min(max((seconds - self._day0) // 86400, 0), self._days - 1)  # as FeatureStore._day
        order = self._order[day]
        if topic_code is not None:
            order = order[self._topics[order] == topic_code]
        liked = self._store.liked_set(user_idx, seconds) if user_idx >= 0 else set()
        head = order[: limit + len(liked)].tolist()
        return [p for p in head if p not in liked][:limit]
