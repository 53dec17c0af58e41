"""Candidate generation: exclusion, topic and mood, point in time, recall, the index backends."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from gateway.features.retrieval import (
    FACTOR_WEIGHT,
    META,
    RETRIEVAL_DIR,
    SHARES,
    TABLES,
    ExactIndex,
    build_index,
    build_retrieval,
    candidate_recall,
    counts_before_cutoff,
    like_rate_before,
)

DAY = 86400


def _requests(store, n: int = 12):
    """Users with likes, at a time in the last week of the feed."""
    seconds = store.manifest["day0"] + (store.manifest["days"] - 3) * DAY + 19 * 3600
    likes = store.history(np.arange(len(store.user_ids)), np.full(len(store.user_ids), seconds))["likes"]
    users = np.flatnonzero(likes >= 5)[:n]
    assert len(users) == n
    return users, seconds


def test_candidates_exclude_liked_before_and_honour_topic_and_mood(tiny_store):
    retrieval = tiny_store.retrieval
    topic_codes = tiny_store.posts["topic"]
    users, seconds = _requests(tiny_store)
    for user in users:
        liked = tiny_store.liked_before(int(user), seconds)
        assert len(liked) >= 5
        free = retrieval.candidates(tiny_store, int(user), seconds, 60, excluded=liked)
        assert len(free.posts) >= 30 and not np.isin(free.posts, liked).any()
        assert len(np.unique(topic_codes[free.posts])) > 1
        assert set(free.sources) == {"taste", "clusters", "factors", "popular"}
        # without the exclusion the user's liked posts can come back: the exclusion did the work
        unfiltered = retrieval.candidates(tiny_store, int(user), seconds, 60)
        assert np.isin(unfiltered.posts, liked).any() or len(unfiltered.posts) == len(free.posts)
        for topic in range(len(tiny_store.topic_share)):
            in_topic = retrieval.candidates(tiny_store, int(user), seconds, 60, topic=topic, excluded=liked)
            assert len(in_topic.posts) and (topic_codes[in_topic.posts] == topic).all()
            assert not np.isin(in_topic.posts, liked).any()
    # a mood pulls in the posts most similar to it (here: one post, in its topic)
    user = int(users[0])
    liked = tiny_store.liked_before(user, seconds)
    plain = retrieval.candidates(tiny_store, user, seconds, 20, excluded=liked).posts
    target = next(p for p in range(len(topic_codes)) if p not in plain and p not in liked)
    mood = np.zeros(len(topic_codes))
    mood[target] = 1.0
    moody = retrieval.candidates(tiny_store, user, seconds, 20, mood=mood, excluded=liked)
    assert target in moody.posts and "mood" in moody.sources
    topic = int(topic_codes[target])
    moody_topic = retrieval.candidates(tiny_store, user, seconds, 20, topic=topic, mood=mood, excluded=liked)
    assert target in moody_topic.posts and (topic_codes[moody_topic.posts] == topic).all()
    # the mood's best post is still excluded when the user liked it before
    mood_liked = np.zeros(len(topic_codes))
    mood_liked[liked[0]] = 1.0
    assert (
        liked[0]
        not in retrieval.candidates(tiny_store, user, seconds, 20, mood=mood_liked, excluded=liked).posts
    )


def test_unknown_user_gets_popular_and_mood_candidates(tiny_store):
    seconds = tiny_store.manifest["day0"] + 60 * DAY
    got = tiny_store.retrieval.candidates(tiny_store, -1, seconds, 40, topic=0)
    assert set(got.sources) == {"popular"} and (tiny_store.posts["topic"][got.posts] == 0).all()
    assert len(got.posts) == min(40, int((tiny_store.posts["topic"] == 0).sum()))
    n_topics = len(tiny_store.topic_share)  # an even share per topic, rounded up
    assert 40 <= len(tiny_store.retrieval.candidates(tiny_store, -1, seconds, 40).posts) < 40 + n_topics


def test_an_index_built_at_a_date_contains_nothing_from_after_it(tiny_store, tmp_path):
    events, topic, cluster = tiny_store.events, tiny_store.posts["topic"], tiny_store.posts["cluster"]
    day0 = tiny_store.manifest["day0"]
    cutoff = day0 + 40 * DAY

    def build(folder: str, log: dict) -> dict:
        return build_retrieval(
            tmp_path / folder,
            events=log,
            topic=topic,
            cluster=cluster,
            vectors=tiny_store.post_emb,
            day0=day0,
            cutoff=cutoff,
            backend="exact",
            taste_cluster=tiny_store.posts["taste_cluster"],
        )

    meta = build("a", events)
    assert meta["cutoff_seconds"] == cutoff and meta["popular_days"] == 41
    assert json.loads((tmp_path / "a" / RETRIEVAL_DIR / META).read_text()) == meta
    # everything after the cutoff rewritten: the least-liked post gets every later like
    after = events["seconds"] >= cutoff
    assert after.sum() > 1000
    changed = {k: v.copy() for k, v in events.items()}
    before_counts = np.bincount(events["post"][events["like"] & ~after], minlength=len(topic))
    changed["post"][after] = int(np.argmin(before_counts))
    changed["like"][after] = True
    build("b", changed)
    a, b = (np.load(tmp_path / d / RETRIEVAL_DIR / TABLES) for d in ("a", "b"))
    for table in ("everything", "topic", "cluster", "taste_cluster", "taste_cluster_logit"):
        assert np.array_equal(a[table], b[table])
    # and the counts behind them are exactly the likes before each day (and before the cutoff)
    liked = events["like"].astype(bool)
    likes = counts_before_cutoff(events["post"], events["seconds"], liked, len(topic), day0, cutoff)
    day = 20
    expected = np.bincount(
        events["post"][liked & (events["seconds"] < day0 + day * DAY)], minlength=len(topic)
    )
    assert np.array_equal(likes[day], expected)
    assert np.array_equal(likes[-1], before_counts)
    # each day's lists are ordered by the smoothed like rate before that day
    rate = like_rate_before(events, len(topic), day0, cutoff)[day]
    best = a["everything"][day]
    assert (np.diff(rate[best[best >= 0]]) <= 0).all() and rate[best[0]] == rate.max()
    movie = a["topic"][day, 0]
    assert (topic[movie[movie >= 0]] == 0).all()


def test_candidate_recall_on_a_hand_built_case():
    full_top = np.array([[1, 2, 3, 4, 5], [6, 7, -1, -1, -1], [-1, -1, -1, -1, -1], [8, 9, 10, 11, 12]])
    candidates = [np.array([1, 2, 3, 40]), np.array([6, 7]), np.array([1]), np.array([0])]
    recall = candidate_recall(full_top, candidates)
    assert recall[0] == pytest.approx(0.6) and recall[1] == 1.0 and np.isnan(recall[2]) and recall[3] == 0.0


@pytest.mark.parametrize("backend", ["hnswlib", "faiss"])
def test_ann_backends_find_the_exact_neighbours_and_survive_a_save(backend, tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(0, 2000, 2)  # a topic's posts: only those may come back
    exact = ExactIndex(ids, vectors[ids])
    index = build_index(backend, ids, vectors)
    index.save(tmp_path / "i")
    from gateway.features.retrieval import load_index

    loaded = load_index(backend, tmp_path / "i", ids, vectors)
    overlap = []
    for q in rng.normal(size=(20, 16)).astype(np.float32):
        want = exact.search(q, 50)[0]
        got, scores = loaded.search(q, 50)
        assert np.isin(got, ids).all() and (np.diff(scores) <= 1e-6).all()
        overlap.append(np.isin(want, got).mean())
    assert np.mean(overlap) >= 0.95


def _factor_requests(store):
    users, seconds = _requests(store)
    return [(int(u), seconds) for u in users]


def test_factors_source_takes_the_best_like_odds_plus_the_users_cluster_score(tiny_store):
    """Known answer, computed over the whole catalogue: each post's smoothed like log-odds
    before the day plus (weighted) the user's factor score of its taste cluster (the
    ``u_taste_score`` feature), the top k; within a topic, that topic's posts only; the liked posts excluded."""
    retrieval, topic_codes = tiny_store.retrieval, tiny_store.posts["topic"]
    day0, days = tiny_store.manifest["day0"], tiny_store.manifest["days"]
    rate = like_rate_before(tiny_store.events, len(topic_codes), day0, day0 + days * DAY)
    k = 15
    for user, seconds in _factor_requests(tiny_store):
        day = (seconds - day0) // DAY
        terms = tiny_store.taste_terms(np.array([user]), np.array([seconds]))
        features = tiny_store.compute(np.array([user]), np.array([seconds]))
        score = terms.score[0][tiny_store.posts["taste_cluster"]]
        assert np.array_equal(score, features["u_taste_score"])  # the feature's own score
        value = np.log(rate[day]) - np.log1p(-rate[day]) + FACTOR_WEIGHT * score
        for topic in (None, *range(len(tiny_store.topic_share))):
            got = retrieval._by_factors(terms.score[0], day, k, topic)
            pool = np.arange(len(value)) if topic is None else np.flatnonzero(topic_codes == topic)
            want = pool[np.lexsort((pool, -value[pool]))][: min(k, len(pool))]
            assert np.allclose(np.sort(value[got]), np.sort(value[want]), atol=1e-5)
            assert len(got) == len(want) and (topic is None or (topic_codes[got] == topic).all())
        liked = tiny_store.liked_before(user, seconds)
        found = retrieval.candidates(tiny_store, user, seconds, 60, excluded=liked)
        assert found.sources["factors"] == round(60 * SHARES["factors"]) and not np.isin(found.posts, liked).any()
        assert np.array_equal(found.taste.score, terms.score)  # read once, handed to the features


def test_the_taste_terms_retrieval_read_give_the_features_bit_for_bit(tiny_store):
    user, seconds = _factor_requests(tiny_store)[0]
    found = tiny_store.retrieval.candidates(tiny_store, user, seconds, 60)
    users, times = np.array([user]), np.array([seconds])
    pairs = np.zeros(len(found.posts), np.int64)
    reused = tiny_store.compute(users, times, pairs, found.posts, found.history, found.taste)
    fresh = tiny_store.compute(users, times, pairs, found.posts)
    assert all(np.array_equal(reused[name], fresh[name]) for name in fresh)


def test_a_build_without_factor_tables_gives_the_factors_share_to_popular(tiny_store):
    """An older feature-store version (no per-taste-cluster tables): the same number of
    candidates, the factors' share taken by the popular source."""
    old = dataclasses.replace(tiny_store.retrieval, popular_taste=None, popular_taste_logit=None)
    user, seconds = _factor_requests(tiny_store)[0]
    new = tiny_store.retrieval.candidates(tiny_store, user, seconds, 40)
    got = old.candidates(tiny_store, user, seconds, 40)
    assert "factors" in new.sources and "factors" not in got.sources
    assert got.sources["popular"] == new.sources["popular"] + new.sources["factors"]
