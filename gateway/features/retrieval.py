"""Candidate generation, the first of serving's two stages: a few hundred posts per request,
the same for every arm, which the arm's ranker then scores (``serving/recommend.py``).

Sources, each filtered by the request's topic *before* it is searched, then united,
de-duplicated and stripped of the posts the user liked before the request time:

* ``taste``: nearest neighbours of the user's taste vector among the post vectors, through a
  vector index (``exact`` | ``hnswlib`` | ``faiss``; one index per topic, so the topic filter
  is a choice of indexes, and a request without topic merges the per-topic neighbours by score);
* ``popular``: the most-liked posts before the request's day (highest smoothed like rate, as
  the ``post_ctr`` feature computes it): overall, or the request's topic's;
* ``clusters``: the most-liked posts of the user's favourite text clusters;
* ``factors``: the posts with the best like log-odds for this user by the taste factors
  (``features/taste.py``): each post's smoothed like rate before the day (log-odds) plus the
  user's factor score of its taste cluster (the ``u_taste_score`` feature, from the same
  fold-in, computed once per request); a merge of per-day, per-taste-cluster lists;
* ``mood``: the posts most similar to the request's mood, when one is sent.

The taste space is an interface (``TasteSpace``): today the posts' TF-IDF/SVD text vectors and
the user's liked-text profile; latent factors can replace it without touching the rest.

Point in time: the offline build (``build_retrieval``) sees only events before its cutoff
(the store's end), and each day's popularity lists only the events before that day. The user's taste and cluster likes are read from the store at the request time.
The per-post data are numpy arrays (no Python object per post), so a million posts fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.features.artifacts import FeatureStoreError
from gateway.features.definitions import POST_PRIOR_VIEWS
from gateway.ranking import found_in_sorted, log_odds, sorted_unique

BACKENDS = ("exact", "hnswlib", "faiss")
POPULAR_DEPTH = 1024  # most-liked posts kept per day: overall, per topic, per cluster
FAVOURITE_CLUSTERS = 3
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100
RETRIEVAL_DIR = "retrieval"  # inside a feature-store version
TABLES = "popular.npz"
META = "retrieval.json"
ALL_INDEX = "all.index"  # every post: one search for a request without a topic
# Shares of serving.candidates and the factor score's weight against the post's like log-odds:
# chosen by candidate recall on held-out requests of three world seeds (README "Two-stage serving").
SHARES = {"popular": 0.3, "taste": 0.1, "clusters": 0.1, "factors": 0.5}
FACTOR_WEIGHT = 0.5
MOOD_SHARE = 0.25  # extra, when a mood is sent


class RetrievalError(FeatureStoreError):
    pass


# -- vector indexes ---------------------------------------------------------------------------
class VectorIndex(Protocol):
    """Nearest posts by inner product: ``search`` returns (ids, scores), best first."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: Path) -> None: ...


class ExactIndex:
    """Brute force over a float32 matrix: exact, cost linear in the posts."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.vectors = ids, vectors

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.ids))
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = self.vectors @ query
        part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        order = part[np.lexsort((part, -scores[part]))]
        return self.ids[order], scores[order]

    def save(self, path: Path) -> None:  # the vectors are the store's own: nothing to write
        pass


class HnswIndex:
    """hnswlib's HNSW graph (inner product), searched with ``ef = max(k, 32)`` (a candidate
    source tolerates a few missed neighbours; the search cost grows with ef)."""

    def __init__(self, index) -> None:
        self.index = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, seed: int = 42) -> HnswIndex:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        index.init_index(max(1, len(ids)), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=seed)
        if len(ids):
            index.add_items(vectors, ids)
        return cls(index)

    @classmethod
    def load(cls, path: Path, dims: int) -> HnswIndex:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dims)
        index.load_index(str(path))
        return cls(index)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.get_current_count())
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        self.index.set_ef(max(k, 32))
        labels, distances = self.index.knn_query(query[None, :], k=k, num_threads=1)
        return labels[0].astype(np.int64), (1.0 - distances[0]).astype(np.float32)

    def save(self, path: Path) -> None:
        self.index.save_index(str(path))


class FaissIndex:
    """faiss's HNSW (``IndexHNSWFlat``, inner product) with the posts' ids."""

    def __init__(self, index) -> None:
        self.index = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, seed: int = 42) -> FaissIndex:
        import faiss

        inner = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index = faiss.IndexIDMap(inner)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids.astype(np.int64))
        return cls(index)

    @classmethod
    def load(cls, path: Path, dims: int) -> FaissIndex:
        import faiss

        return cls(faiss.read_index(str(path)))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        k = min(k, self.index.ntotal)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        params = faiss.SearchParametersHNSW(efSearch=max(k, 32))
        scores, labels = self.index.search(query[None, :].astype(np.float32), k, params=params)
        keep = labels[0] >= 0
        return labels[0][keep].astype(np.int64), scores[0][keep]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))


def build_index(backend: str, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    if backend == "exact":
        return ExactIndex(ids, vectors[ids])
    vectors = np.ascontiguousarray(vectors[ids], np.float32)
    if backend == "hnswlib":
        return HnswIndex.build(ids, vectors)
    if backend == "faiss":
        return FaissIndex.build(ids, vectors)
    raise RetrievalError(f"unknown retrieval index {backend!r}: use {' | '.join(BACKENDS)}")


def load_index(backend: str, path: Path, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    if backend == "exact":
        return ExactIndex(ids, vectors[ids])
    if backend == "hnswlib":
        return HnswIndex.load(path, vectors.shape[1])
    if backend == "faiss":
        return FaissIndex.load(path, vectors.shape[1])
    raise RetrievalError(f"unknown retrieval index {backend!r}: use {' | '.join(BACKENDS)}")


# -- the taste space --------------------------------------------------------------------------
class TasteSpace(Protocol):
    """Where users and posts meet for the ``taste`` source: post vectors and, per request, the
    user's vector (None when the user has no history)."""

    name: str

    def post_vectors(self, store) -> np.ndarray: ...

    def user_vector(self, store, history: dict[str, np.ndarray]) -> np.ndarray | None: ...


class TextTaste:
    """The text space: L2-normalised TF-IDF/SVD post vectors; the user's vector is the mean of
    the posts they liked before t minus the catalogue's mean (the profile contrast feature)."""

    name = "text"

    def post_vectors(self, store) -> np.ndarray:
        return store.post_emb

    def user_vector(self, store, history: dict[str, np.ndarray]) -> np.ndarray | None:
        likes = int(history["likes"][0])
        if likes == 0:
            return None
        vector = history["profile"][0] / likes - store.post_emb_mean
        norm = float(np.linalg.norm(vector))
        return (vector / norm).astype(np.float32) if norm > 0 else None


# -- the offline part: popularity tables before each day --------------------------------------
def popular_lists(rate_before: np.ndarray, group: np.ndarray, n_groups: int, depth: int) -> np.ndarray:
    """(days, groups, depth) post indices: per day, each group's most-liked posts before that
    day (highest smoothed like rate first; ties: lower index first), padded with -1."""
    days, n_posts = rate_before.shape
    out = np.full((days, n_groups, depth), -1, dtype=np.int32)
    for d in range(days):
        order = np.lexsort((np.arange(n_posts), -rate_before[d], group))
        sorted_group = group[order]
        starts = np.searchsorted(sorted_group, np.arange(n_groups))
        ends = np.searchsorted(sorted_group, np.arange(n_groups), side="right")
        for g in range(n_groups):
            top = order[starts[g] : min(ends[g], starts[g] + depth)]
            out[d, g, : len(top)] = top
    return out


def counts_before_cutoff(
    post: np.ndarray, seconds: np.ndarray, mask: np.ndarray, n_posts: int, day0: int, cutoff: int
) -> np.ndarray:
    """(days up to the cutoff's + 1, posts) events (``mask``) before the start of each day,
    counting only events strictly before ``cutoff``; row d = before day d."""
    keep = mask & (seconds < cutoff)
    days = max(1, (cutoff - day0 + 86399) // 86400)
    day = (seconds[keep] - day0) // 86400
    daily = np.bincount(day * n_posts + post[keep], minlength=days * n_posts).reshape(days, n_posts)
    return np.vstack([np.zeros((1, n_posts), np.int32), np.cumsum(daily, axis=0).astype(np.int32)])


def like_rate_before(events: dict[str, np.ndarray], n_posts: int, day0: int, cutoff: int) -> np.ndarray:
    """(days, posts) like rate before each day, smoothed toward the rate before the cutoff as
    the ``post_ctr`` feature is (``POST_PRIOR_VIEWS`` pseudo-views): what the rankers lean on most."""
    post = np.asarray(events["post"], np.int64)
    seconds = np.asarray(events["seconds"], np.int64)
    like = np.asarray(events["like"], bool)
    likes = counts_before_cutoff(post, seconds, like, n_posts, day0, cutoff)
    views = counts_before_cutoff(post, seconds, ~like, n_posts, day0, cutoff)
    prior = likes[-1].sum() / max(1, views[-1].sum())
    return ((likes + POST_PRIOR_VIEWS * prior) / (views + POST_PRIOR_VIEWS)).astype(np.float32)


def build_retrieval(
    out: Path,
    *,
    events: dict[str, np.ndarray],
    topic: np.ndarray,
    cluster: np.ndarray,
    vectors: np.ndarray,
    day0: int,
    cutoff: int,
    backend: str,
    taste: str = TextTaste.name,
    taste_cluster: np.ndarray | None = None,
) -> dict:
    """Write the retrieval artifacts of a feature-store version into ``out/retrieval``: the
    popularity tables from the events before ``cutoff`` (each day's from the events before that
    day), one vector index per topic; return the manifest entry."""
    if backend not in BACKENDS:
        raise RetrievalError(f"unknown retrieval index {backend!r}: use {' | '.join(BACKENDS)}")
    folder = out / RETRIEVAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    n_posts = len(topic)
    n_topics, n_clusters = int(topic.max()) + 1, int(cluster.max()) + 1
    rate = like_rate_before(events, n_posts, day0, cutoff)
    np.savez(
        folder / TABLES,
        everything=popular_lists(rate, np.zeros(n_posts, np.int64), 1, POPULAR_DEPTH)[:, 0],
        topic=popular_lists(rate, topic, n_topics, POPULAR_DEPTH),
        cluster=popular_lists(rate, cluster, n_clusters, POPULAR_DEPTH),
        **(taste_tables(rate, taste_cluster) if taste_cluster is not None else {}),
    )
    for t in range(n_topics):
        build_index(backend, np.flatnonzero(topic == t), vectors).save(folder / f"topic-{t}.index")
    build_index(backend, np.arange(n_posts), vectors).save(folder / ALL_INDEX)
    meta = {
        "backend": backend,
        "taste": taste,
        "cutoff": datetime_text(cutoff),
        "cutoff_seconds": int(cutoff),
        "popular_days": int(rate.shape[0]),
        "posts": int(n_posts),
        "dims": int(vectors.shape[1]),
    }
    (folder / META).write_text(json.dumps(meta, indent=1))
    return meta


def taste_tables(rate: np.ndarray, taste_cluster: np.ndarray) -> dict[str, np.ndarray]:
    """Per day and taste cluster, the most-liked posts before the day and their like log-odds
    (-inf pads): the ``factors`` source adds the user's cluster score and merges them."""
    lists = popular_lists(rate, taste_cluster, int(taste_cluster.max()) + 1, POPULAR_DEPTH)
    days = np.arange(len(rate))[:, None, None]
    p = rate[days, np.maximum(lists, 0)].astype(np.float64)
    logit = np.where(lists >= 0, log_odds(p), -np.inf).astype(np.float32)
    return {"taste_cluster": lists, "taste_cluster_logit": logit}


def datetime_text(seconds: int) -> str:
    return str(np.datetime64(int(seconds), "s"))


# -- the online part ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidates:
    """A request's candidate set (sorted post indices) and how many each source found."""

    posts: np.ndarray
    sources: dict[str, int]
    history: dict[str, np.ndarray] | None = None  # the user's history read for it (reused by features)
    taste: object | None = None  # the store's TasteTerms of the request (reused by features)


@dataclass
class Retriever:
    """The loaded retrieval artifacts of one feature-store version (swapped with the store)."""

    meta: dict
    version: str
    indexes: list[VectorIndex]  # one per topic code
    everything: VectorIndex | None  # all posts (older builds: None, the topics' are merged)
    popular_all: np.ndarray  # (days, depth)
    popular_topic: np.ndarray  # (days, topics, depth)
    popular_cluster: np.ndarray  # (days, clusters, depth)
    day0: int
    taste: TasteSpace
    popular_taste: np.ndarray | None = None  # (days, taste clusters, depth); older builds: None
    popular_taste_logit: np.ndarray | None = None  # their like log-odds before the day
    taste_topic: np.ndarray | None = None  # the topic of each taste cluster
    shares: dict[str, float] | None = None  # of serving.candidates per source (None: SHARES)

    @classmethod
    def load(cls, store_dir: Path, store) -> Retriever:
        folder = store_dir / RETRIEVAL_DIR
        try:
            meta = json.loads((folder / META).read_text())
            tables = np.load(folder / TABLES)
            n_topics = tables["topic"].shape[1]
            topic = store.posts["topic"]
            vectors = TextTaste().post_vectors(store)
            indexes = [
                load_index(meta["backend"], folder / f"topic-{t}.index", np.flatnonzero(topic == t), vectors)
                for t in range(n_topics)
            ]
            whole = folder / ALL_INDEX
            everything = (
                load_index(meta["backend"], whole, np.arange(len(topic)), vectors)
                if whole.exists() or meta["backend"] == "exact"
                else None
            )
            factors = "taste_cluster" in tables.files
            taste_topic = None
            if factors:
                taste_topic = np.zeros(tables["taste_cluster"].shape[1], np.int64)
                taste_topic[store.posts["taste_cluster"]] = topic
            return cls(
                meta=meta,
                version=f"{store.version}/{meta['backend']}",
                indexes=indexes,
                everything=everything,
                popular_all=tables["everything"],
                popular_topic=tables["topic"],
                popular_cluster=tables["cluster"],
                day0=int(store.manifest["day0"]),
                taste=TextTaste(),
                popular_taste=tables["taste_cluster"] if factors else None,
                popular_taste_logit=tables["taste_cluster_logit"] if factors else None,
                taste_topic=taste_topic,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise RetrievalError(
                f"cannot load the retrieval index of {store_dir}: {exc}; run `recsys features build`"
            ) from exc

    def _day(self, seconds: int) -> int:
        return min(max(int(seconds - self.day0) // 86400, 0), self.popular_topic.shape[0] - 1)

    def candidates(
        self,
        store,
        user_idx: int,
        seconds: int,
        n: int,
        topic: int | None = None,
        mood: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> Candidates:
        """At most about ``n`` posts (more with a mood) for one request; ``user_idx`` < 0 is a
        user without history (popular and mood sources only). A personal source that has
        nothing for this user (no likes, no taste vector, an older build without the factor
        tables) gives its share to ``popular``."""
        day = self._day(seconds)
        topics = list(range(len(self.indexes))) if topic is None else [topic]
        found: dict[str, np.ndarray] = {}
        known = user_idx >= 0
        history = store.history(np.array([user_idx]), np.array([seconds])) if known else None
        terms = store.taste_terms(np.array([user_idx]), np.array([seconds])) if known else None
        liked = history is not None and int(history["likes"][0]) > 0
        shares = self.shares or SHARES
        popular_n = max(1, round(n * shares.get("popular", 0.0)))
        for name, share in shares.items():
            k = max(1, round(n * share))
            if name == "taste":
                vector = self.taste.user_vector(store, history) if history is not None else None
                if vector is not None:
                    found[name] = self._nearest(vector, topics, k)
            elif name == "clusters" and liked:
                found[name] = self._favourite_clusters(history["cluster_likes"][0], day, k, topic, store)
            elif name == "factors" and terms is not None and self.popular_taste is not None:
                found[name] = self._by_factors(terms.score[0], day, k, topic)
            if name != "popular" and name not in found:
                popular_n += round(n * share)
        found["popular"] = (
            self.popular_all[day, :popular_n] if topic is None else self.popular_topic[day, topic, :popular_n]
        )
        if mood is not None:
            found["mood"] = _top_of(mood, max(1, round(n * MOOD_SHARE)), store.posts["topic"], topic)
        union = sorted_unique(np.concatenate([f.astype(np.int64) for f in found.values()]))
        union = union[union >= 0]
        if excluded is not None and len(excluded):
            union = np.delete(union, found_in_sorted(union, excluded))
        return Candidates(union, {name: int(np.count_nonzero(f >= 0)) for name, f in found.items()}, history, terms)

    def _by_factors(self, score: np.ndarray, day: int, k: int, topic: int | None) -> np.ndarray:
        """The ``k`` posts with the highest like log-odds before the day plus the user's factor
        score of their taste cluster (within the topic): each cluster's list is sorted by the
        log-odds, so its first ``k`` hold every post of it that can make the merged top ``k``."""
        clusters = np.arange(len(score)) if topic is None else np.flatnonzero(self.taste_topic == topic)
        posts = self.popular_taste[day, clusters, :k]
        value = self.popular_taste_logit[day, clusters, :k] + FACTOR_WEIGHT * score[clusters, None]
        posts, value = posts.ravel(), value.ravel()
        keep = np.flatnonzero(posts >= 0)
        if len(keep) > k:  # only the values at or above the k-th best need sorting (ties kept)
            kth = np.partition(-value[keep], k - 1)[k - 1]
            keep = keep[-value[keep] <= kth]
        best = keep[np.lexsort((posts[keep], -value[keep]))[:k]]
        return posts[best]

    def _nearest(self, vector: np.ndarray, topics: list[int], k: int) -> np.ndarray:
        """The ``k`` nearest posts over the topics' indexes (merged by score), or the whole
        catalogue's index when every topic is asked for."""
        if len(topics) == len(self.indexes) and self.everything is not None:
            return self.everything.search(vector, k)[0]
        ids, scores = zip(*(self.indexes[t].search(vector, k) for t in topics), strict=True)
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        if len(ids) <= k:
            return ids
        return ids[np.lexsort((ids, -scores))[:k]]

    def _favourite_clusters(
        self, cluster_likes: np.ndarray, day: int, k: int, topic: int | None, store
    ) -> np.ndarray:
        """Most-liked posts (before the day) of the user's most-liked text clusters, split evenly."""
        liked = np.flatnonzero(cluster_likes > 0)
        favourite = liked[np.lexsort((liked, -cluster_likes[liked]))][:FAVOURITE_CLUSTERS]
        per_cluster = -(-k // max(1, len(favourite)))
        lists = self.popular_cluster[day, favourite]
        if topic is not None:  # filter first, then take the quota
            picks = []
            for row in lists:
                row = row[row >= 0]
                picks.append(row[store.posts["topic"][row] == topic][:per_cluster])
            return np.concatenate(picks) if picks else np.empty(0, np.int64)
        return lists[:, :per_cluster].ravel()


def _top_of(similarity: np.ndarray, k: int, topic_codes: np.ndarray, topic: int | None) -> np.ndarray:
    """The ``k`` posts most similar to the mood (within the topic)."""
    if topic is not None:
        pool = np.flatnonzero(topic_codes == topic)
        values = similarity[pool]
    else:
        pool, values = None, similarity
    k = min(k, len(values))
    if k <= 0:
        return np.empty(0, np.int64)
    part = np.argpartition(-values, k - 1)[:k]
    return part if pool is None else pool[part]


def candidate_recall(full_top: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Per request, the share of its whole-catalogue top list (-1 = empty slot) that its
    candidate set contains; NaN for a request whose top list is empty."""
    out = np.full(len(candidates), np.nan)
    for row, cand in enumerate(candidates):
        top = full_top[row][full_top[row] >= 0]
        if len(top):
            out[row] = float(np.isin(top, cand).mean())
    return out
