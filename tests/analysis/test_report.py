"""Analysis on hand-built exposure and like tables with known answers."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from gateway.analysis.report import AnalysisError, analyze, parse_window
from gateway.exposure import exposure_metadata, exposures
from gateway.storage import bulk_insert, connect
from gateway.storage.schema import feed_data, metadata

T0 = datetime(2022, 1, 10, 12, 0, 0)


def _db(tmp_path, rows, likes):
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = connect(f"sqlite:///{tmp_path}/a.db", create=True)
    metadata.create_all(engine, tables=[feed_data])
    exposure_metadata.create_all(engine, tables=[exposures])
    frame = pd.DataFrame(rows)
    frame["served_at"] = T0
    frame["bucket"] = 1.0
    frame["latency_ms"] = 1.0
    frame["cold_start"] = False
    frame["topic"] = None
    frame["mood"] = None
    for column in ("teams", "model_versions", "shadow_version"):  # interleaving and shadow only
        frame[column] = None
    frame["post_ids"] = frame["post_ids"].map(json.dumps)
    frame["in_experiment"] = frame["in_experiment"].astype(int)
    bulk_insert(engine, exposures, frame.reindex(columns=[c.name for c in exposures.columns]))  # later nullable columns: NULL
    if likes:
        lk = pd.DataFrame(likes, columns=["timestamp", "user_id", "post_id"])
        lk["action"], lk["target"] = "like", 0
        bulk_insert(engine, feed_data, lk[["timestamp", "user_id", "post_id", "action", "target"]])
    return engine


def _row(i, user, arm, t, posts, *, version="v1", inside=True):
    return {
        "request_id": f"r{i}",
        "request_time": t,
        "user_id": user,
        "experiment": "e",
        "arm": arm,
        "in_experiment": inside,
        "model_version": f"{arm}-{version}",
        "post_ids": posts,
    }


def test_window_edges_repeats_coverage_and_users_without_likes(tmp_path):
    h = pd.Timedelta("1h")
    rows = [
        _row(1, 1, "control", T0, [10, 11, 12, 13, 14, 15]),  # like of post 15 (6th) does not count
        _row(2, 1, "control", T0 + 3 * h, [20, 21, 22, 23, 24]),  # like exactly at t + 1h counts
        _row(3, 2, "control", T0, [30, 31, 32, 33, 34]),  # like 1h + 1s later: miss
        _row(4, 3, "test", T0, [40, 41, 42, 43, 44]),  # like before t: miss
        _row(5, 3, "test", T0 + h, [40, 41, 42, 43, 44]),  # repeated request, like inside: hit
        _row(6, 4, "test", T0, [50, 51, 52, 53, 54]),  # a user with no likes at all
        _row(7, 5, "test", T0, [60, 61, 62, 63, 64], inside=False),  # outside coverage: excluded
    ]
    likes = [
        (T0 + pd.Timedelta("10min"), 1, 15),
        (T0 + 3 * h + h, 1, 22),
        (T0 + h + pd.Timedelta("1s"), 2, 33),
        (T0 - pd.Timedelta("1min"), 3, 41),
        (T0 + h + pd.Timedelta("5min"), 3, 44),
        (T0 + pd.Timedelta("5min"), 5, 60),
    ]
    engine = _db(tmp_path, rows, likes)
    result = analyze(engine, experiment="e", window="1h", weights={"control": 0.5, "test": 0.5})
    control = result["arms"]["control"]
    assert {k: control[k] for k in ("users", "requests", "hits", "hitrate", "model_versions")} == {
        "users": 2,
        "requests": 3,
        "hits": 1,
        "hitrate": round(1 / 3, 6),
        "model_versions": ["control-v1"],
    }
    assert control["ci95"][0] < control["hitrate"] < control["ci95"][1]
    assert (
        result["arms"]["test"]["users"] == 2
        and result["arms"]["test"]["requests"] == 3
        and result["arms"]["test"]["hits"] == 1
    )
    assert result["excluded_not_in_experiment"] == 1
    assert result["delta"]["absolute"] == pytest.approx(0.0)
    assert result["srm"]["users"] == {"control": 2, "test": 2} and not result["srm"]["flag"]
    wider = analyze(engine, experiment="e", window="2h", weights={"control": 0.5, "test": 0.5})
    assert wider["arms"]["control"]["hits"] == 2  # the 1h+1s like now counts


def test_srm_flag_and_version_split(tmp_path):
    rows = [_row(i, i, "control", T0, [1, 2, 3, 4, 5]) for i in range(1, 80)]
    rows += [
        _row(100 + i, 100 + i, "test", T0, [1, 2, 3, 4, 5], version="v1" if i < 10 else "v2")
        for i in range(20)
    ]
    likes = [(T0 + pd.Timedelta("1min"), i, 1) for i in range(1, 80, 2)] + [
        (T0 + pd.Timedelta("1min"), 100 + i, 2) for i in range(0, 20, 3)
    ]
    engine = _db(tmp_path, rows, likes)
    result = analyze(engine, experiment="e", window="1h", weights={"control": 0.5, "test": 0.5})
    assert result["srm"]["flag"] and result["srm"]["p_value"] < 0.001
    split = {(s["arm"], s["model_version"]): s for s in result["by_model_version"]}
    assert split[("test", "test-v1")]["requests"] == 10 and split[("test", "test-v2")]["requests"] == 10
    assert (
        sum(s["hits"] for s in split.values())
        == result["arms"]["control"]["hits"] + result["arms"]["test"]["hits"]
    )


def test_bad_window_and_missing_table(tmp_path):
    with pytest.raises(AnalysisError, match="bad window"):
        parse_window("soon")
    engine = connect(f"sqlite:///{tmp_path}/empty.db", create=True)
    with pytest.raises(AnalysisError, match="no exposures"):
        analyze(engine, experiment=None, window="1h", weights={"control": 1, "test": 1})


def test_split_by_cold_start_and_mood(tmp_path):
    rows = [_row(i, i, "control" if i % 2 else "test", T0, [1, 2, 3, 4, 5]) for i in range(1, 41)]
    engine = _db(tmp_path, rows, [(T0 + pd.Timedelta("1min"), i, 1) for i in range(1, 41, 3)])
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("UPDATE exposures SET cold_start = 1, mood = 'happy' WHERE user_id <= 10"))
    result = analyze(
        engine, experiment="e", window="1h", weights={"control": 1, "test": 1}, split_by="cold_start"
    )
    groups = result["by"]["groups"]
    assert set(groups) == {"cold start", "known user"}
    assert sum(a["requests"] for a in groups["cold start"]["arms"].values()) == 10
    moods = analyze(engine, experiment="e", window="1h", weights={"control": 1, "test": 1}, split_by="mood")[
        "by"
    ]["groups"]
    assert sum(a["requests"] for a in moods["with mood"]["arms"].values()) == 10
    with pytest.raises(AnalysisError, match="cannot split"):
        analyze(engine, experiment="e", window="1h", weights={"control": 1, "test": 1}, split_by="os")


def test_fallback_requests_are_left_out_and_reported_per_arm(tmp_path):
    rows = [_row(i, i, "control", T0, [1, 2, 3, 4, 5]) for i in range(1, 41)]
    rows += [_row(100 + i, 100 + i, "test", T0, [1, 2, 3, 4, 5]) for i in range(1, 41)]
    shed = [_row(200 + i, i, "control", T0, [9, 8, 7, 6, 5], inside=False) for i in range(1, 31)]
    shed += [_row(300 + i, 100 + i, "test", T0, [9, 8, 7, 6, 5], inside=False) for i in range(1, 3)]
    for row in shed:
        row["model_version"], row["served_by"] = "fallback:popularity", "shed"
    engine = _db(tmp_path, rows + shed, [(T0 + pd.Timedelta("5min"), 1, 9)])
    result = analyze(engine, experiment="e", window="1h", weights={"control": 0.5, "test": 0.5})
    assert result["arms"]["control"]["requests"] == 40 and result["arms"]["test"]["requests"] == 40
    assert result["arms"]["control"]["hits"] == 0  # the like of a fallback post is not the model's
    assert result["excluded_not_in_experiment"] == 0
    fallbacks = result["fallbacks"]
    assert fallbacks["per_arm"] == {"control": 30, "test": 2} and fallbacks["by_reason"] == {"shed": 30 + 2}
    assert fallbacks["share"]["control"] == round(30 / 70, 6)
    assert fallbacks["flag"]  # one arm shed far more than the other: the guardrail fires
    even = analyze(
        _db(tmp_path / "even", rows + shed[:2] + shed[30:], []),
        experiment="e",
        window="1h",
        weights={"control": 0.5, "test": 0.5},
    )
    assert not even["fallbacks"]["flag"] and even["fallbacks"]["per_arm"] == {"control": 2, "test": 2}
