"""``recsys data synth``: build a world and write it into a database, chunk by chunk."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from gateway.progress import track
from gateway.storage import bulk_insert, drop_tables, table_exists
from gateway.storage.schema import SOURCE_TABLES, feed_data, metadata, post_text_df, user_data
from gateway.tables import Tables
from gateway.world import params as P
from gateway.world.feed import calibrate, generate_feed_chunk, views_per_user
from gateway.world.posts import generate_posts
from gateway.world.schema import WORLD_TABLES, world_metadata, world_params, world_posts, world_users
from gateway.world.truth import Truth, build_time_tables
from gateway.world.users import generate_user_truth, generate_users

USERS_PER_CHUNK = 2_500


class WorldExistsError(RuntimeError):
    pass


@dataclass
class SynthReport:
    scale: str
    seed: int
    users: int
    posts: int
    feed_rows: int
    seconds: float


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def build_truth(
    seed: int,
    users: pd.DataFrame,
    world_users_frame: pd.DataFrame,
    posts: pd.DataFrame,
    world_posts_frame: pd.DataFrame,
) -> Truth:
    """Assemble the truth from generated frames (intercept calibrated afterwards)."""
    rng = _rng(seed, 4)
    hour_effect, topic_hour = build_time_tables()
    w = rng.normal(0, P.MATCH_SD / np.sqrt(P.LATENT_DIM), (len(P.SUBTOPIC_NAMES), P.LATENT_DIM))
    # Centre the sub-topic vectors on the catalogue, so that a shift of z moves no marginal rate.
    size = np.array([P.TOPIC_COUNTS[t] / len(P.SUBTOPIC_NAMES_BY_TOPIC[t]) for t, _ in P.SUBTOPIC_NAMES])
    w -= size @ w / size.sum()
    draft = Truth(
        seed=seed,
        intercept=0.0,
        user_ids=np.array([]),
        post_ids=np.array([]),
        user_base=np.array([]),
        user_taste=np.array([]),
        user_z=np.array([]),
        post_topic=np.array([]),
        post_subtopic=np.array([]),
        post_quality=np.array([]),
        subtopic_w=w,
        topic_effect=np.zeros(len(P.TOPICS)),
        hour_effect=hour_effect,
        topic_hour=topic_hour,
        mood_sd=P.USER_DAY_MOOD_SD,
        rise=P.DECEMBER_RISE,
        liked_effect=P.ALREADY_LIKED_EFFECT,
    )
    return Truth.from_frames(users, world_users_frame, posts, world_posts_frame, draft.params_record())


def world_exists(engine: Engine) -> bool:
    for name in (*Tables.SOURCE, *(t.name for t in WORLD_TABLES)):
        if table_exists(engine, name):
            with engine.connect() as conn:
                if conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1')).first():
                    return True
    return False


def synthesize(engine: Engine, scale: P.Scale, seed: int, *, replace: bool = False) -> SynthReport:
    started = time.perf_counter()
    if world_exists(engine):
        if not replace:
            raise WorldExistsError(
                f"a world already exists in {engine.url.render_as_string()}: pass --replace to overwrite it"
            )
        metadata.drop_all(engine, tables=list(SOURCE_TABLES))
        world_metadata.drop_all(engine, tables=list(WORLD_TABLES))
        # The exposure log belongs to experiments on the replaced world: it goes too.
        drop_tables(engine, [Tables.EXPOSURES])
    metadata.create_all(engine, tables=list(SOURCE_TABLES))
    world_metadata.create_all(engine, tables=list(WORLD_TABLES))

    users = generate_users(scale.users, _rng(seed, 1))
    users_truth = generate_user_truth(users, _rng(seed, 2))
    posts, posts_truth = generate_posts(scale.posts, _rng(seed, 3))
    truth = build_truth(seed, users, users_truth, posts, posts_truth)
    exposure = posts_truth.sort_values("post_id")["exposure"].to_numpy()
    calibrate(truth, _rng(seed, 5), exposure)

    bulk_insert(engine, user_data, users)
    bulk_insert(engine, post_text_df, posts)
    bulk_insert(engine, world_users, users_truth)
    bulk_insert(engine, world_posts, posts_truth)
    record = {**truth.params_record(), "scale": json.dumps(scale.name)}
    bulk_insert(engine, world_params, pd.DataFrame({"key": list(record), "value": list(record.values())}))

    n_views = views_per_user(len(users), scale, _rng(seed, 6))
    chunks = range(0, len(users), USERS_PER_CHUNK)
    feed_rows = 0
    for i, start in enumerate(track(chunks, f"feed_data ({scale.name})", total=len(chunks))):
        idx = np.arange(start, min(start + USERS_PER_CHUNK, len(users)))
        frame = generate_feed_chunk(truth, idx, n_views[idx], _rng(seed, 100, i), exposure)
        bulk_insert(engine, feed_data, frame)
        feed_rows += len(frame)
    with engine.begin() as conn:
        conn.execute(
            text('CREATE INDEX IF NOT EXISTS feed_data_user_time ON feed_data (user_id, "timestamp")')
        )
    return SynthReport(scale.name, seed, len(users), len(posts), feed_rows, time.perf_counter() - started)
