"""Offline build (``recsys features build``): the three tables → versioned artifacts.

Like Feast's materialisation: entity tables, the event log compacted to sorted keys, and
daily post snapshots, written once; ``store.FeatureStore`` loads them for lookups.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from gateway.features import artifacts as A
from gateway.features.artifacts import FeatureStoreError
from gateway.features.definitions import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    N_CLUSTERS,
    SVD_DIMS,
    TASTE_PER_TOPIC,
    TASTE_RANK,
    TASTE_SVD_DIMS,
)
from gateway.features.post_texts import PostTexts
from gateway.features.retrieval import build_retrieval
from gateway.features.store import compact_counts, sum_columns
from gateway.features.taste import counts_by_user, demographic_covariates, fit_taste
from gateway.features.text import cluster_within_topics, fit_text_space, save_post_tfidf
from gateway.fsutil import atomic_path
from gateway.progress import track
from gateway.storage import iter_query, read_frame, table_exists
from gateway.tables import Tables

FEED_CHUNK = 2_000_000


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    vocabulary = sorted(values.astype(str).unique())
    return np.searchsorted(np.array(vocabulary), values.astype(str).to_numpy()), vocabulary


def _read_feed(engine: Engine, user_ids: np.ndarray, post_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Compact the feed: dense user/post indices, epoch seconds, like flag (streamed)."""
    with engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM feed_data")).scalar_one()
    parts: dict[str, list[np.ndarray]] = {"user": [], "post": [], "seconds": [], "like": [], "target": []}
    sql = 'SELECT user_id, post_id, action, "timestamp", target FROM feed_data'
    chunks = iter_query(engine, sql, chunksize=FEED_CHUNK)
    for chunk in track(chunks, "reading feed_data", total=max(1, -(-total // FEED_CHUNK))):
        users = np.searchsorted(user_ids, chunk["user_id"].to_numpy(np.int64))
        posts = np.searchsorted(post_ids, chunk["post_id"].to_numpy(np.int64))
        users_ok = (users < len(user_ids)) & (
            user_ids[np.minimum(users, len(user_ids) - 1)] == chunk["user_id"].to_numpy()
        )
        posts_ok = (posts < len(post_ids)) & (
            post_ids[np.minimum(posts, len(post_ids) - 1)] == chunk["post_id"].to_numpy()
        )
        keep = users_ok & posts_ok
        seconds = (
            pd.to_datetime(chunk["timestamp"], format="ISO8601")
            .to_numpy()
            .astype("datetime64[s]")
            .astype(np.int64)
        )
        parts["user"].append(users[keep].astype(np.int32))
        parts["post"].append(posts[keep].astype(np.int32))
        parts["seconds"].append(seconds[keep])
        parts["like"].append((chunk["action"].to_numpy() == "like")[keep])
        parts["target"].append(chunk["target"].to_numpy(np.int8)[keep])
    if not parts["user"]:
        raise FeatureStoreError("feed_data is empty: run `recsys data synth` first")
    return {k: np.concatenate(v) for k, v in parts.items()}


def _fit_taste(
    feed: dict[str, np.ndarray],
    taste_cluster: np.ndarray,
    topic: np.ndarray,
    users: pd.DataFrame,
    until: int,
    seed: int,
):
    """The users × taste clusters factor model, fitted on the events before ``until`` only, with
    the users' demographics as the prior's covariates."""
    n_clusters, n_users = int(taste_cluster.max()) + 1, len(users)
    cluster_topic = np.zeros(n_clusters)
    cluster_topic[taste_cluster] = topic
    early = feed["seconds"] < until
    counts = [
        counts_by_user(feed["user"][rows], taste_cluster[feed["post"][rows]], n_users, n_clusters)
        for rows in (early & ~feed["like"], early & feed["like"])
    ]
    covariates = demographic_covariates(users["age"].to_numpy(), users["gender"].to_numpy())
    return fit_taste(*counts, rank=TASTE_RANK, seed=seed, cluster_topic=cluster_topic, covariates=covariates)


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha1(f"{FEATURE_SET_VERSION}/{TASTE_PER_TOPIC}/{TASTE_SVD_DIMS}/{TASTE_RANK}".encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:10]


def build_feature_store(
    engine: Engine,
    features_dir: Path,
    *,
    seed: int = 42,
    retrieval_index: str = "hnswlib",
    holdout_days: int = 14,
) -> Path:
    """Build artifacts from the database into ``features_dir/<version>``; return that folder.

    The retrieval artifacts (candidate generation) are point in time like the features: each
    day's popularity lists from the events before that day. The taste factor model is fitted on
    the events before the feed's last ``holdout_days`` days (training.validation_days +
    evaluation_days: the training window)."""
    started = time.perf_counter()
    for name in Tables.SOURCE:
        if not table_exists(engine, name):
            raise FeatureStoreError(
                f"table {name} missing in {engine.url.render_as_string()}: run `recsys data synth` first"
            )
    users = read_frame(
        engine,
        "SELECT user_id, gender, age, country, city, exp_group, os, source FROM user_data ORDER BY user_id",
    )
    posts = read_frame(engine, "SELECT post_id, text, topic FROM post_text_df ORDER BY post_id")
    if users.empty or posts.empty:
        raise FeatureStoreError("user_data or post_text_df is empty: run `recsys data synth` first")
    user_ids, post_ids = users["user_id"].to_numpy(np.int64), posts["post_id"].to_numpy(np.int64)
    feed = _read_feed(engine, user_ids, post_ids)

    space, embedding, cluster = fit_text_space(posts["text"].tolist(), SVD_DIMS, N_CLUSTERS, seed)
    topic_code, topic_vocab = _codes(posts["topic"])
    user_table = pd.DataFrame(
        {"user_id": user_ids, "gender": users["gender"], "age": users["age"], "exp_group": users["exp_group"]}
    )
    vocabularies = {"topic": topic_vocab}
    for name in ("country", "city", "os", "source"):
        user_table[name], vocabularies[name] = _codes(users[name])
    post_table = pd.DataFrame(
        {
            "post_id": post_ids,
            "topic": topic_code,
            "text_len": np.log1p(posts["text"].str.len().to_numpy()),
            "cluster": cluster,
        }
    )
    for k in range(embedding.shape[1]):
        post_table[f"svd_{k}"] = embedding[:, k]
    taste_cluster = cluster_within_topics(
        posts["text"].tolist(), topic_code, TASTE_PER_TOPIC, TASTE_SVD_DIMS, seed
    )
    post_table["taste_cluster"] = taste_cluster

    day0 = int(pd.Timestamp(datetime.fromtimestamp(int(feed["seconds"].min()), UTC).date()).timestamp())
    day = ((feed["seconds"] - day0) // 86400).astype(np.int64)
    n_days, n_posts = int(day.max()) + 1, len(post_ids)
    is_view = ~feed["like"]
    daily_views = np.bincount(
        day[is_view] * n_posts + feed["post"][is_view], minlength=n_days * n_posts
    ).reshape(n_days, n_posts)
    daily_likes = np.bincount(
        day[feed["like"]] * n_posts + feed["post"][feed["like"]], minlength=n_days * n_posts
    ).reshape(n_days, n_posts)

    def before(daily: np.ndarray) -> np.ndarray:
        """Row d = totals over the days before d (row 0 is all zeros)."""
        return np.vstack([np.zeros((1, n_posts), np.int32), np.cumsum(daily, axis=0).astype(np.int32)])

    fit_until = day0 + max(1, n_days - holdout_days) * 86400
    taste = _fit_taste(feed, taste_cluster, topic_code, user_table, fit_until, seed)

    version = f"{FEATURE_SET_VERSION}-{_fingerprint(user_ids, post_ids, feed['seconds'][:: max(1, len(day) // 100_000)], np.array([len(day)]))}"
    out = features_dir / version
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        user_table.to_parquet(tmp / A.USERS, index=False)
        post_table.to_parquet(tmp / A.POSTS, index=False)
        posts[["post_id", "text", "topic"]].to_parquet(tmp / A.POST_TEXTS, index=False)
        PostTexts.from_strings(posts["text"].tolist()).save(tmp)
        np.savez(
            tmp / A.EVENTS,
            user=feed["user"],
            post=feed["post"],
            seconds=feed["seconds"],
            like=feed["like"],
            target=feed["target"],
        )
        views_before, likes_before = before(daily_views), before(daily_likes)
        n_taste = len(taste.bias)
        np.savez(
            tmp / A.POST_DAILY,
            views=compact_counts(views_before),
            likes=compact_counts(likes_before),
            taste_views=sum_columns(views_before, taste_cluster, n_taste),
            taste_likes=sum_columns(likes_before, taste_cluster, n_taste),
        )
        del views_before, likes_before
        retrieval = build_retrieval(
            tmp,
            events=feed,
            topic=topic_code,
            cluster=cluster,
            vectors=embedding,
            day0=day0,
            cutoff=day0 + n_days * 86400,
            backend=retrieval_index,
            taste_cluster=taste_cluster,
        )
        np.savez(
            tmp / A.TEXT_SPACE,
            vocabulary=np.array(space.vocabulary),
            idf=space.idf,
            components=space.components,
            centers=space.centers,
        )
        post_tfidf = save_post_tfidf(tmp, space.vocabulary, space.idf, posts["text"].tolist())
        np.savez(tmp / A.TASTE, **taste.arrays())
        manifest = {
            "version": version,
            "feature_set_version": FEATURE_SET_VERSION,
            "features": list(FEATURE_NAMES),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": engine.url.render_as_string(hide_password=True),
            "users": len(user_ids),
            "posts": n_posts,
            "feed_rows": int(len(day)),
            "feed_start": datetime.fromtimestamp(int(feed["seconds"].min()), UTC)
            .replace(tzinfo=None)
            .isoformat(),
            "feed_end": datetime.fromtimestamp(int(feed["seconds"].max()), UTC)
            .replace(tzinfo=None)
            .isoformat(),
            "day0": day0,
            "days": n_days,
            "global_ctr": float(feed["like"].sum() / max(1, is_view.sum())),
            "vocabularies": vocabularies,
            "taste": {
                "clusters": int(TASTE_PER_TOPIC * len(topic_vocab)),
                "rank": TASTE_RANK,
                "fitted_before": datetime.fromtimestamp(fit_until, UTC).replace(tzinfo=None).isoformat(),
            },
            "retrieval": retrieval,
            "post_tfidf": post_tfidf,
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / A.MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out.exists():
            shutil.rmtree(out)
    A.point_current(features_dir, version)
    return out
