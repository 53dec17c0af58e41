"""Two-stage serving: ``candidates: all`` is exactly the single-stage path, a candidate set
holding the catalogue's top gives the same lists, and a smaller one ranks only retrieved posts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gateway.assignment import assign
from gateway.exposure import MemoryExposureSink
from gateway.ranking import top_k
from gateway.serving.main import create_app
from gateway.serving.recommend import COLD_START_VERSION, log_odds, recommend
from gateway.serving.state import Catalogue, build_snapshot
from tests.conftest import write_config

DAY = 86400


@pytest.fixture(scope="module")
def serving_parts(tiny_db, tiny_store_dir, tiny_store, tiny_models, tmp_path_factory):
    config = write_config(
        tmp_path_factory.mktemp("two-stage") / "config.yaml",
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        serving={"candidates": 60},
    )
    snapshot = build_snapshot(config, tiny_store)
    return config, snapshot, Catalogue.load(tiny_store_dir, tiny_store)


def _reference(snapshot, store, user: int, seconds: int, limit: int, topic_code: int | None) -> list[int]:
    """Today's list, computed independently: the arm's scores over the whole catalogue."""
    u = int(store.user_index([user])[0])
    arm = assign(snapshot.experiment, user).arm
    scores = log_odds(snapshot.rankers[arm].score(store, np.array([u]), np.array([seconds]))[0])
    if topic_code is not None:
        scores = np.where(store.posts["topic"] == topic_code, scores, -np.inf)
    best = top_k(scores[None, :], limit, [store.liked_before(u, seconds)])[0]
    return best[best >= 0].tolist()


def _requests(store, n=20):
    seconds = store.manifest["day0"] + (store.manifest["days"] - 2) * DAY + 20 * 3600
    users = [int(u) for u in store.user_ids[:: max(1, len(store.user_ids) // n)][:n]]
    return users, seconds


def test_candidates_all_gives_exactly_todays_lists(serving_parts, tiny_store):
    _, snapshot, catalogue = serving_parts
    everything = dataclasses.replace(snapshot, candidates=None)
    users, seconds = _requests(tiny_store)
    for i, user in enumerate(users):
        topic = catalogue.topic_names[i % len(catalogue.topic_names)] if i % 3 == 0 else None
        code = catalogue.topic_names.index(topic) if topic else None
        got = recommend(everything, tiny_store, catalogue, user, seconds, 7, topic)
        assert got.candidates is None and got.retrieval_version is None
        assert got.post_idx.tolist() == _reference(snapshot, tiny_store, user, seconds, 7, code)


def test_a_candidate_set_holding_the_catalogue_gives_the_same_lists(serving_parts, tiny_store):
    """Every post retrieved (the tiny world's popular lists hold all its posts): the candidates'
    features and scores are the catalogue's, so the lists are identical."""
    _, snapshot, catalogue = serving_parts
    whole = dataclasses.replace(snapshot, candidates=100_000)
    users, seconds = _requests(tiny_store)
    for user in users:
        got = recommend(whole, tiny_store, catalogue, user, seconds, 5)
        u = int(tiny_store.user_index([user])[0])
        assert len(got.candidates) == len(tiny_store.post_ids) - len(tiny_store.liked_before(u, seconds))
        assert got.post_idx.tolist() == _reference(snapshot, tiny_store, user, seconds, 5, None)


def test_two_stage_ranks_the_retrieved_posts_with_the_arms_ranker(serving_parts, tiny_store):
    _, snapshot, catalogue = serving_parts
    users, seconds = _requests(tiny_store)
    agree = 0
    for user in users:
        got = recommend(snapshot, tiny_store, catalogue, user, seconds, 5)
        u = int(tiny_store.user_index([user])[0])
        assert got.retrieval_version == tiny_store.retrieval.version
        assert 20 <= len(got.candidates) <= 80 and len(got.features["topic"]) == len(got.candidates)
        assert np.isin(got.post_idx, got.candidates).all()
        assert not np.isin(got.post_idx, tiny_store.liked_before(u, seconds)).any()
        # the best of the candidates by the arm's own whole-catalogue scores
        arm = assign(snapshot.experiment, user).arm
        scores = snapshot.rankers[arm].score(tiny_store, np.array([u]), np.array([seconds]))[0]
        order = got.candidates[np.lexsort((got.candidates, -scores[got.candidates]))]
        assert got.post_idx.tolist() == order[:5].tolist()
        agree += got.post_idx.tolist() == _reference(snapshot, tiny_store, user, seconds, 5, None)
    assert agree >= 1  # retrieval often holds the catalogue's whole top 5
    cold = recommend(snapshot, tiny_store, catalogue, 10**9, seconds, 5, catalogue.topic_names[1])
    assert cold.model_version == COLD_START_VERSION and len(cold.post_idx) == 5
    assert (tiny_store.posts["topic"][cold.post_idx] == 1).all()


def test_the_exposure_log_records_the_candidate_set(serving_parts, tiny_store):
    config, _, _ = serving_parts
    sink = MemoryExposureSink()
    user = int(tiny_store.user_ids[3])
    with TestClient(create_app(config_path=config, exposure_sink=sink)) as client:
        r = client.get(
            "/post/recommendations/", params={"id": user, "time": "2021-12-20T19:00:00", "limit": 5}
        )
        assert r.status_code == 200
        app_store = client.app.state.store
    (row,) = sink.rows.values()
    assert 20 <= row.candidates <= 80
    assert row.retrieval_version == app_store.retrieval.version
