"""The fallback list: what a request gets when its arm's model cannot serve it in time (shed by
admission control, or past the deadline).

The posts most liked before the request's day, in that order, without the posts the user liked
before the request's time, optionally of one topic. Each day's order is sorted once at start-up,
so a request costs a walk down one precomputed row (README "Overload" has the cost).
"""

from __future__ import annotations

import numpy as np

from gateway.features.artifacts import release_pages
from gateway.features.store import FeatureStore, day_counts

FALLBACK_VERSION = "fallback:popularity"


FALLBACK_HEAD = 2048  # posts kept per day (and per day and topic); a request needing more sorts its day


class PopularityFallback:
    def __init__(self, store: FeatureStore, topic_codes: np.ndarray) -> None:
        likes = store.post_likes_before  # (days, posts), memory-mapped from the store
        self._topics = np.asarray(topic_codes)
        self._store = store
        self._day0, self._days = int(store.manifest["day0"]), len(likes)
        n_topics = int(self._topics.max()) + 1 if len(self._topics) else 0
        # Each day's order's head, overall and per topic: the full (days, posts) order of a
        # large catalogue would cost a worker 4 bytes per post and day.
        self._heads: list[dict[int | None, np.ndarray]] = []
        for day in range(self._days):
            order = self._day_order(day)
            topics = self._topics[order]
            # Copies: a slice would keep its whole day's order (or topic's subset) alive.
            heads: dict[int | None, np.ndarray] = {None: order[:FALLBACK_HEAD].copy()}
            for t in range(n_topics):
                heads[t] = order[topics == t][:FALLBACK_HEAD].copy()
            self._heads.append(heads)
        release_pages(likes)

    def _day_order(self, day: int) -> np.ndarray:
        return np.argsort(-day_counts(self._store.post_likes_before, day), kind="stable").astype(np.int32)

    def top(self, user_idx: int, seconds: int, limit: int, topic_code: int | None = None) -> list[int]:
        """Dense post indices, most liked before the request's day first; never a post the user
        (``user_idx`` < 0: unknown, nothing excluded) liked before ``seconds``."""
        day = min(max((seconds - self._day0) // 86400, 0), self._days - 1)  # as FeatureStore._day
        liked = self._store.liked_set(user_idx, seconds) if user_idx >= 0 else set()
        order = self._heads[day].get(topic_code)
        if order is None:
            order = np.zeros(0, np.int32)  # a topic code the catalogue does not have
        elif len(order) == FALLBACK_HEAD and limit + len(liked) > FALLBACK_HEAD:
            order = self._day_order(day)  # the head may be too short: the whole day's order
            if topic_code is not None:
                order = order[self._topics[order] == topic_code]
        head = order[: limit + len(liked)].tolist()
        return [p for p in head if p not in liked][:limit]
