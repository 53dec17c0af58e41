"""Reading a world's truth back from its database (the I/O edge of ``gateway.world``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gateway.storage import read_frame, table_exists
from gateway.tables import Tables
from gateway.world.schema import WORLD_TABLES
from gateway.world.truth import Truth


class NoWorldError(RuntimeError):
    pass


def load_truth(engine: Engine) -> Truth:
    for name in (*Tables.SOURCE, *(t.name for t in WORLD_TABLES)):
        if not table_exists(engine, name):
            raise NoWorldError(
                f"no world in {engine.url.render_as_string()} (table {name} missing): "
                "run `recsys data synth` first"
            )
    users = read_frame(engine, "SELECT user_id, gender, country, exp_group FROM user_data")
    posts = read_frame(engine, "SELECT post_id, topic FROM post_text_df")
    world_users = read_frame(engine, "SELECT * FROM world_users")
    world_posts = read_frame(engine, "SELECT * FROM world_posts")
    params = read_frame(engine, "SELECT key, value FROM world_params")
    return Truth.from_frames(
        users, world_users, posts, world_posts, dict(zip(params["key"], params["value"], strict=True))
    )


def describe_world(engine: Engine) -> str:
    """``scale S, seed N`` of the world in this database."""
    params = read_frame(engine, "SELECT key, value FROM world_params")
    values = dict(zip(params["key"], params["value"], strict=True))
    scale = json.loads(values["scale"]) if "scale" in values else "?"
    return f"scale {scale}, seed {json.loads(values['seed'])}"


def first_like_times(engine: Engine, user_ids: np.ndarray | None = None) -> pd.DataFrame:
    """(user_id, post_id, first_like) for every liked pair, optionally of some users only."""
    sql = (
        'SELECT user_id, post_id, MIN("timestamp") AS first_like FROM feed_data '
        "WHERE action = 'like' GROUP BY user_id, post_id"
    )
    likes = read_frame(engine, sql, parse_dates=["first_like"])
    if user_ids is not None:
        likes = likes[likes["user_id"].isin(np.unique(user_ids))]
    return likes


def liked_before(engine: Engine, pairs: pd.DataFrame) -> np.ndarray:
    """For rows (user_id, post_id, timestamp): did the user like the post before timestamp?"""
    likes = first_like_times(engine, pairs["user_id"].to_numpy())
    merged = pairs[["user_id", "post_id", "timestamp"]].merge(likes, on=["user_id", "post_id"], how="left")
    return (merged["first_like"] < merged["timestamp"]).to_numpy()


def post_subtopics(engine: Engine) -> dict[int, str]:
    """Each post's sub-topic as ``topic/sub`` (the truth's; for judging only)."""
    from gateway.world.params import SUBTOPIC_NAMES

    frame = read_frame(engine, "SELECT post_id, subtopic FROM world_posts")
    return {
        int(p): "/".join(SUBTOPIC_NAMES[int(s)]) for p, s in zip(frame["post_id"], frame["subtopic"], strict=True)
    }
