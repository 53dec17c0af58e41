"""Simulation and analysis through the real server on a copy of the tiny world."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from gateway.analysis.report import analyze
from gateway.judging.simulation import plan_requests, react
from gateway.storage import read_frame


def test_every_request_served_and_reactions_written(simulated):
    report, engine = simulated["report"], simulated["engine"]
    assert report.served == 600 and report.failed == 0
    new = read_frame(
        engine,
        f"SELECT * FROM feed_data WHERE \"timestamp\" >= '{simulated['start']}'",
        parse_dates=["timestamp"],
    )
    assert (new["action"] == "view").sum() == 600 * 5 == report.views
    likes, views = new[new["action"] == "like"], new[new["action"] == "view"]
    assert len(likes) == report.likes == views["target"].sum() > 0
    pairs = likes.merge(views[views["target"] == 1], on=["user_id", "post_id"], suffixes=("_like", "_view"))
    delay = (pairs["timestamp_like"] - pairs["timestamp_view"]).dt.total_seconds()
    assert pairs[(delay >= 30) & (delay <= 60)].drop_duplicates(
        ["user_id", "post_id", "timestamp_like"]
    ).shape[0] == len(likes)


def test_later_requests_never_serve_a_post_liked_earlier(simulated):
    engine = simulated["engine"]
    exposures = read_frame(
        engine, "SELECT user_id, request_time, post_ids FROM exposures", parse_dates=["request_time"]
    )
    likes = read_frame(
        engine,
        f"SELECT user_id, post_id, \"timestamp\" FROM feed_data WHERE action = 'like' AND \"timestamp\" >= '{simulated['start']}'",
        parse_dates=["timestamp"],
    )
    served = exposures.assign(post_id=exposures["post_ids"].map(json.loads)).explode("post_id")
    served["post_id"] = served["post_id"].astype(np.int64)
    clash = served.merge(likes, on=["user_id", "post_id"])
    assert len(clash) > 0  # users did like served posts...
    assert not (clash["timestamp"] < clash["request_time"]).any()  # ...but never one served after its like


def test_analysis_of_the_simulated_experiment(simulated):
    result = analyze(
        simulated["engine"], experiment="test-exp", window="1h", weights={"control": 50, "test": 50}
    )
    arms = result["arms"]
    # Under load the gateway may answer a few requests with the popularity fallback (deadline):
    # logged outside the experiment and counted in "fallbacks", never in an arm.
    fallbacks = sum(result["fallbacks"]["per_arm"].values())
    assert arms["control"]["requests"] + arms["test"]["requests"] + fallbacks == 600
    assert 0 < arms["control"]["hitrate"] < 1 and 0 < arms["test"]["hitrate"] < 1
    assert (
        result["delta"]["ci95_absolute"][0]
        < result["delta"]["absolute"]
        < result["delta"]["ci95_absolute"][1]
    )
    assert 0 <= result["srm"]["p_value"] <= 1 and 0 <= result["welch"]["p_value"] <= 1


def test_plan_and_reactions_are_deterministic(simulated):
    truth, start = simulated["truth"], simulated["start"]
    a = plan_requests(truth, users=50, requests=100, start=start, days=2, seed=9)
    b = plan_requests(truth, users=50, requests=100, start=start, days=2, seed=9)
    pd.testing.assert_frame_equal(a, b)
    assert a["seconds"].is_monotonic_increasing
    hours = (a["seconds"] // 3600) % 24
    assert hours.between(6, 23).all()
    posts = [int(p) for p in truth.post_ids[:5]]
    pd.testing.assert_frame_equal(
        react(truth, 9, 4, int(a["user_id"][0]), int(a["seconds"][0]), posts),
        react(truth, 9, 4, int(a["user_id"][0]), int(a["seconds"][0]), posts),
    )
