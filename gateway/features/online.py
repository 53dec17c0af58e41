"""Online store: the artifacts in memory as numpy arrays, and the one feature function.

Events are kept as sorted int64 keys ``(entity << 32) | seconds``, so "events of user u
strictly before t" is a binary search, vectorised over any number of requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.features.definitions import (
    FEATURE_NAMES,
    POST_PRIOR_VIEWS,
    TOPIC_PRIOR_LIKES,
    USER_PRIOR_VIEWS,
)
from gateway.features.offline import FeatureStoreError

_T0 = int(pd.Timestamp("2020-01-01").timestamp())  # keys hold seconds since 2020 in 32 bits
_SHIFT = np.int64(32)
_MAX_REL = np.int64((1 << 32) - 1)


def _rel(seconds: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(seconds, dtype=np.int64) - _T0, 0, _MAX_REL)


def _keys(entity: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(entity, dtype=np.int64) << _SHIFT) | _rel(seconds)


def _count_before(keys: np.ndarray, entity: np.ndarray, since: np.ndarray, until: np.ndarray) -> np.ndarray:
    """Number of events of ``entity`` with since <= time < until."""
    return np.searchsorted(keys, _keys(entity, until)) - np.searchsorted(keys, _keys(entity, since))


@dataclass
class FeatureStore:
    manifest: dict
    user_ids: np.ndarray
    post_ids: np.ndarray
    users: dict[str, np.ndarray]  # static user columns by dense user index
    posts: dict[str, np.ndarray]  # static post columns by dense post index
    post_emb: np.ndarray  # (posts, dims) float32, L2-normalised
    post_views_before: np.ndarray  # (days + 1, posts): views before the start of day d
    post_likes_before: np.ndarray
    view_keys: np.ndarray
    like_keys: np.ndarray
    like_post: np.ndarray  # post index of each like, aligned with like_keys
    like_emb_cum: np.ndarray  # per-user inclusive running sum of liked embeddings
    topic_like_keys: np.ndarray  # ((user * topics + topic) << 32) | t
    cluster_like_keys: np.ndarray
    topic_share: np.ndarray  # catalogue share of each topic
    cluster_share: np.ndarray  # catalogue share of each text cluster
    events: dict[str, np.ndarray]  # the offline event log (user, post, seconds, like, target)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> FeatureStore:
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            users = pd.read_parquet(path / "users.parquet")
            posts = pd.read_parquet(path / "posts.parquet")
            events = np.load(path / "events.npz")
            daily = np.load(path / "post_daily.npz")
            return cls.from_arrays(manifest, users, posts, dict(events), dict(daily))
        except (OSError, ValueError, KeyError) as exc:
            raise FeatureStoreError(
                f"cannot load feature store {path}: {exc}; run `recsys features build`"
            ) from exc

    @classmethod
    def from_arrays(
        cls, manifest: dict, users: pd.DataFrame, posts: pd.DataFrame, events: dict, daily: dict
    ) -> FeatureStore:
        emb_cols = [c for c in posts.columns if c.startswith("svd_")]
        emb = posts[emb_cols].to_numpy(np.float32)
        n_topics = len(manifest["vocabularies"]["topic"])
        n_clusters = int(posts["cluster"].max()) + 1
        user, post, seconds, like = (np.asarray(events[k]) for k in ("user", "post", "seconds", "like"))
        view_keys = np.sort(_keys(user[~like], seconds[~like]))
        like_keys_unsorted = _keys(user[like], seconds[like])
        order = np.argsort(like_keys_unsorted, kind="stable")
        like_keys, like_post, like_user = (
            like_keys_unsorted[order],
            post[like][order].astype(np.int64),
            user[like][order].astype(np.int64),
        )
        like_seconds = seconds[like][order]
        # Running sum of liked embeddings, restarted at each user's first like.
        cum = np.cumsum(emb[like_post].astype(np.float64), axis=0)
        first = np.r_[True, like_user[1:] != like_user[:-1]] if len(like_user) else np.array([], bool)
        starts = np.flatnonzero(first)
        offset = np.zeros_like(cum)
        if len(starts):
            base = np.vstack([np.zeros((1, emb.shape[1])), cum[starts[1:] - 1]])
            offset = np.repeat(base, np.diff(np.r_[starts, len(like_user)]), axis=0)
        topic = posts["topic"].to_numpy(np.int64)
        cluster = posts["cluster"].to_numpy(np.int64)
        return cls(
            manifest=manifest,
            user_ids=users["user_id"].to_numpy(np.int64),
            post_ids=posts["post_id"].to_numpy(np.int64),
            users={
                c: users[c].to_numpy(np.float32)
                for c in ("gender", "age", "country", "city", "exp_group", "os", "source")
            },
            posts={"topic": topic, "cluster": cluster, "text_len": posts["text_len"].to_numpy(np.float32)},
            post_emb=emb,
            post_views_before=np.asarray(daily["views"]),
            post_likes_before=np.asarray(daily["likes"]),
            view_keys=view_keys,
            like_keys=like_keys,
            like_post=like_post,
            like_emb_cum=(cum - offset).astype(np.float32),
            topic_like_keys=np.sort(_keys(like_user * n_topics + topic[like_post], like_seconds)),
            cluster_like_keys=np.sort(_keys(like_user * n_clusters + cluster[like_post], like_seconds)),
            topic_share=np.bincount(topic, minlength=n_topics) / len(topic),
            cluster_share=np.bincount(cluster, minlength=n_clusters) / len(cluster),
            events={
                "user": user,
                "post": post,
                "seconds": seconds,
                "like": like,
                "target": np.asarray(events["target"]),
            },
        )

    # -- ids -----------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.manifest["version"]

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Dense indices; -1 for ids the store has never seen."""
        return _index(self.user_ids, user_ids)

    def post_index(self, post_ids: np.ndarray) -> np.ndarray:
        return _index(self.post_ids, post_ids)

    # -- lookups -------------------------------------------------------------------------
    def liked_before(self, user_idx: int, seconds: int) -> np.ndarray:
        """Dense indices of the posts user liked strictly before ``seconds``."""
        lo = np.searchsorted(self.like_keys, _keys(user_idx, 0))
        hi = np.searchsorted(self.like_keys, _keys(user_idx, seconds))
        return np.unique(self.like_post[lo:hi])

    def popularity_before(self, seconds: np.ndarray) -> np.ndarray:
        """(requests, posts) like counts before each request's day (point in time)."""
        return self.post_likes_before[self._day(seconds)]

    def _day(self, seconds: np.ndarray) -> np.ndarray:
        day = (np.asarray(seconds, dtype=np.int64) - self.manifest["day0"]) // 86400
        return np.clip(day, 0, self.post_views_before.shape[0] - 1)

    def compute(
        self,
        user_idx: np.ndarray,
        seconds: np.ndarray,
        pair_request: np.ndarray | None = None,
        pair_post: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """All features for (request, post) pairs; requests are (user index, epoch seconds).

        Without pairs, every request is paired with every post (requests x catalogue, in
        request-major order). History uses only events strictly before each request's time.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        seconds = np.asarray(seconds, dtype=np.int64)
        n_posts = len(self.post_ids)
        if pair_request is None:
            pair_request = np.repeat(np.arange(len(user_idx)), n_posts)
            pair_post = np.tile(np.arange(n_posts), len(user_idx))
        g = self.manifest["global_ctr"]
        zero = np.zeros_like(seconds)
        day_start = seconds - (seconds % 86400)

        # Request level: history strictly before t.
        views = _count_before(self.view_keys, user_idx, zero, seconds)
        likes_pos = np.searchsorted(self.like_keys, _keys(user_idx, seconds))
        likes = likes_pos - np.searchsorted(self.like_keys, _keys(user_idx, zero))
        today_views = _count_before(self.view_keys, user_idx, day_start, seconds)
        today_likes = _count_before(self.like_keys, user_idx, day_start, seconds)
        profile = np.where((likes > 0)[:, None], self.like_emb_cum[np.maximum(likes_pos - 1, 0)], 0.0).astype(
            np.float32
        )
        profile_norm = np.linalg.norm(profile, axis=1)
        n_topics, n_clusters = len(self.topic_share), int(self.posts["cluster"].max()) + 1
        topic_likes = _count_before(
            self.topic_like_keys,
            (user_idx[:, None] * n_topics + np.arange(n_topics)).ravel(),
            np.repeat(zero, n_topics),
            np.repeat(seconds, n_topics),
        ).reshape(-1, n_topics)
        cluster_likes = _count_before(
            self.cluster_like_keys,
            (user_idx[:, None] * n_clusters + np.arange(n_clusters)).ravel(),
            np.repeat(zero, n_clusters),
            np.repeat(seconds, n_clusters),
        ).reshape(-1, n_clusters)
        day = self._day(seconds)
        hour = (seconds // 3600) % 24
        weekday = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday

        r, p = pair_request, pair_post
        topic = self.posts["topic"][p]
        emb = self.post_emb[p]
        post_views = self.post_views_before[day[r], p]
        post_likes = self.post_likes_before[day[r], p]
        share = (topic_likes[r, topic] + TOPIC_PRIOR_LIKES * self.topic_share[topic]) / (
            likes[r] + TOPIC_PRIOR_LIKES
        )
        dot = np.einsum("ij,ij->i", emb, profile[r])
        contrast = np.where(
            (likes > 0)[:, None], profile / np.maximum(likes, 1)[:, None] - self.post_emb.mean(axis=0), 0.0
        )
        contrast /= np.maximum(np.linalg.norm(contrast, axis=1), 1e-9)[:, None]
        contrast_cos = np.einsum("ij,ij->i", emb, contrast[r].astype(np.float32))
        cluster = self.posts["cluster"][p]
        cluster_lift = (cluster_likes[r, cluster] + TOPIC_PRIOR_LIKES * self.cluster_share[cluster]) / (
            likes[r] + TOPIC_PRIOR_LIKES
        )
        out = {
            name: self.users[name][user_idx][r]
            for name in ("gender", "age", "country", "city", "exp_group", "os", "source")
        }
        out.update(
            {
                "hour": hour[r],
                "weekday": weekday[r],
                "topic": topic,
                "text_len": self.posts["text_len"][p],
                "cluster": self.posts["cluster"][p],
                **{f"svd_{k}": emb[:, k] for k in range(emb.shape[1])},
                "post_views": np.log1p(post_views),
                "post_ctr": (post_likes + POST_PRIOR_VIEWS * g) / (post_views + POST_PRIOR_VIEWS),
                "u_views": np.log1p(views)[r],
                "u_likes": np.log1p(likes)[r],
                "u_ctr": ((likes + USER_PRIOR_VIEWS * g) / (views + USER_PRIOR_VIEWS))[r],
                "u_today_views": today_views[r],
                "u_today_ctr": ((today_likes + USER_PRIOR_VIEWS * g) / (today_views + USER_PRIOR_VIEWS))[r],
                "u_topic_lift": share / self.topic_share[topic],
                "u_profile_sim": dot / np.maximum(profile_norm[r], 1e-9),
                "u_profile_dot": dot / np.maximum(likes[r], 1),
                "u_profile_contrast": contrast_cos,
                "u_cluster_likes": cluster_likes[r, cluster],
                "u_cluster_lift": cluster_lift / self.cluster_share[cluster],
            }
        )
        return {name: np.asarray(out[name], dtype=np.float32) for name in FEATURE_NAMES}


def feature_matrix(features: dict[str, np.ndarray], names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Stack the named columns into a C-contiguous float32 matrix, in ``names`` order."""
    return np.column_stack([features[n] for n in names]).astype(np.float32, copy=False)


def _index(sorted_ids: np.ndarray, ids) -> np.ndarray:
    ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
    idx = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[idx] == ids, idx, -1)
