"""The logged feed: sessions of randomly exposed posts, views and likes drawn from the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from gateway.world import params as P
from gateway.world.truth import Truth

_START = int(pd.Timestamp(P.FEED_START).timestamp())
_ACTIVITY = np.asarray(P.HOURLY_ACTIVITY) / np.sum(P.HOURLY_ACTIVITY)
_HOURS = np.arange(P.FIRST_HOUR, P.LAST_HOUR + 1)
_DAY_END = 23 * 3600 + 58 * 60  # sessions end by 23:58 so that likes stay before midnight


def views_per_user(n_users: int, scale: P.Scale, rng: np.random.Generator) -> np.ndarray:
    mu = np.log(scale.mean_views) - scale.views_sigma**2 / 2
    return np.maximum(5, np.round(rng.lognormal(mu, scale.views_sigma, n_users))).astype(np.int64)


def _group_start(keys: np.ndarray) -> np.ndarray:
    """For sorted ``keys``, the index of the first row of each row's group."""
    first = np.r_[True, keys[1:] != keys[:-1]]
    return np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))


def view_times(owner: np.ndarray, n_views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Epoch seconds of each view: sessions on random days and hours, 20-150 s apart."""
    n_sessions = np.maximum(1, np.ceil(n_views / P.SESSION_MEAN_VIEWS)).astype(np.int64)
    offsets = np.r_[0, np.cumsum(n_sessions)[:-1]]
    user_pos = np.repeat(np.arange(len(n_views)), n_views)
    session = offsets[user_pos] + (rng.random(len(owner)) * n_sessions[user_pos]).astype(np.int64)
    order = np.argsort(session, kind="stable")
    session_sorted = session[order]
    gaps = rng.integers(P.VIEW_GAP_SECONDS[0], P.VIEW_GAP_SECONDS[1] + 1, len(owner))
    start_idx = _group_start(session_sorted)
    gaps[start_idx == np.arange(len(owner))] = 0
    cum = np.cumsum(gaps)
    offset_in_session = cum - cum[start_idx]
    total = int(n_sessions.sum())
    duration = np.zeros(total, dtype=np.int64)
    np.maximum.at(duration, session_sorted, offset_in_session)
    day = rng.integers(0, P.FEED_DAYS, total)
    start = rng.choice(_HOURS, total, p=_ACTIVITY) * 3600 + rng.integers(0, 3600, total)
    start = np.maximum(P.FIRST_HOUR * 3600, np.minimum(start, _DAY_END - duration))
    session_start = _START + day * 86400 + start
    times = np.empty(len(owner), dtype=np.int64)
    times[order] = session_start[session_sorted] + offset_in_session
    return times


def _dedupe_posts(owner: np.ndarray, posts: np.ndarray, n_posts: int, p: np.ndarray, rng) -> None:
    """Redraw accidental repeats of a (user, post) pair; repeats are added on purpose later."""
    for _ in range(3):
        key = owner * n_posts + posts
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        if not dup.any():
            return
        posts[dup] = rng.choice(n_posts, dup.sum(), p=p)


def generate_feed_chunk(
    truth: Truth,
    user_idx: np.ndarray,
    n_views: np.ndarray,
    rng: np.random.Generator,
    exposure: np.ndarray,
) -> pd.DataFrame:
    """Views and likes of the users ``user_idx`` (dense indices into the truth)."""
    owner = np.repeat(user_idx, n_views)
    times = view_times(owner, n_views, rng)
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    n_posts = len(truth.post_ids)
    p = exposure / exposure.sum()
    posts = rng.choice(n_posts, len(owner), p=p)
    _dedupe_posts(owner, posts, n_posts, p, rng)
    # Deliberate re-views of a post seen earlier by the same user.
    user_start = _group_start(owner)
    position = np.arange(len(owner))
    repeat = (rng.random(len(owner)) < P.REPEAT_VIEW_SHARE) & (position > user_start)
    earlier = user_start[repeat] + (
        rng.random(repeat.sum()) * (position[repeat] - user_start[repeat])
    ).astype(np.int64)
    posts[repeat] = posts[earlier]

    logit = truth.logit(owner, posts, times)
    uniform = rng.random(len(owner))
    target = uniform < expit(logit)
    # A post already liked is rarely liked again: resolve repeated pairs in time order.
    key = owner * n_posts + posts
    repeated = np.flatnonzero(pd.Series(key).duplicated(keep=False).to_numpy())
    if len(repeated):
        order_rep = np.lexsort((times[repeated], key[repeated]))
        rows = repeated[order_rep]
        group_start = _group_start(key[rows])
        is_first = group_start == np.arange(len(rows))
        plain, penalised = expit(logit[rows]), expit(logit[rows] + truth.liked_effect)
        for _ in range(8):
            earlier = np.r_[0, target[rows][:-1].astype(np.int64)]
            earlier[is_first] = 0
            cum = np.cumsum(earlier)
            liked_before = (cum - cum[group_start]) > 0
            new = uniform[rows] < np.where(liked_before, penalised, plain)
            if np.array_equal(new, target[rows]):
                break
            target[rows] = new

    user_ids = truth.user_ids[owner]
    post_ids = truth.post_ids[posts]
    liked_rows = np.flatnonzero(target)
    like_times = times[liked_rows] + rng.integers(
        P.LIKE_DELAY_SECONDS[0], P.LIKE_DELAY_SECONDS[1] + 1, len(liked_rows)
    )
    frame = pd.DataFrame(
        {
            "timestamp": np.concatenate([times, like_times]),
            "user_id": np.concatenate([user_ids, user_ids[liked_rows]]),
            "post_id": np.concatenate([post_ids, post_ids[liked_rows]]),
            "action": np.concatenate([np.full(len(times), "view"), np.full(len(liked_rows), "like")]),
            "target": np.concatenate([target.astype(np.int64), np.zeros(len(liked_rows), dtype=np.int64)]),
        }
    )
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s")
    return frame


def _solve_offset(base: np.ndarray, target: float) -> float:
    low, high = -8.0, 4.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if expit(base + mid).mean() < target else (low, mid)
    return (low + high) / 2


def calibrate(truth: Truth, rng: np.random.Generator, exposure: np.ndarray, n: int = 400_000) -> None:
    """Set the intercept and topic offsets so that like rates on random views match the facts."""
    users = rng.integers(0, len(truth.user_ids), n)
    posts = rng.choice(len(truth.post_ids), n, p=exposure / exposure.sum())
    times = view_times(users, np.ones(n, dtype=np.int64), rng)
    topic = truth.post_topic[posts]
    base = truth.logit(users, posts, times) - truth.intercept - truth.topic_effect[topic]
    offsets = np.zeros(len(P.TOPICS))
    for i, name in enumerate(P.TOPICS):
        mask = topic == i
        if mask.any():
            offsets[i] = _solve_offset(base[mask], P.TOPIC_TARGET_RATE[name])
    shares = np.bincount(topic, minlength=len(P.TOPICS)) / n
    truth.intercept = float(shares @ offsets)
    truth.topic_effect = offsets - truth.intercept
