"""The synthetic world: schema, determinism, mechanics, truth interface, stats."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gateway.storage import connect, read_frame
from gateway.tables import FEED_COLUMNS, POST_COLUMNS, USER_COLUMNS
from gateway.world.generate import WorldExistsError, synthesize
from gateway.world.load import load_truth
from gateway.world.pairs import PairsFileError, like_probabilities, read_pairs
from gateway.world.params import SCALES
from gateway.world.stats import compute_stats, like_delay_check
from gateway.world.truth import UnknownIdError, standard_normal_from_keys
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


def test_stats_report_every_section(tiny_db):
    stats = compute_stats(connect(tiny_db))
    names = {s.name for s in stats}
    for expected in (
        "gender=1 share",
        "like rate on views",
        "repeated (user, post) views",
        "like rate by exp_group 0..4",
        "peak hour (views)",
    ):
        assert expected in names
    value = {s.name: s.value for s in stats}
    assert 8 <= value["countries"] <= 11  # the rarest countries hold ~0.1 % of users
    assert value["likes == views with target 1"] is True


def test_truth_carries_the_documented_signals(tiny_db):
    truth = load_truth(connect(tiny_db))
    users = np.arange(len(truth.user_ids))
    evening = int(pd.Timestamp("2021-11-10 20:00").timestamp())
    noon = int(pd.Timestamp("2021-11-10 12:00").timestamp())
    p_evening = truth.like_prob(users[:, None], np.arange(len(truth.post_ids))[None, :], evening).mean()
    p_noon = truth.like_prob(users[:, None], np.arange(len(truth.post_ids))[None, :], noon).mean()
    assert p_evening > p_noon
    liked = truth.like_prob(0, 0, noon, liked_before=True)
    assert liked < 0.5 * truth.like_prob(0, 0, noon, liked_before=False)


def test_counter_based_normals_are_deterministic_and_standard():
    a = standard_normal_from_keys(3, np.arange(100_000), np.zeros(100_000, dtype=np.int64))
    assert np.array_equal(
        a, standard_normal_from_keys(3, np.arange(100_000), np.zeros(100_000, dtype=np.int64))
    )
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02


def test_like_prob_matches_truth_and_rejects_unknown_ids(tiny_db, tmp_path):
    engine = connect(tiny_db)
    feed = read_frame(
        engine, "SELECT user_id, post_id, \"timestamp\" FROM feed_data WHERE action = 'view' LIMIT 500"
    )
    path = tmp_path / "pairs.csv"
    feed.to_csv(path, index=False)
    pairs = read_pairs(path)
    p = like_probabilities(engine, pairs)
    assert p.shape == (500,) and np.all((p > 0) & (p < 1))
    bad = pairs.copy()
    bad.loc[0, "user_id"] = 999_999_999
    with pytest.raises(UnknownIdError, match="999999999"):
        like_probabilities(engine, bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user_id,post_id\n1,2\n", "missing column"),
        ("user_id,post_id,timestamp\nabc,2,2021-10-01 10:00:00\n", "not an integer"),
        ("user_id,post_id,timestamp\n1,2,yesterday\n", "not an ISO datetime"),
        ("", "not a readable CSV"),
    ],
)
def test_malformed_pairs_files(tmp_path, content, message):
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(PairsFileError, match=message):
        read_pairs(path)


def test_truth_is_not_imported_by_features_rankers_or_serving():
    root = Path(__file__).resolve().parents[2] / "gateway"
    guarded = [root / "features", root / "rankers", root / "serving", root / "training.py"]
    for place in guarded:
        files = [place] if place.suffix == ".py" else sorted(place.rglob("*.py"))
        for file in files:
            tree = ast.parse(file.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    assert not name.startswith("gateway.world"), f"{file} imports {name}"
