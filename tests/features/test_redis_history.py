"""The Redis online store (real Redis at 127.0.0.1:6379): same features as the in-memory
store, point in time, and shared by replicas (two real gateway processes)."""

from __future__ import annotations

import os
import uuid

import httpx
import numpy as np
import pytest

from gateway.features.redis_history import OnlineStoreError, RedisHistory
from tests.conftest import LiveServer, write_config

REDIS_URL = os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def history(tiny_store):
    """A pushed copy of the tiny store's history under a throwaway key prefix."""
    prefix = f"recsys-test-{uuid.uuid4().hex[:8]}"
    try:
        history = RedisHistory.connect(REDIS_URL, tiny_store, prefix, require_pushed=False)
    except OnlineStoreError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(str(exc))
    history.push()
    yield history
    for key in history.client.scan_iter(f"{prefix}:*", count=1000):
        history.client.delete(key)
    history.close()


def test_a_server_refuses_a_redis_without_this_store(tiny_store):
    with pytest.raises(OnlineStoreError, match="recsys online push"):
        RedisHistory.connect(REDIS_URL, tiny_store, f"empty-{uuid.uuid4().hex[:8]}")
    with pytest.raises(OnlineStoreError, match="cannot reach Redis"):
        RedisHistory.connect("redis://127.0.0.1:1/0", tiny_store)


def test_features_from_redis_equal_the_in_memory_store(history, tiny_store):
    rng = np.random.default_rng(4)
    day0, days = tiny_store.manifest["day0"], tiny_store.manifest["days"]
    users = rng.integers(0, len(tiny_store.user_ids), 60)
    for user in users:
        seconds = int(rng.integers(day0, day0 + days * 86400))
        local = tiny_store.compute(np.array([user]), np.array([seconds]))
        view = history.view(int(user))
        remote = view.compute(np.array([user]), np.array([seconds]))
        for name, values in local.items():
            # profile sums are accumulated per user here and over all users in memory: the
            # float32 results may differ in the last place, never more
            np.testing.assert_allclose(remote[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.array_equal(
            view.liked_before(int(user), seconds), tiny_store.liked_before(int(user), seconds)
        )


def test_appended_events_are_seen_by_another_replica_only_after_their_time(history, tiny_store):
    replica = RedisHistory(history.client, tiny_store, history.namespace.split(":")[0])
    user, post = 3, 11
    t = tiny_store.manifest["day0"] + (tiny_store.manifest["days"] - 1) * 86400
    assert post not in replica.view(user).liked_before(user, t + 10)
    history.append(
        np.array([user, user]), np.array([post, post]), np.array([t, t + 5]), np.array([False, True])
    )
    view = replica.view(user)
    assert post in view.liked_before(user, t + 6)
    assert post not in view.liked_before(user, t + 5)  # strictly before the request time
    before = tiny_store.compute(np.array([user]), np.array([t + 6]))
    after = view.compute(np.array([user]), np.array([t + 6]))
    assert after["u_likes"][0] > before["u_likes"][0] and after["u_views"][0] > before["u_views"][0]


def test_two_gateway_replicas_share_online_events(history, tiny_db, tiny_store_dir, tiny_models, tmp_path):
    prefix = history.namespace.split(":")[0]
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",  # not the shared world: its exposures are counted elsewhere
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    env = {
        "RECSYS_SERVING__ONLINE_STORE": "redis",
        "RECSYS_SERVING__REDIS_URL": REDIS_URL,
        "RECSYS_ADMIN_TOKEN": "tok",
        "RECSYS_SERVING__REDIS_PREFIX": prefix,
    }
    a, b = LiveServer(config, env), LiveServer(config, env)
    try:
        user = int(history.store.user_ids[9])
        params = {"id": user, "time": "2021-12-28T12:00:00", "limit": 5}
        top = httpx.get(f"{b.url}/post/recommendations/", params=params).json()["recommendations"][0]["id"]
        event = {"user_id": user, "post_id": top, "action": "like", "timestamp": "2021-12-28T11:00:00"}
        r = httpx.post(f"{a.url}/events", json={"events": [event]}, headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200, r.text
        later = httpx.get(f"{b.url}/post/recommendations/", params=params).json()["recommendations"]
        assert top not in {p["id"] for p in later}  # replica b saw the like sent to replica a
        assert len(later) == 5
    finally:
        a.stop()
        b.stop()


def test_without_a_local_copy_a_redis_failure_is_a_503_not_a_feed_that_ignores_likes(tiny_store_dir):
    import redis
    from fastapi import HTTPException

    from gateway.features.store import FeatureStore
    from gateway.serving.breaker import Breaker
    from gateway.serving.prometheus import Metrics
    from gateway.serving.routes.recommendations import user_view

    store = FeatureStore.load(tiny_store_dir)  # private: the history is dropped below
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    metrics = Metrics()
    kept = RedisHistory(dead, FeatureStore.load(tiny_store_dir), local_fallback=True)
    assert user_view(kept, kept.store, int(kept.store.user_ids[0]), metrics, Breaker(60)) is kept.store
    history = RedisHistory(dead, store, local_fallback=False)
    assert len(store.base.like_keys) == 0 and len(store.base.view_keys) == 0  # memory freed
    with pytest.raises(HTTPException) as refused:
        user_view(history, store, int(store.user_ids[0]), metrics, breaker := Breaker(60))
    assert refused.value.status_code == 503
    assert metrics.online_store_errors._value.get() == 2
    with pytest.raises(HTTPException) as skipped:  # the breaker is open: Redis is not even called
        user_view(history, store, int(store.user_ids[0]), metrics, breaker)
    assert skipped.value.status_code == 503 and metrics.online_store_errors._value.get() == 2
    assert metrics.online_store_skipped._value.get() == 1
