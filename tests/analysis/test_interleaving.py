"""Interleaving credit and analysis on a hand-built log with known answers; the A/B part ignores it."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from gateway.analysis.interleaving import analyze_interleaving
from gateway.analysis.report import analyze, analyze_experiment
from gateway.assignment import INTERLEAVED, Experiment
from gateway.config import Settings
from gateway.exposure import exposure_metadata, exposures
from gateway.storage import bulk_insert, connect
from gateway.storage.schema import feed_data, metadata

T0 = datetime(2022, 1, 10, 12, 0, 0)
M = pd.Timedelta("1min")
C, T = "control", "test"


def _exposure(i, user, arm, t, posts, teams=None, *, inside=True):
    return {
        "request_id": f"r{i}",
        "served_at": T0,
        "request_time": t,
        "user_id": user,
        "experiment": "e",
        "arm": arm,
        "bucket": 1.0,
        "in_experiment": int(inside),
        "model_version": f"{INTERLEAVED}:c1+t1" if arm == INTERLEAVED else f"{arm}-v1",
        "post_ids": json.dumps(posts),
        "latency_ms": 1.0,
        "topic": None,
        "mood": None,
        "cold_start": teams is None and arm == INTERLEAVED,
        "teams": None if teams is None else json.dumps(teams),
        "model_versions": None if teams is None else json.dumps({C: "c1", T: "t1"}),
        "shadow_version": None,
    }


ROWS = [
    _exposure(1, 1, INTERLEAVED, T0, [10, 11, 12, 13], [C, T, T, C]),  # test 2 : 0 -> test wins
    _exposure(2, 1, INTERLEAVED, T0 + 180 * M, [20, 21], [T, C]),  # control wins
    _exposure(3, 2, INTERLEAVED, T0, [30, 31], [C, T]),  # 1 : 1 -> tie
    _exposure(4, 2, INTERLEAVED, T0 + 60 * M, [40, 41], [T, C]),  # no likes -> tie
    _exposure(5, 3, INTERLEAVED, T0, [50, 51], [T, C]),  # a post liked twice counts once -> test wins
    _exposure(6, 3, INTERLEAVED, T0 + 300 * M, [60, 61], [C, T]),  # like at the request time: not credited
    _exposure(7, 9, INTERLEAVED, T0, [70, 71], [C, T], inside=False),  # forced override: excluded
    _exposure(8, 9, INTERLEAVED, T0, [80, 81]),  # cold start (no teams): not interleaved, excluded
    _exposure(9, 4, C, T0, [90, 91]),  # A/B control, a hit
    _exposure(10, 5, T, T0, [95, 96]),  # A/B test, no hit
]
LIKES = [
    (T0 + 10 * M, 1, 11),
    (T0 + 20 * M, 1, 12),
    (T0 + 120 * M, 1, 10),  # outside the 1 h window
    (T0 + 210 * M, 1, 21),
    (T0 + 5 * M, 2, 30),
    (T0 + 6 * M, 2, 31),
    (T0 + 5 * M, 3, 50),
    (T0 + 7 * M, 3, 50),
    (T0 + 8 * M, 3, 52),  # not served
    (T0 + 300 * M, 3, 60),
    (T0 + 5 * M, 9, 70),
    (T0 + 5 * M, 9, 80),
    (T0 + 5 * M, 4, 90),
]


@pytest.fixture
def engine(tmp_path):
    engine = connect(f"sqlite:///{tmp_path}/il.db", create=True)
    metadata.create_all(engine, tables=[feed_data])
    exposure_metadata.create_all(engine, tables=[exposures])
    bulk_insert(engine, exposures, pd.DataFrame(ROWS).reindex(columns=[c.name for c in exposures.columns]))
    likes = pd.DataFrame(LIKES, columns=["timestamp", "user_id", "post_id"]).assign(action="like", target=0)
    bulk_insert(engine, feed_data, likes[["timestamp", "user_id", "post_id", "action", "target"]])
    return engine


def test_credit_wins_ties_and_the_preference(engine):
    result = analyze_interleaving(engine, experiment="e", window="1h", control=C, treatment=T)
    assert result["requests"] == 6 and result["users"] == 3
    assert result["wins"] == {C: 1, T: 2} and result["ties"] == 3
    assert result["credited_likes"] == {C: 2, T: 4}
    assert result["preference"] == pytest.approx((2 - 1) / 3)
    assert result["ci95"][0] < result["preference"] < result["ci95"][1] and 0 < result["p_value"] <= 1


def test_a_wider_window_credits_more(engine):
    result = analyze_interleaving(engine, experiment="e", window="3h", control=C, treatment=T)
    assert result["credited_likes"] == {C: 3, T: 4}  # post 10 (control) liked 2 h after r1...
    assert result["wins"] == {C: 1, T: 2} and result["ties"] == 3  # ...r1 still goes to test, 2 : 1


def test_no_interleaved_rows_gives_none(engine):
    assert analyze_interleaving(engine, experiment="other", window="1h", control=C, treatment=T) is None


def test_the_ab_analysis_ignores_interleaved_rows_and_srm_counts_every_group(engine):
    groups = Experiment("e", "s", (C, T), (25, 25), interleave_weight=50)
    result = analyze(engine, experiment="e", window="1h", weights={C: 25, T: 25}, groups=groups)
    assert set(result["arms"]) == {C, T}
    assert result["arms"][C]["requests"] == 1 and result["arms"][C]["hits"] == 1
    assert result["arms"][T]["requests"] == 1 and result["arms"][T]["hits"] == 0
    # in-experiment users of every group: the cold-start user 9 counts, the forced one does not
    assert result["srm"]["users"] == {C: 1, T: 1, INTERLEAVED: 4}
    assert result["srm"]["expected"] == pytest.approx({C: 1.5, T: 1.5, INTERLEAVED: 3.0})


def test_analyze_experiment_adds_the_interleaving_key(engine):
    settings = Settings(
        experiment={
            "name": "e",
            "interleave_weight": 50,
            "arms": [{"name": C, "weight": 25, "model": "m"}, {"name": T, "weight": 25, "model": "n"}],
        }
    )
    result = analyze_experiment(settings, engine)
    assert result["interleaving"]["wins"] == {C: 1, T: 2}
    assert set(result["srm"]["users"]) == {C, T, INTERLEAVED}
    json.dumps(result, default=str)  # the CLI's --json
