"""Generating a world: the exact source schema, determinism, replacing, feed mechanics."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from gateway.storage import connect, read_frame
from gateway.tables import FEED_COLUMNS, POST_COLUMNS, USER_COLUMNS
from gateway.world.generate import WorldExistsError, synthesize
from gateway.world.params import SCALES
from gateway.world.stats import like_delay_check
from tests.conftest import TINY_SEED


def table_digest(url: str) -> dict[str, str]:
    engine = connect(url)
    out = {}
    for name, order in (
        ("user_data", "user_id"),
        ("post_text_df", "post_id"),
        ("feed_data", 'user_id, "timestamp", action, post_id'),
        ("world_users", "user_id"),
        ("world_posts", "post_id"),
    ):
        frame = read_frame(engine, f"SELECT * FROM {name} ORDER BY {order}")
        for col in frame.columns:
            if frame[col].dtype.kind == "f":
                frame[col] = frame[col].round(9)
        frame = frame.astype(str)
        out[name] = hashlib.sha1(
            pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
        ).hexdigest()
    return out


def test_source_schema_is_exact(tiny_db):
    engine = connect(tiny_db)
    assert tuple(read_frame(engine, "SELECT * FROM user_data LIMIT 1").columns) == USER_COLUMNS
    assert tuple(read_frame(engine, "SELECT * FROM post_text_df LIMIT 1").columns) == POST_COLUMNS
    assert tuple(read_frame(engine, "SELECT * FROM feed_data LIMIT 1").columns) == FEED_COLUMNS


def test_same_seed_same_tables_other_seed_other_tables(tiny_db, tmp_path):
    again = f"sqlite:///{tmp_path}/again.db"
    synthesize(connect(again, create=True), SCALES["tiny"], TINY_SEED)
    assert table_digest(again) == table_digest(tiny_db)
    other = f"sqlite:///{tmp_path}/other.db"
    synthesize(connect(other, create=True), SCALES["tiny"], TINY_SEED + 1)
    assert table_digest(other)["feed_data"] != table_digest(tiny_db)["feed_data"]


def test_existing_world_needs_replace(tiny_db, tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    engine = connect(url, create=True)
    synthesize(engine, SCALES["tiny"], 1)
    with pytest.raises(WorldExistsError, match="--replace"):
        synthesize(engine, SCALES["tiny"], 2)
    synthesize(engine, SCALES["tiny"], 2, replace=True)
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM user_data")["n"][0] == SCALES["tiny"].users


def test_feed_mechanics(tiny_db):
    engine = connect(tiny_db)
    feed = read_frame(engine, "SELECT * FROM feed_data", parse_dates=["timestamp"])
    hours = feed["timestamp"].dt.hour
    assert hours.min() >= 6 and hours.max() <= 23
    assert feed["timestamp"].min() >= pd.Timestamp("2021-10-01 06:00") and feed[
        "timestamp"
    ].max() < pd.Timestamp("2021-12-30")
    likes, views = feed[feed["action"] == "like"], feed[feed["action"] == "view"]
    assert (likes["target"] == 0).all()
    assert len(likes) == views["target"].sum()
    assert 0.09 < views["target"].mean() < 0.15
    assert like_delay_check(engine, users=2000)["matched_share"] == 1.0
