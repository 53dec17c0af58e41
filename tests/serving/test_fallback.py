"""The popularity fallback keeps each day's head only: its lists equal those of the whole day's
order, also when a request needs more than the head (a heavy liker, a small head)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.serving import fallback
from gateway.serving.fallback import PopularityFallback

DAY = 86400


def _reference(store, user_idx: int, seconds: int, limit: int, topic_code: int | None) -> list[int]:
    """The list as the fallback computed it from the full (days, posts) order."""
    likes = np.asarray(store.post_likes_before, dtype=np.int64)
    day = min(max((seconds - store.manifest["day0"]) // DAY, 0), len(likes) - 1)
    order = np.argsort(-likes[day], kind="stable")
    if topic_code is not None:
        order = order[store.posts["topic"][order] == topic_code]
    liked = set(store.liked_before(user_idx, seconds).tolist()) if user_idx >= 0 else set()
    return [int(p) for p in order if p not in liked][:limit]


@pytest.mark.parametrize("head", [2048, 7, 1])
def test_fallback_lists_equal_the_whole_days_order(tiny_store, monkeypatch, head):
    monkeypatch.setattr(fallback, "FALLBACK_HEAD", head)
    topics = tiny_store.posts["topic"]
    service = PopularityFallback(tiny_store, topics)
    day0, days = tiny_store.manifest["day0"], tiny_store.manifest["days"]
    rng = np.random.default_rng(3)
    heavy = int(np.argmax(np.bincount(tiny_store.events["user"][tiny_store.events["like"]])))
    users = [-1, heavy, *rng.choice(len(tiny_store.user_ids), 25).tolist()]
    checked = 0
    for user in users:
        seconds = int(day0 + rng.integers(-1, days + 1) * DAY + 15 * 3600)
        for topic in (None, *range(int(topics.max()) + 2)):  # the last code is not in the catalogue
            for limit in (1, 5, 30):
                got = service.top(int(user), seconds, limit, topic)
                assert got == _reference(tiny_store, int(user), seconds, limit, topic), (user, topic, limit)
                checked += 1
    assert checked > 0 and len(tiny_store.liked_before(heavy, day0 + days * DAY)) > 7


def test_fallback_keeps_only_the_heads_in_memory(tiny_store, monkeypatch):
    """Each kept head owns its memory: a view would pin its whole day's order (4 bytes per post
    and day, the bulk of a worker's memory at a million posts)."""
    monkeypatch.setattr(fallback, "FALLBACK_HEAD", 3)
    service = PopularityFallback(tiny_store, tiny_store.posts["topic"])
    kept = [head for heads in service._heads for head in heads.values()]
    assert kept and all(head.base is None and len(head) <= 3 for head in kept)
    assert sum(head.nbytes for head in kept) <= 3 * 4 * len(kept)
