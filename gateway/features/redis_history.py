"""Redis as the online store's history backend, shared by every gateway replica.

Each user's events live under one key as packed records ``(post int32, seconds int64, like
uint8)``; a request reads that one key (one round trip) and builds the user's point-in-time
index from it, so a replica needs no event log in memory and a like sent to any replica
(``POST /events`` → Redis ``APPEND``, atomic) is seen by all of them at their next request.
Post-side data (7k posts, daily snapshots, embeddings) stays in each process.

Keys: ``{prefix}:{store version}:events:{user index}`` and ``{prefix}:{store version}:meta``
(a hash written last by ``recsys online push``: a half-pushed store is never served).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from gateway.features.store import EventIndex, FeatureStore

RECORD = np.dtype([("post", "<i4"), ("seconds", "<i8"), ("like", "u1")])
PUSH_BATCH_USERS = 2000


class OnlineStoreError(RuntimeError):
    """Redis is unreachable or does not hold this feature store's history."""


class RedisHistory:
    def __init__(
        self, client, store: FeatureStore, prefix: str = "recsys", local_fallback: bool = True
    ) -> None:
        self.client = client
        self.store = store
        self.namespace = f"{prefix}:{store.version}"
        self.local_fallback = local_fallback
        if not local_fallback:  # the history lives in Redis only: free the local index
            store.base = _empty_index(store)
            store.recent = None

    @classmethod
    def connect(
        cls,
        url: str,
        store: FeatureStore,
        prefix: str = "recsys",
        *,
        require_pushed: bool = True,
        local_fallback: bool = True,
    ):
        client = open_client(url, prefix, store.version if require_pushed else None)
        return cls(client, store, prefix, local_fallback)

    def key(self, user_idx: int) -> str:
        return f"{self.namespace}:events:{int(user_idx)}"

    # -- writing -------------------------------------------------------------------------
    def users_to_push(self) -> int:
        """Users with events in the offline log (the keys ``push`` writes)."""
        return len(np.unique(self.store.events["user"]))

    def push(self, progress: Callable[[int], None] | None = None) -> dict:
        """Materialise the offline event log, one key per user (replacing what was there)."""
        started = time.perf_counter()
        log = self.store.events
        order = np.lexsort((log["seconds"], log["user"]))
        users = np.asarray(log["user"])[order]
        records = _pack(np.asarray(log["post"])[order], np.asarray(log["seconds"])[order], log["like"][order])
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True]) if len(users) else np.array([0])
        self.client.delete(f"{self.namespace}:meta")  # readers refuse the store until we finish
        pipe = self.client.pipeline(transaction=False)
        for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), 1):
            pipe.set(self.key(users[lo]), records[lo:hi].tobytes())
            if n % PUSH_BATCH_USERS == 0:
                pipe.execute()
                if progress:
                    progress(PUSH_BATCH_USERS)
        pipe.execute()
        if progress:
            progress((len(bounds) - 1) % PUSH_BATCH_USERS)
        meta = {"users": len(bounds) - 1, "events": len(users), "bytes": int(records.nbytes)}
        self.client.hset(f"{self.namespace}:meta", mapping={**meta, "pushed_at": int(time.time())})
        return {**meta, "seconds": round(time.perf_counter() - started, 1)}

    def append(
        self, user_idx: np.ndarray, post_idx: np.ndarray, seconds: np.ndarray, like: np.ndarray
    ) -> None:
        """New events, visible to every replica's next request (APPEND is atomic per key)."""
        records = _pack(post_idx, seconds, like)
        pipe = self.client.pipeline(transaction=False)
        for user, record in zip(np.asarray(user_idx), records, strict=True):
            pipe.append(self.key(user), record.tobytes())
        pipe.execute()

    # -- reading -------------------------------------------------------------------------
    def events(self, user_idx: int) -> np.ndarray:
        raw = self.client.get(self.key(user_idx))
        return np.frombuffer(raw, dtype=RECORD) if raw else np.zeros(0, dtype=RECORD)

    def view(self, user_idx: int) -> FeatureStore:
        """The feature store as this user's requests see it: history from Redis only."""
        ev = self.events(user_idx)
        index = _index(self.store, np.full(len(ev), user_idx, dtype=np.int64), ev)
        return dataclasses.replace(self.store, base=index, recent=None)

    def close(self) -> None:
        self.client.close()


def _index(store: FeatureStore, users: np.ndarray, ev: np.ndarray) -> EventIndex:
    return store.index_events(users, ev["post"].astype(np.int64), ev["seconds"], ev["like"].astype(bool))


def _empty_index(store: FeatureStore) -> EventIndex:
    return _index(store, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=RECORD))


def open_client(url: str, prefix: str, require_version: str | None):
    """A Redis client, checked: reachable, and holding ``require_version``'s history if given."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
        pushed = require_version is None or client.exists(f"{prefix}:{require_version}:meta")
    except redis.RedisError as exc:
        raise OnlineStoreError(f"cannot reach Redis at {url}: {exc}") from None
    if not pushed:
        client.close()
        raise OnlineStoreError(
            f"Redis at {url} has no history for feature store {require_version} (prefix {prefix!r}): "
            "run `recsys online push`"
        )
    return client


def _pack(post: np.ndarray, seconds: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.empty(len(post), dtype=RECORD)
    out["post"], out["seconds"], out["like"] = post, seconds, np.asarray(like).astype(np.uint8)
    return out
