"""Training both arms on the tiny world, manifests, registry validation, offline evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.judging.evaluation import evaluate
from gateway.judging.oracle import OracleRanker
from gateway.rankers.model_dir import ModelError, load_ranker
from gateway.storage import connect
from gateway.world.load import load_truth
from tests.conftest import train_tiny

MANIFEST_KEYS = {
    "model_version",
    "features",
    "feature_set_version",
    "feature_store_version",
    "training_window",
    "params",
    "metrics",
    "training_seconds",
    "seed",
}


@pytest.fixture(scope="module")
def trained(tiny_models):
    return tiny_models


def test_manifests_describe_the_models(trained, tiny_store):
    for arm, kind in (("control", "lightgbm"), ("test", "catboost")):
        manifest = json.loads((trained / arm / "manifest.json").read_text())
        assert manifest.keys() >= MANIFEST_KEYS
        assert manifest["kind"] == kind and manifest["feature_store_version"] == tiny_store.version
        assert 0.5 < manifest["metrics"]["validation_auc"] < 1.0
        ranker = load_ranker(trained / arm, tiny_store.manifest["feature_set_version"])
        scores = ranker.score(tiny_store, np.array([0, 1]), np.array([1_639_000_000, 1_639_500_000]))
        assert scores.shape == (2, len(tiny_store.post_ids)) and np.all((scores > 0) & (scores < 1))


def test_training_is_reproducible(tiny_store, tmp_path, trained):
    train_tiny("control", tiny_store, tmp_path / "again")  # the same call as the tiny_models fixture
    first = (trained / "control" / "model.txt").read_text()
    second = (tmp_path / "again" / "model.txt").read_text()
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("[")]  # noqa: E731
    assert strip(first) == strip(second)


def test_broken_model_folders_are_rejected(trained, tmp_path, tiny_store):
    with pytest.raises(ModelError, match="recsys train"):
        load_ranker(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((trained / "control" / "manifest.json").read_text())
    (broken / "model.txt").write_text("not a model")
    with pytest.raises(ModelError, match="corrupt or replaced model file"):
        load_ranker(broken)  # the checksum refuses it before LightGBM parses it
    # Without a checksum the file is parsed in a child process first: LightGBM segfaults on
    # this truncated model, which must cost a clear error, not this process.
    manifest = json.loads((trained / "control" / "manifest.json").read_text())
    del manifest["model_sha256"]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    model = (trained / "control" / "model.txt").read_bytes()
    (broken / "model.txt").write_bytes(model[: len(model) // 2])
    with pytest.raises(ModelError, match="corrupt model file"):
        load_ranker(broken)
    (broken / "model.txt").write_bytes(model)
    assert load_ranker(broken).version == manifest["model_version"]  # an intact file passes the check
    manifest = json.loads((trained / "test" / "manifest.json").read_text())
    manifest["features"] = [*manifest["features"], "no_such_feature"]
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no_such_feature"):
        load_ranker(wrong)
    with pytest.raises(ModelError, match="retrain"):
        load_ranker(trained / "control", "fs-0")


def test_evaluation_reports_all_rankers(trained, tiny_store, tiny_db, tmp_path):
    models = {arm: load_ranker(trained / arm) for arm in ("control", "test")}
    oracle = OracleRanker(load_truth(connect(tiny_db)), tiny_store)
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
    )
    assert result.requests == 60
    assert set(result.hitrate) == {"control", "test", "random", "popularity", "oracle"}
    assert max(result.hitrate.values()) == result.hitrate["oracle"]
    for name, (lo, hi) in result.ci95.items():
        assert lo <= result.hitrate[name] <= hi
    assert set(result.topic_hitrate) == {"control", "test", "popularity", "oracle"}
    assert max(result.topic_hitrate.values()) == result.topic_hitrate["oracle"]
    assert result.auc["truth"] > 0.5 and set(result.auc) >= {"control", "test", "popularity"}
    rows = dump.read_text().splitlines()
    assert rows[0] == "request_id,user_id,timestamp,ranker,rank,post_id"
    assert len(rows) == 1 + 60 * 5 * 5


def test_evaluation_never_recommends_a_post_liked_before(trained, tiny_store, tiny_db, tmp_path):
    import pandas as pd

    models = {"control": load_ranker(trained / "control")}
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
