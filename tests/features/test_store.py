"""Feature store: point-in-time correctness and one definition for training, evaluation, serving."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gateway.features.artifacts import FeatureStoreError, current_store_dir
from gateway.features.dataset import features_for_views, logged_views
from gateway.features.definitions import FEATURE_NAMES
from gateway.features.store import FeatureStore
from gateway.features.taste import TasteModel


def _rebuild(store_dir, events: dict) -> FeatureStore:
    manifest = json.loads((store_dir / "manifest.json").read_text())
    daily = dict(np.load(store_dir / "post_daily.npz"))
    return FeatureStore.from_arrays(
        manifest,
        pd.read_parquet(store_dir / "users.parquet"),
        pd.read_parquet(store_dir / "posts.parquet"),
        events,
        daily,
        TasteModel.from_arrays(np.load(store_dir / "taste.npz")),
    )


def _with_like(events: dict, user: int, post: int, second: int) -> dict:
    out = {k: v.copy() for k, v in events.items()}
    for key, value in (("user", user), ("post", post), ("seconds", second), ("like", True), ("target", 0)):
        out[key] = np.append(out[key], np.asarray(value, dtype=out[key].dtype))
    return out


def _request(store: FeatureStore):
    views = logged_views(store, (0, 2**40), 1, seed=3)
    return int(views["user"][0]), int(views["seconds"][0])


def test_a_like_after_t_changes_nothing_at_t(tiny_store, tiny_store_dir):
    user, t = _request(tiny_store)
    before = tiny_store.compute([user], [t])
    liked_now = set(tiny_store.liked_before(user, t).tolist())
    post = next(p for p in range(len(tiny_store.post_ids)) if p not in liked_now)
    later = _rebuild(tiny_store_dir, _with_like(tiny_store.events, user, post, t + 1))
    at_t = later.compute([user], [t])
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(before[name], at_t[name], err_msg=name)
    assert post not in set(later.liked_before(user, t).tolist())
    # The same like one second before t is seen: history and exclusion change.
    earlier = _rebuild(tiny_store_dir, _with_like(tiny_store.events, user, post, t - 1))
    seen = earlier.compute([user], [t])
    assert seen["u_likes"][0] > before["u_likes"][0]
    assert post in set(earlier.liked_before(user, t).tolist())


def test_events_exactly_at_t_are_not_history(tiny_store, tiny_store_dir):
    user, t = _request(tiny_store)
    base = tiny_store.compute([user], [t])
    same_second = _rebuild(tiny_store_dir, _with_like(tiny_store.events, user, 0, t))
    np.testing.assert_array_equal(base["u_likes"], same_second.compute([user], [t])["u_likes"])


def test_daily_post_snapshots_only_count_earlier_days(tiny_store):
    ev = tiny_store.events
    day = (ev["seconds"] - tiny_store.manifest["day0"]) // 86400
    for d in (0, 10, 45, tiny_store.manifest["days"]):
        mask = ev["like"] & (day < d)
        expected = np.bincount(ev["post"][mask], minlength=len(tiny_store.post_ids))
        np.testing.assert_array_equal(tiny_store.post_likes_before[d], expected)


def test_taste_cluster_snapshots_and_post_lift_use_earlier_days_only(tiny_store):
    """post_lift reads the daily snapshots of the post and of its taste cluster: the events of
    the days before the request's day, never the request's day itself."""
    ev = tiny_store.events
    day = (ev["seconds"] - tiny_store.manifest["day0"]) // 86400
    cluster = tiny_store.posts["taste_cluster"]
    n = len(tiny_store.taste.bias)
    for d in (0, 10, tiny_store.manifest["days"]):
        for snapshot, like in ((tiny_store.taste_likes_before, True), (tiny_store.taste_views_before, False)):
            mask = (ev["like"] == like) & (day < d)
            np.testing.assert_array_equal(snapshot[d], np.bincount(cluster[ev["post"][mask]], minlength=n))
    user, t = _request(tiny_store)
    d = int(tiny_store._day(np.array([t]))[0])
    lift = tiny_store.compute([user], [t])["post_lift"]
    rate = (tiny_store.taste_likes_before[d, cluster] + 1.0) / (tiny_store.taste_views_before[d, cluster] + 2.0)
    shrunk = (tiny_store.post_likes_before[d] + 100.0 * rate) / (tiny_store.post_views_before[d] + 100.0)
    expected = np.log(shrunk / (1 - shrunk)) - np.log(rate / (1 - rate))
    np.testing.assert_allclose(lift, expected, rtol=1e-5, atol=1e-6)


def test_users_without_history_get_their_demographic_prior(tiny_store):
    """A user's taste before any event is the prior mean of the user's age and gender: two users
    of different demographics differ, and the score is the prior's topic offset + factor."""
    users = np.arange(len(tiny_store.user_ids))
    t = np.full(len(users), tiny_store.manifest["day0"] + 3600)  # the feed's first hour: no history
    _, _, theta, sd = tiny_store.taste_before_day(users, t)
    prior = tiny_store.taste.prior_mean(tiny_store.taste_covariates)
    np.testing.assert_allclose(theta, np.round(prior, 6), atol=2e-6)
    scores = theta[:, 1:] @ tiny_store.taste.design[:, 1:].T
    assert np.ptp(scores, axis=0).max() > 0.01  # demographics move the prior's taste
    assert np.all(sd > 0)


def test_training_evaluation_and_serving_build_identical_rows(tiny_store):
    views = logged_views(tiny_store, (0, 2**40), 40, seed=5)
    training = features_for_views(tiny_store, views)
    evaluation = tiny_store.compute(views["user"], views["seconds"])  # requests x catalogue
    n_posts = len(tiny_store.post_ids)
    for i in range(len(views["user"])):
        serving = tiny_store.compute([views["user"][i]], [views["seconds"][i]])
        for name in FEATURE_NAMES:
            a = training[name][i]
            b = serving[name][views["post"][i]]
            c = evaluation[name][i * n_posts + views["post"][i]]
            assert a == b == c, (name, i, a, b, c)
            # the serving fast path (one request x catalogue) equals the batch on every post
            assert serving[name].dtype == np.float32
            np.testing.assert_array_equal(serving[name], evaluation[name][i * n_posts : (i + 1) * n_posts])


def test_missing_store_says_what_to_run(tmp_path):
    with pytest.raises(FeatureStoreError, match="recsys features build"):
        current_store_dir(tmp_path)


def test_unknown_ids_map_to_minus_one(tiny_store):
    assert tiny_store.user_index([10**9])[0] == -1
    assert tiny_store.post_index([tiny_store.post_ids[3]])[0] == 3


def test_appended_events_are_seen_only_after_their_time(tiny_store_dir):
    store = FeatureStore.load(tiny_store_dir)  # a private copy: appends must not leak into other tests
    user, t = _request(store)
    before = store.compute([user], [t])
    liked = set(store.liked_before(user, t).tolist())
    post = next(p for p in range(len(store.post_ids)) if p not in liked)
    store.append_events(
        np.array([user, user]), np.array([post, post]), np.array([t - 60, t - 30]), np.array([False, True])
    )
    after = store.compute([user], [t])
    assert after["u_likes"][0] > before["u_likes"][0] and after["u_views"][0] > before["u_views"][0]
    assert post in set(store.liked_before(user, t).tolist())
    earlier = store.compute([user], [t - 31])  # the like at t - 30 is not visible before it happened
    np.testing.assert_array_equal(earlier["u_likes"], store.compute([user], [t - 31])["u_likes"])
    assert post not in set(store.liked_before(user, t - 30).tolist())
    # The same appended like, materialised offline, gives the same features (one definition).
    offline = _rebuild(
        tiny_store_dir, _with_like(_with_view(store.events, user, post, t - 60), user, post, t - 30)
    )
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(offline.compute([user], [t])[name], after[name], rtol=1e-6, err_msg=name)


def _with_view(events: dict, user: int, post: int, second: int) -> dict:
    out = _with_like(events, user, post, second)
    out["like"][-1] = False
    return out


def test_mood_encoder_matches_scikit_learn(tiny_store_dir):
    from gateway.features.text import TermProjection, TextSpace

    data = np.load(tiny_store_dir / "text_space.npz")
    space = TextSpace(data["vocabulary"].tolist(), data["idf"], data["components"], data["centers"])
    encoder = TermProjection.load(tiny_store_dir / "text_space.npz")
    texts = [
        "A scary horror film with zombies, zombies!",
        "football goal penalty",
        "xyzzy plugh",
        "The the THE",
    ]
    expected = space.embed(texts)
    for text, row in zip(texts, expected, strict=True):
        np.testing.assert_allclose(encoder.embed(text), row, atol=1e-6)


TASTE_FEATURES = ("u_taste_score", "u_taste_norm", "u_taste_views", "u_taste_rate", "u_taste_sd")


def test_taste_features_see_only_the_days_before_the_request(tiny_store, tiny_store_dir):
    """The taste factor is folded in from events before the request's day: a view and a like at
    the day's start, just before t, at t or after change nothing; a day earlier they count."""
    user, t = _request(tiny_store)
    day_start = t - t % 86400
    before = tiny_store.compute([user], [t])
    liked_now = set(tiny_store.liked_before(user, t).tolist())
    post = next(p for p in range(len(tiny_store.post_ids)) if p not in liked_now)

    def with_view_and_like(second: int) -> FeatureStore:
        return _rebuild(tiny_store_dir, _with_like(_with_view(tiny_store.events, user, post, second), user, post, second + 1))

    for second in (day_start, t - 2, t, t + 3600):
        later = with_view_and_like(second).compute([user], [t])
        for name in TASTE_FEATURES:
            np.testing.assert_array_equal(before[name], later[name], err_msg=f"{name} at {second - t:+d} s")
    seen = with_view_and_like(day_start - 3600).compute([user], [t])
    cluster = tiny_store.posts["taste_cluster"][post]
    assert seen["u_taste_views"][post] > before["u_taste_views"][post]
    assert seen["u_taste_score"][post] > before["u_taste_score"][post]  # a like in the cluster raises it
    same_cluster = tiny_store.posts["taste_cluster"] == cluster
    assert np.all(seen["u_taste_score"][same_cluster] == seen["u_taste_score"][post])


def test_the_served_taste_is_kept_per_user_day_until_an_earlier_event_arrives(tiny_store_dir):
    """One request's fold-in is kept for the user's next requests that day; an event appended
    online before that day makes it stale (the next request folds in again and sees it), an
    event of the day itself does not (it counts from the next day on)."""
    store = FeatureStore.load(tiny_store_dir)
    user, t = _request(store)
    day_start = t - t % 86400
    post = next(p for p in range(len(store.post_ids)) if p not in set(store.liked_before(user, t).tolist()))
    cluster = store.posts["taste_cluster"] == store.posts["taste_cluster"][post]
    first = store.compute([user], [t])
    store.compute([user], [day_start + (t - day_start) // 2])  # earlier the same day
    assert len(store._taste_cache) == 1  # the second request of that day reused the first's fold-in
    store.append_events(np.array([user]), np.array([post]), np.array([day_start + 10]), np.array([True]))
    same_day = store.compute([user], [t])
    for name in TASTE_FEATURES:
        np.testing.assert_array_equal(first[name], same_day[name], err_msg=name)
    store.append_events(
        np.array([user, user]), np.array([post, post]), np.array([day_start - 60] * 2), np.array([False, True])
    )
    later = store.compute([user], [t])
    assert np.all(later["u_taste_views"][cluster] > first["u_taste_views"][cluster])
    assert later["u_taste_score"][post] > first["u_taste_score"][post]
    fresh = FeatureStore.load(tiny_store_dir)
    fresh.append_events(
        np.array([user, user, user]),
        np.array([post, post, post]),
        np.array([day_start + 10, day_start - 60, day_start - 60]),
        np.array([True, False, True]),
    )
    for name in TASTE_FEATURES:
        np.testing.assert_array_equal(fresh.compute([user], [t])[name], later[name], err_msg=name)


def test_one_request_history_and_taste_counts_equal_the_batch_lookups(tiny_store):
    """Serving's one-request lookups (Python bisection over the user's own keys) give the
    batch's values, also at the exact time of an event, before the log and for users without
    events."""
    rng = np.random.default_rng(11)
    events = tiny_store.events
    at_events = rng.choice(len(events["seconds"]), 60)
    users = np.r_[events["user"][at_events], rng.integers(0, len(tiny_store.user_ids), 60)].astype(np.int64)
    seconds = np.r_[events["seconds"][at_events], rng.integers(0, 2**31, 60)].astype(np.int64)
    seconds[:3] = 0
    n_topics, n_clusters, n_taste = len(tiny_store.topic_share), len(tiny_store.cluster_share), len(tiny_store.taste.bias)
    batch = tiny_store.base.history(users, seconds, n_topics, n_clusters)
    taste_batch = tiny_store.base.taste_counts(users, seconds, n_taste)
    for i in range(len(users)):
        one = tiny_store.base.history(users[i : i + 1], seconds[i : i + 1], n_topics, n_clusters)
        assert one.keys() == batch.keys()
        for name in batch:
            assert one[name].dtype == batch[name].dtype, name
            np.testing.assert_array_equal(one[name][0], batch[name][i], err_msg=name)
        taste_one = tiny_store.base.taste_counts(users[i : i + 1], seconds[i : i + 1], n_taste)
        for a, b in zip(taste_one, taste_batch, strict=True):
            np.testing.assert_array_equal(a[0], b[i])
