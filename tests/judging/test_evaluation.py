"""Offline evaluation: expected Hitrate@5 of models, baselines and the oracle under the truth."""

from __future__ import annotations

from gateway.judging.ceiling import CeilingRanker
from gateway.judging.evaluation import evaluate
from gateway.judging.oracle import OracleRanker
from gateway.rankers.libraries import load_ranker
from gateway.storage import connect
from gateway.world.load import load_truth


def test_evaluation_reports_all_rankers(tiny_models, tiny_store, tiny_db, tmp_path):
    models = {arm: load_ranker(tiny_models / arm) for arm in ("control", "test")}
    truth = load_truth(connect(tiny_db))
    oracle = OracleRanker(truth, tiny_store)
    dump = tmp_path / "dump.csv"
    result = evaluate(
        tiny_store,
        models,
        oracle,
        requests=60,
        seed=2,
        evaluation_days=7,
        validation_days=7,
        dump=dump,
        auc_views=5000,
        ceiling=CeilingRanker(truth, tiny_store),
    )
    assert result.requests == 60
    assert set(result.hitrate) == {"control", "test", "random", "popularity", "oracle", "ceiling"}
    assert set(result.as_json()["captured_lift"]) == {"control", "test", "random", "ceiling"}
    assert max(result.hitrate.values()) == result.hitrate["oracle"]
    for name, (lo, hi) in result.ci95.items():
        assert lo <= result.hitrate[name] <= hi
    assert set(result.topic_hitrate) == {"control", "test", "popularity", "oracle", "ceiling"}
    assert max(result.topic_hitrate.values()) == result.topic_hitrate["oracle"]
    assert result.auc["truth"] > 0.5 and set(result.auc) >= {"control", "test", "popularity"}
    rows = dump.read_text().splitlines()
    assert rows[0] == "request_id,user_id,timestamp,ranker,rank,post_id"
    assert len(rows) == 1 + 60 * 6 * 5


def test_evaluation_never_recommends_a_post_liked_before(tiny_models, tiny_store, tiny_db, tmp_path):
    import pandas as pd

    models = {"control": load_ranker(tiny_models / "control")}
    oracle = OracleRanker(load_truth(connect(tiny_db)), tiny_store)
    dump = tmp_path / "dump.csv"
    evaluate(
        tiny_store,
        models,
        oracle,
        requests=40,
        seed=4,
        evaluation_days=7,
        validation_days=7,
        dump=dump,
        auc_views=2000,
    )
    rows = pd.read_csv(dump, parse_dates=["timestamp"])
    for (user, stamp), group in rows.groupby(["user_id", "timestamp"]):
        u = tiny_store.user_index([user])[0]
        liked = set(tiny_store.post_ids[tiny_store.liked_before(u, int(stamp.timestamp()))].tolist())
        assert not liked & set(group["post_id"].tolist())
