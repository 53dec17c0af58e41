"""The feature store: the artifacts in memory as numpy arrays, and the one feature function
that training, evaluation and serving all call.

Events are kept as sorted int64 keys ``(entity << 32) | seconds``, so "events of user u
strictly before t" is a binary search, vectorised over any number of requests. Two event
indices are summed: the materialised ``base`` and a small ``recent`` one that grows as the
gateway receives new events (``append_events``), so a like is visible to later requests.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError
from gateway.features.definitions import (
    FEATURE_NAMES,
    POST_CLUSTER_PRIOR_VIEWS,
    POST_PRIOR_VIEWS,
    TASTE_PRIOR_VIEWS,
    TOPIC_PRIOR_LIKES,
    USER_FEATURES,
    USER_PRIOR_VIEWS,
)
from gateway.features.retrieval import RETRIEVAL_DIR, Retriever
from gateway.features.taste import TasteModel, demographic_covariates, fold_in, fold_in_one
from gateway.ranking import log_odds

TASTE_CACHE_ENTRIES = 100_000  # (user, day) fold-ins kept for serving; cleared when full
_T0 = int(pd.Timestamp("2020-01-01").timestamp())  # keys hold seconds since 2020 in 32 bits
_SHIFT = np.int64(32)
_MAX_REL = np.int64((1 << 32) - 1)


def _rel(seconds: np.ndarray) -> np.ndarray:
    # minimum/maximum: the same integers as np.clip, at a fraction of its cost on small arrays
    return np.minimum(np.maximum(np.asarray(seconds, dtype=np.int64) - _T0, 0), _MAX_REL)


def _keys(entity: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(entity, dtype=np.int64) << _SHIFT) | _rel(seconds)


def _key(entity: int, seconds: int) -> int:
    """``_keys`` of one event, in Python integers: a lookup for one request pays no numpy call."""
    return (int(entity) << int(_SHIFT)) | min(max(int(seconds) - _T0, 0), int(_MAX_REL))


def _count_between(keys: np.ndarray, entity: np.ndarray, since: np.ndarray, until: np.ndarray) -> np.ndarray:
    """Number of events of ``entity`` with since <= time < until."""
    return np.searchsorted(keys, _keys(entity, until)) - np.searchsorted(keys, _keys(entity, since))


def _group_counts(keys: np.ndarray, user: int, n_groups: int, seconds: int) -> np.ndarray:
    """(groups,) events of one user per group strictly before ``seconds``, from keys of
    ``(user * n_groups + group) << 32 | t``: the user's groups are one contiguous run of keys."""
    lo = bisect_left(keys, _key(user * n_groups, 0))
    hi = bisect_left(keys, _key(user * n_groups + n_groups, 0))
    own = keys[lo:hi]
    before = own[(own & _MAX_REL) < _key(0, seconds)]
    return np.bincount((before >> _SHIFT) - user * n_groups, minlength=n_groups)


@dataclass(frozen=True)
class EventIndex:
    """Views and likes of users, indexed for point-in-time lookups."""

    view_keys: np.ndarray
    like_keys: np.ndarray
    like_post: np.ndarray  # post index of each like, aligned with like_keys
    like_emb_cum: np.ndarray  # per-user inclusive running sum of liked embeddings
    topic_like_keys: np.ndarray  # ((user * topics + topic) << 32) | t
    cluster_like_keys: np.ndarray
    taste_view_keys: np.ndarray  # ((user * taste clusters + taste cluster) << 32) | t, views
    taste_like_keys: np.ndarray  # the same for likes

    @classmethod
    def build(
        cls,
        user,
        post,
        seconds,
        like,
        emb: np.ndarray,
        topic: np.ndarray,
        cluster: np.ndarray,
        taste_cluster: np.ndarray,
        n_taste: int,
    ) -> EventIndex:
        user, post, seconds, like = (np.asarray(a) for a in (user, post, seconds, like))
        like = like.astype(bool)
        n_topics, n_clusters = int(topic.max()) + 1, int(cluster.max()) + 1
        unsorted = _keys(user[like], seconds[like])
        order = np.argsort(unsorted, kind="stable")
        like_post = post[like][order].astype(np.int64)
        like_user = user[like][order].astype(np.int64)
        like_seconds = seconds[like][order]
        # Running sum of liked embeddings, restarted at each user's first like.
        cum = np.cumsum(emb[like_post].astype(np.float64), axis=0)
        starts = (
            np.flatnonzero(np.r_[True, like_user[1:] != like_user[:-1]])
            if len(like_user)
            else np.array([], int)
        )
        if len(starts):
            base = np.vstack([np.zeros((1, emb.shape[1])), cum[starts[1:] - 1]])
            cum = cum - np.repeat(base, np.diff(np.r_[starts, len(like_user)]), axis=0)
        return cls(
            view_keys=np.sort(_keys(user[~like], seconds[~like])),
            like_keys=unsorted[order],
            like_post=like_post,
            like_emb_cum=cum.astype(np.float32).reshape(-1, emb.shape[1]),
            topic_like_keys=np.sort(_keys(like_user * n_topics + topic[like_post], like_seconds)),
            cluster_like_keys=np.sort(_keys(like_user * n_clusters + cluster[like_post], like_seconds)),
            taste_view_keys=np.sort(
                _keys(user[~like].astype(np.int64) * n_taste + taste_cluster[post[~like]], seconds[~like])
            ),
            taste_like_keys=np.sort(_keys(like_user * n_taste + taste_cluster[like_post], like_seconds)),
        )

    def history(
        self, user_idx: np.ndarray, seconds: np.ndarray, n_topics: int, n_clusters: int
    ) -> dict[str, np.ndarray]:
        """Counts and sums over each request's events strictly before its time."""
        if len(user_idx) == 1:
            return self._history_one(int(user_idx[0]), int(seconds[0]), n_topics, n_clusters)
        zero = np.zeros_like(seconds)
        day_start = seconds - (seconds % 86400)
        likes_pos = np.searchsorted(self.like_keys, _keys(user_idx, seconds))
        likes = likes_pos - np.searchsorted(self.like_keys, _keys(user_idx, zero))
        last = np.maximum(likes_pos - 1, 0)
        profile = np.zeros((len(user_idx), self.like_emb_cum.shape[1]), np.float32)
        if len(self.like_emb_cum):
            profile = np.where((likes > 0)[:, None], self.like_emb_cum[last], 0.0).astype(np.float32)

        def per_group(keys: np.ndarray, n: int) -> np.ndarray:
            entity = (user_idx[:, None] * n + np.arange(n)).ravel()
            return _count_between(keys, entity, np.repeat(zero, n), np.repeat(seconds, n)).reshape(-1, n)

        return {
            "views": _count_between(self.view_keys, user_idx, zero, seconds),
            "likes": likes,
            "today_views": _count_between(self.view_keys, user_idx, day_start, seconds),
            "today_likes": _count_between(self.like_keys, user_idx, day_start, seconds),
            "profile": profile,
            "topic_likes": per_group(self.topic_like_keys, n_topics),
            "cluster_likes": per_group(self.cluster_like_keys, n_clusters),
        }

    def _history_one(self, user: int, seconds: int, n_topics: int, n_clusters: int) -> dict[str, np.ndarray]:
        """``history`` of one request (a serving request): the same values, found by bisecting
        the sorted keys in Python and counting the user's own slice of the per-group keys."""
        since, until, today = _key(user, 0), _key(user, seconds), _key(user, seconds - seconds % 86400)
        likes_pos = bisect_left(self.like_keys, until)
        likes = likes_pos - bisect_left(self.like_keys, since)
        dims = self.like_emb_cum.shape[1]
        profile = self.like_emb_cum[likes_pos - 1][None] if likes > 0 else np.zeros((1, dims), np.float32)
        views_pos = bisect_left(self.view_keys, until)
        return {
            "views": np.array([views_pos - bisect_left(self.view_keys, since)]),
            "likes": np.array([likes]),
            "today_views": np.array([views_pos - bisect_left(self.view_keys, today)]),
            "today_likes": np.array([likes_pos - bisect_left(self.like_keys, today)]),
            "profile": profile.astype(np.float32),
            "topic_likes": _group_counts(self.topic_like_keys, user, n_topics, seconds)[None],
            "cluster_likes": _group_counts(self.cluster_like_keys, user, n_clusters, seconds)[None],
        }

    def taste_counts(self, user_idx: np.ndarray, until: np.ndarray, n_taste: int) -> tuple[np.ndarray, np.ndarray]:
        """(requests, taste clusters) views and likes of each user strictly before ``until``."""
        if len(user_idx) == 1:
            user, seconds = int(user_idx[0]), int(until[0])
            return tuple(
                _group_counts(keys, user, n_taste, seconds)[None]
                for keys in (self.taste_view_keys, self.taste_like_keys)
            )
        entity = (user_idx[:, None] * n_taste + np.arange(n_taste)).ravel()
        since, until = np.zeros(len(entity), np.int64), np.repeat(until, n_taste)
        return tuple(
            _count_between(keys, entity, since, until).reshape(-1, n_taste)
            for keys in (self.taste_view_keys, self.taste_like_keys)
        )

    def liked_before(self, user_idx: int, seconds: int) -> np.ndarray:
        # bisect, not numpy's searchsorted: that releases the GIL, and the event loop (which
        # answers shed requests with this) then waits for a model thread to hand it back
        lo = bisect_left(self.like_keys, _key(user_idx, 0))
        hi = bisect_left(self.like_keys, _key(user_idx, seconds))
        return self.like_post[lo:hi]


@dataclass(frozen=True)
class TasteTerms:
    """Per request: views and likes per taste cluster before the request's day, the user terms
    folded in from them, each cluster's taste score (the user's topic offset + user factor ·
    cluster factor), its posterior sd, and the predicted like probability (all terms)."""

    views: np.ndarray  # (requests, taste clusters)
    likes: np.ndarray
    theta: np.ndarray  # (requests, terms): user bias, topic offsets, then user factor
    score: np.ndarray  # (requests, taste clusters) float32
    pred: np.ndarray  # (requests, taste clusters)
    sd: np.ndarray  # (requests, taste clusters): posterior sd of the score


@dataclass
class FeatureStore:
    manifest: dict
    user_ids: np.ndarray
    post_ids: np.ndarray
    users: dict[str, np.ndarray]  # static user columns by dense user index
    posts: dict[str, np.ndarray]  # static post columns by dense post index
    post_emb: np.ndarray  # (posts, dims) float32, L2-normalised
    post_views_before: np.ndarray  # (days + 1, posts): views before the start of day d (read with day_counts)
    post_likes_before: np.ndarray
    base: EventIndex  # materialised by the offline build
    topic_share: np.ndarray  # catalogue share of each topic
    cluster_share: np.ndarray  # catalogue share of each text cluster
    events: dict[str, np.ndarray]  # the offline event log (user, post, seconds, like, target)
    taste: TasteModel  # users × taste clusters factors, fitted offline on the training window
    taste_covariates: np.ndarray | None = None  # (users, covariates) of the taste prior's mean
    taste_views_before: np.ndarray | None = None  # (days + 1, taste clusters) views before day d
    taste_likes_before: np.ndarray | None = None
    recent: EventIndex | None = None  # events received online since start
    post_emb_mean: np.ndarray | None = None  # the catalogue's mean embedding (computed once)
    retrieval: Retriever | None = None  # candidate generation (features/retrieval.py), if built
    _recent_log: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {k: [] for k in ("user", "post", "seconds", "like")}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Serving: the folded-in taste of one (user, day), kept while no event before that day
    # arrives online (an entry counts only if computed at the current epoch).
    _taste_cache: dict[tuple[int, int], tuple] = field(default_factory=dict)
    _taste_epoch: int = 0
    _taste_cached_until: int = 0  # the latest day start of a cached entry

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, *, keep_log: bool = True) -> FeatureStore:
        """``keep_log=False`` (serving) drops the raw event log once it is indexed."""
        try:
            manifest = A.read_manifest(path)
            users = pd.read_parquet(path / A.USERS)
            posts = pd.read_parquet(path / A.POSTS)
            events = np.load(path / A.EVENTS)
            daily = A.load_npz_mapped(path / A.POST_DAILY)
            taste = TasteModel.from_arrays(np.load(path / A.TASTE))
            store = cls.from_arrays(manifest, users, posts, dict(events), dict(daily), taste)
            if (path / RETRIEVAL_DIR).exists():
                store.retrieval = Retriever.load(path, store)
            if not keep_log:
                store.events = {}
            return store
        except (OSError, ValueError, KeyError) as exc:
            raise FeatureStoreError(
                f"cannot load feature store {path}: {exc}; run `recsys features build`"
            ) from exc

    @classmethod
    def from_arrays(
        cls,
        manifest: dict,
        users: pd.DataFrame,
        posts: pd.DataFrame,
        events: dict,
        daily: dict,
        taste: TasteModel,
    ) -> FeatureStore:
        # C order: rows of the embedding are read whole (einsum sums them in one fixed order)
        emb = np.ascontiguousarray(
            posts[[c for c in posts.columns if c.startswith("svd_")]].to_numpy(np.float32)
        )
        topic = posts["topic"].to_numpy(np.int64)
        cluster = posts["cluster"].to_numpy(np.int64)
        taste_cluster = posts["taste_cluster"].to_numpy(np.int64)
        n_topics = len(manifest["vocabularies"]["topic"])
        log = {k: np.asarray(events[k]) for k in ("user", "post", "seconds", "like", "target")}
        return cls(
            manifest=manifest,
            user_ids=users["user_id"].to_numpy(np.int64),
            post_ids=posts["post_id"].to_numpy(np.int64),
            users={c: users[c].to_numpy(np.float32) for c in USER_FEATURES},
            posts={
                "topic": topic,
                "cluster": cluster,
                "taste_cluster": taste_cluster,
                "text_len": posts["text_len"].to_numpy(np.float32),
            },
            post_emb=emb,
            post_views_before=np.asarray(daily["views"]),
            post_likes_before=np.asarray(daily["likes"]),
            base=EventIndex.build(
                log["user"], log["post"], log["seconds"], log["like"], emb, topic, cluster, taste_cluster, len(taste.bias)
            ),
            topic_share=np.bincount(topic, minlength=n_topics) / len(topic),
            cluster_share=np.bincount(cluster, minlength=int(cluster.max()) + 1) / len(cluster),
            events=log,
            taste=taste,
            taste_covariates=demographic_covariates(users["age"].to_numpy(), users["gender"].to_numpy()),
            taste_views_before=_taste_daily(daily, "views", taste_cluster, len(taste.bias)),
            taste_likes_before=_taste_daily(daily, "likes", taste_cluster, len(taste.bias)),
            post_emb_mean=emb.mean(axis=0),
        )

    # -- online updates ------------------------------------------------------------------
    def append_events(
        self, user_idx: np.ndarray, post_idx: np.ndarray, seconds: np.ndarray, like: np.ndarray
    ) -> int:
        """Make new views/likes visible to later requests (point in time: only after their time).

        The recent index is rebuilt off to the side and swapped in by one reference
        assignment, so a concurrent ``compute`` sees either the old or the new index.
        """
        with self._lock:
            for key, values in (("user", user_idx), ("post", post_idx), ("seconds", seconds), ("like", like)):
                self._recent_log[key].append(np.asarray(values))
            log = {k: np.concatenate(v) for k, v in self._recent_log.items()}
            self.recent = self.index_events(log["user"], log["post"], log["seconds"], log["like"])
            if len(seconds) and int(np.min(seconds)) < self._taste_cached_until:
                self._taste_epoch += 1  # after the swap: an entry computed before it is stale
            return len(log["user"])

    def index_events(self, user_idx, post_idx, seconds, like) -> EventIndex:
        """An event index over these posts' embeddings and clusters."""
        return EventIndex.build(
            np.asarray(user_idx, dtype=np.int64),
            np.asarray(post_idx, dtype=np.int64),
            np.asarray(seconds),
            np.asarray(like).astype(bool),
            self.post_emb,
            self.posts["topic"],
            self.posts["cluster"],
            self.posts["taste_cluster"],
            len(self.taste.bias),
        )

    # -- ids -----------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.manifest["version"]

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Dense indices; -1 for ids the store has never seen."""
        return _index(self.user_ids, user_ids)

    def user_position(self, user_id: int) -> int:
        """``user_index`` of one id, without numpy's per-call overhead nor a release of the GIL
        (``EventIndex.liked_before`` says why)."""
        ids = self.user_ids
        i = bisect_left(ids, user_id)
        return i if i < len(ids) and ids[i] == user_id else -1

    def post_index(self, post_ids: np.ndarray) -> np.ndarray:
        return _index(self.post_ids, post_ids)

    # -- lookups -------------------------------------------------------------------------
    def liked_before(self, user_idx: int, seconds: int) -> np.ndarray:
        """Dense indices of the posts the user liked strictly before ``seconds``, ascending."""
        return np.array(sorted(self.liked_set(user_idx, seconds)), dtype=np.int64)

    def liked_set(self, user_idx: int, seconds: int) -> set[int]:
        """``liked_before`` as a set of Python integers (no numpy call that releases the GIL)."""
        liked = set(self.base.liked_before(user_idx, seconds).tolist())
        recent = self.recent
        if recent is not None:
            liked.update(recent.liked_before(user_idx, seconds).tolist())
        return liked

    def liked_before_each(self, user_idx: np.ndarray, seconds: np.ndarray) -> list[np.ndarray]:
        """``liked_before`` for each request of a batch."""
        return [self.liked_before(int(u), int(t)) for u, t in zip(user_idx, seconds, strict=True)]

    def activity_between(
        self, user_idx: np.ndarray, since: np.ndarray, until: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's (views, likes) with since <= time < until (offline log and recent events)."""
        user_idx, since, until = (np.asarray(a, dtype=np.int64) for a in (user_idx, since, until))
        views = _count_between(self.base.view_keys, user_idx, since, until)
        likes = _count_between(self.base.like_keys, user_idx, since, until)
        recent = self.recent
        if recent is not None:
            views = views + _count_between(recent.view_keys, user_idx, since, until)
            likes = likes + _count_between(recent.like_keys, user_idx, since, until)
        return views, likes

    def popularity_before(self, seconds: np.ndarray) -> np.ndarray:
        """(requests, posts) like counts before each request's day (point in time)."""
        return day_counts(self.post_likes_before, self._day(seconds))

    def views_before(self, seconds: np.ndarray) -> np.ndarray:
        """(requests, posts) view counts before each request's day (point in time)."""
        return day_counts(self.post_views_before, self._day(seconds))

    def _day(self, seconds: np.ndarray) -> np.ndarray:
        day = (np.asarray(seconds, dtype=np.int64) - self.manifest["day0"]) // 86400
        # minimum/maximum: np.clip's values at a fraction of its cost on a request's few days
        return np.minimum(np.maximum(day, 0), self.post_views_before.shape[0] - 1)

    def taste_terms(self, user_idx: np.ndarray, seconds: np.ndarray) -> TasteTerms:
        """Each request's taste terms (``taste_before_day``) and the scores they give every
        taste cluster: what the taste features and the retrieval's ``factors`` source read
        (computed once per request and shared by both)."""
        views, likes, theta, sd = self.taste_before_day(user_idx, seconds)
        return TasteTerms(
            views,
            likes,
            theta,
            score=_rowwise_dot(theta[:, 1:], self.taste.design[:, 1:]).astype(np.float32),
            pred=1.0 / (1.0 + np.exp(-(self.taste.bias + _rowwise_dot(theta, self.taste.design)))),
            sd=sd,
        )

    def taste_before_day(self, user_idx: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, ...]:
        """Views and likes per taste cluster before the start of each request's day, the user
        terms folded in from them (under the prior of the user's demographics) and the posterior
        sd of the user's taste score in each cluster: computed once per distinct (user, day),
        and for one request kept for the next requests of that user on that day."""
        day_start = seconds - seconds % 86400
        if len(user_idx) == 1:
            # The epoch is read, and the day marked as cached, before ``recent`` is: an event that
            # append_events swaps in later makes this entry stale (see there).
            epoch = self._taste_epoch
            key = (int(user_idx[0]), int(day_start[0]))
            entry = self._taste_cache.get(key)
            if entry is not None and entry[0] == epoch:
                return entry[1]
            self._taste_cached_until = max(self._taste_cached_until, key[1])
            value = self._fold_in_before_day(user_idx, day_start)
            if len(self._taste_cache) >= TASTE_CACHE_ENTRIES:
                self._taste_cache.clear()
            self._taste_cache[key] = (epoch, value)
            return value
        return self._fold_in_before_day(user_idx, day_start)

    def _fold_in_before_day(self, user_idx: np.ndarray, day_start: np.ndarray) -> tuple[np.ndarray, ...]:
        if len(user_idx) == 1:  # a serving request: the one-user fold-in (fewer numpy calls)
            views, likes = self._taste_counts(user_idx, day_start)
            theta, cov = fold_in_one(self.taste, views[0], likes[0], self.taste_covariates[user_idx[0]])
            x = self.taste.design[:, 1:]
            score_var = ((x @ cov[1:, 1:]) * x).sum(axis=1)
            return views, likes, *_rounded_taste(theta[None], score_var[None])
        key = user_idx * (1 << 20) + (day_start - self.manifest["day0"]) // 86400
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        users, until = user_idx[first], day_start[first]
        views, likes = self._taste_counts(users, until)
        theta, cov = fold_in(self.taste, views, likes, self.taste_covariates[users], with_covariance=True)
        x = self.taste.design[:, 1:]
        score_var = np.einsum("ck,nkl,cl->nc", x, cov[:, 1:, 1:], x)
        inverse = inverse.ravel()
        theta, score_sd = _rounded_taste(theta, score_var)
        return views[inverse], likes[inverse], theta[inverse], score_sd[inverse]

    def _taste_counts(self, users: np.ndarray, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_taste = len(self.taste.bias)
        views, likes = self.base.taste_counts(users, until, n_taste)
        recent = self.recent
        if recent is not None:
            extra = recent.taste_counts(users, until, n_taste)
            views, likes = views + extra[0], likes + extra[1]
        return views, likes

    def history(self, user_idx: np.ndarray, seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Each request's history strictly before its time: the materialised and the online events."""
        n_topics, n_clusters = len(self.topic_share), len(self.cluster_share)
        h = self.base.history(user_idx, seconds, n_topics, n_clusters)
        recent = self.recent
        if recent is not None:
            extra = recent.history(user_idx, seconds, n_topics, n_clusters)
            h = {k: h[k] + extra[k] for k in h}
        return h

    def compute(
        self,
        user_idx: np.ndarray,
        seconds: np.ndarray,
        pair_request: np.ndarray | None = None,
        pair_post: np.ndarray | None = None,
        history: dict[str, np.ndarray] | None = None,
        taste: TasteTerms | None = None,
    ) -> dict[str, np.ndarray]:
        """All features for (request, post) pairs; requests are (user index, epoch seconds).

        Without pairs, every request is paired with every post (requests x catalogue, in
        request-major order). History uses only events strictly before each request's time
        (``history``: ``self.history(user_idx, seconds)`` when the caller already has it;
        ``taste``: ``self.taste_terms(user_idx, seconds)`` likewise).
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        seconds = np.asarray(seconds, dtype=np.int64)
        n_posts = len(self.post_ids)
        # One request x the whole catalogue (the serving case): index with a scalar request and
        # a full slice, so per-request values broadcast instead of being gathered once per post.
        # Every value is computed by the same operations, so the features are bit-identical.
        single = pair_request is None and len(user_idx) == 1
        if single:
            pair_request, pair_post = 0, slice(None)
        elif pair_request is None:
            pair_request = np.repeat(np.arange(len(user_idx)), n_posts)
            pair_post = np.tile(np.arange(n_posts), len(user_idx))
        n_rows = n_posts if single else len(pair_request)
        g = self.manifest["global_ctr"]
        h = history if history is not None else self.history(user_idx, seconds)
        views, likes, profile = h["views"], h["likes"], h["profile"]
        profile_norm = np.linalg.norm(profile, axis=1)
        contrast = np.where(
            (likes > 0)[:, None], profile / np.maximum(likes, 1)[:, None] - self.post_emb_mean, 0.0
        )
        contrast /= np.maximum(np.linalg.norm(contrast, axis=1), 1e-9)[:, None]
        terms = taste if taste is not None else self.taste_terms(user_idx, seconds)
        taste_views, taste_likes, taste_theta = terms.views, terms.likes, terms.theta
        taste_score, taste_pred, taste_sd = terms.score, terms.pred, terms.sd  # (requests, clusters)
        rank = self.taste.factors.shape[1]
        taste_rate = ((taste_likes + TASTE_PRIOR_VIEWS * taste_pred) / (taste_views + TASTE_PRIOR_VIEWS)).astype(
            np.float32
        )
        day = self._day(seconds)
        hour = (seconds // 3600) % 24
        weekday = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday

        r, p = pair_request, pair_post
        topic = self.posts["topic"][p]
        cluster = self.posts["cluster"][p]
        taste_cluster = self.posts["taste_cluster"][p]
        cluster_rate = (self.taste_likes_before[day[r], taste_cluster] + 1.0) / (
            self.taste_views_before[day[r], taste_cluster] + 2.0
        )
        emb = self.post_emb[p]
        post_views = day_counts(self.post_views_before, day[r], p)
        post_likes = day_counts(self.post_likes_before, day[r], p)
        topic_share = (h["topic_likes"][r, topic] + TOPIC_PRIOR_LIKES * self.topic_share[topic]) / (
            likes[r] + TOPIC_PRIOR_LIKES
        )
        cluster_share = (h["cluster_likes"][r, cluster] + TOPIC_PRIOR_LIKES * self.cluster_share[cluster]) / (
            likes[r] + TOPIC_PRIOR_LIKES
        )
        # The user's row is broadcast (stride 0 across rows, contiguous within a row), so
        # einsum sums each row in the same order as on the gathered copy: same bits.
        user_profile = np.broadcast_to(profile[r], emb.shape) if single else profile[r]
        dot = np.einsum("ij,ij->i", emb, user_profile)
        out = {name: self.users[name][user_idx][r] for name in USER_FEATURES}
        out.update(
            {
                "hour": hour[r],
                "weekday": weekday[r],
                "topic": topic,
                "text_len": self.posts["text_len"][p],
                "cluster": cluster,
                **{f"svd_{k}": emb[:, k] for k in range(emb.shape[1])},
                "post_views": np.log1p(post_views),
                "post_ctr": (post_likes + POST_PRIOR_VIEWS * g) / (post_views + POST_PRIOR_VIEWS),
                "post_lift": log_odds((post_likes + POST_CLUSTER_PRIOR_VIEWS * cluster_rate) / (post_views + POST_CLUSTER_PRIOR_VIEWS))
                - log_odds(cluster_rate),
                "u_views": np.log1p(views)[r],
                "u_likes": np.log1p(likes)[r],
                "u_ctr": ((likes + USER_PRIOR_VIEWS * g) / (views + USER_PRIOR_VIEWS))[r],
                "u_today_views": h["today_views"][r],
                "u_today_ctr": (
                    (h["today_likes"] + USER_PRIOR_VIEWS * g) / (h["today_views"] + USER_PRIOR_VIEWS)
                )[r],
                "u_topic_lift": topic_share / self.topic_share[topic],
                "u_profile_sim": dot / np.maximum(profile_norm[r], 1e-9),
                "u_profile_dot": dot / np.maximum(likes[r], 1),
                "u_profile_contrast": np.einsum(
                    "ij,ij->i",
                    emb,
                    np.broadcast_to(contrast[r].astype(np.float32), emb.shape)
                    if single
                    else contrast[r].astype(np.float32),
                ),
                "u_cluster_likes": h["cluster_likes"][r, cluster],
                "u_cluster_lift": cluster_share / self.cluster_share[cluster],
                "taste_cluster": taste_cluster,
                "u_taste_score": taste_score[r, taste_cluster],
                "u_taste_norm": np.sqrt(sum(taste_theta[:, -k] ** 2 for k in range(1, rank + 1)))[r],
                "u_taste_sd": taste_sd[r, taste_cluster],
                "u_taste_views": np.log1p(taste_views[r, taste_cluster]),
                "u_taste_rate": taste_rate[r, taste_cluster],
            }
        )
        return {name: _column(out[name], n_rows) for name in FEATURE_NAMES}


def compact_counts(table: np.ndarray) -> np.ndarray:
    """A daily table of counts as the build stores it: in the smallest of uint8, uint16 and
    int32 that holds every count (a worker's requests end up reading every page of it)."""
    low, high = (int(table.min()), int(table.max())) if table.size else (0, 0)
    for dtype in (np.uint8, np.uint16):
        if low >= 0 and high <= np.iinfo(dtype).max:
            return table.astype(dtype)
    return table.astype(np.int32)


def day_counts(table: np.ndarray, day, posts=None) -> np.ndarray:
    """``table[day]`` (or ``table[day, posts]``) as int32 whatever the dtype it is stored in, so
    that arithmetic on the counts is the same for every store (unsigned types would wrap)."""
    return np.asarray(table[day] if posts is None else table[day, posts], dtype=np.int32)


def _rounded_taste(theta: np.ndarray, score_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The user terms and the taste scores' sd, rounded: BLAS may sum a row differently in
    batches of different sizes (and the one-user fold-in differently again), and serving,
    evaluation and training must see the same bits."""
    return np.round(theta, 6), np.round(np.sqrt(np.maximum(score_var, 0.0)), 6)


def sum_columns(daily: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(days, groups) sums of (days, columns) counts over each group's columns (exact: integer
    counts summed in float64, far below 2**53)."""
    out = np.zeros((daily.shape[0], n_groups), np.float64)
    for d in range(daily.shape[0]):
        out[d] = np.bincount(group, weights=daily[d], minlength=n_groups)
    return out


def _taste_daily(daily: dict, name: str, taste_cluster: np.ndarray, n_taste: int) -> np.ndarray:
    """The taste clusters' daily counts: written by the build (``taste_views``/``taste_likes``),
    so a serving process does not read every page of the memory-mapped post table; summed here
    for a store built before they were."""
    key = f"taste_{name}"
    if key in daily:
        return np.array(daily[key], dtype=np.float64)
    summed = sum_columns(np.asarray(daily[name]), taste_cluster, n_taste)
    A.release_pages(daily[name])
    return summed


def _rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(rows, k) · (columns, k)ᵀ summed term by term in a fixed order: the same bits for a row
    whatever the batch (a BLAS product may order its sums by the matrix sizes)."""
    out = np.zeros((a.shape[0], b.shape[0]))
    for k in range(a.shape[1]):
        out += a[:, k, None] * b[None, :, k]
    return out


def _column(values, n_rows: int) -> np.ndarray:
    column = np.asarray(values, dtype=np.float32)
    return np.full(n_rows, column, dtype=np.float32) if column.ndim == 0 else column


def feature_matrix(features: dict[str, np.ndarray], names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Stack the named columns into a C-contiguous float32 matrix, in ``names`` order."""
    return np.column_stack([features[n] for n in names]).astype(np.float32, copy=False)


def feature_columns(features: dict[str, np.ndarray], names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The named columns as a (features, rows) float32 array: one contiguous column each."""
    return np.stack([features[n] for n in names]).astype(np.float32, copy=False)


def _index(sorted_ids: np.ndarray, ids) -> np.ndarray:
    ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
    idx = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[idx] == ids, idx, -1)
