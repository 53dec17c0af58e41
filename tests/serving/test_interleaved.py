"""Interleaved requests in process (real lifespan, tiny world): the merge, its log, its headers."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gateway.assignment import INTERLEAVED, assign
from gateway.exposure import MemoryExposureSink
from gateway.interleaving import TEAM_A, interleave
from gateway.serving.main import create_app
from gateway.serving.recommend import log_odds, ranked, retrieve, score_request
from gateway.serving.routes.recommendations import to_epoch_seconds
from tests.conftest import write_config

WHEN = "2021-12-20T19:00:00"


@pytest.fixture(scope="module")
def interleaved(tiny_db, tiny_store_dir, tiny_models, tmp_path_factory):
    config = write_config(
        tmp_path_factory.mktemp("interleaved") / "config.yaml",
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        interleave_weight=100,
    )
    sink = MemoryExposureSink()
    app = create_app(config_path=config, exposure_sink=sink)
    with TestClient(app) as client:
        yield client, sink, app


def _users(app, store, group: str, n: int) -> list[int]:
    experiment = app.state.serving.snapshot.experiment
    return [int(u) for u in store.user_ids if assign(experiment, int(u)).arm == group][:n]


def _expected_lists(app, store, user: int, when: str, limit: int, topic=None):
    """Each ranker's own top ``limit`` for the request, computed here from the snapshot (over the
    request's candidate set, shared by both rankers)."""
    snapshot, catalogue = app.state.serving.snapshot, app.state.catalogue
    u, s = int(store.user_index([user])[0]), to_epoch_seconds(np.datetime64(when).astype(object))
    excluded = [store.liked_before(u, s)]
    cand = retrieve(snapshot, store, catalogue, u, s, topic, None, excluded[0])  # one set for both
    posts = None if cand is None else cand.posts
    lists = []
    for arm in ("control", "test"):
        scores = score_request(snapshot.rankers[arm], store, u, s, posts)[1]
        lists.append(
            ranked(log_odds(scores), store, catalogue, excluded, limit, topic, None, 0.5, posts).tolist()
        )
    return lists, excluded[0]


def test_interleaved_requests_serve_the_team_draft_of_both_rankers(interleaved, tiny_store):
    client, sink, app = interleaved
    users = _users(app, tiny_store, INTERLEAVED, 15)
    assert len(users) == 15
    snapshot = app.state.serving.snapshot
    version = f"interleaved:{snapshot.versions['control']}+{snapshot.versions['test']}"
    for i, user in enumerate(users):
        request_id = f"il-{i}"
        r = client.get(
            "/post/recommendations/",
            params={"id": user, "time": WHEN, "limit": 8},
            headers={"X-Request-ID": request_id},
        )
        assert r.status_code == 200, r.text
        assert r.json()["exp_group"] == INTERLEAVED == r.headers["X-Exp-Group"]
        assert r.headers["X-Model-Version"] == version
        served = [p["id"] for p in r.json()["recommendations"]]
        lists, liked = _expected_lists(app, tiny_store, user, WHEN, 8)
        merged = interleave(lists[0], lists[1], 8, request_id)
        catalogue_ids = app.state.catalogue.post_ids
        assert served == [int(catalogue_ids[i]) for i in merged.items]
        assert not set(served) & set(catalogue_ids[liked].tolist())  # liked-before exclusion, both teams
        app.state.writer.flush()
        row = sink.rows[request_id]
        assert row.arm == INTERLEAVED and row.in_experiment and row.model_version == version
        assert row.post_ids == served
        assert row.teams == [("control" if t == TEAM_A else "test") for t in merged.teams]
        assert row.model_versions == {
            "control": snapshot.versions["control"],
            "test": snapshot.versions["test"],
        }


def test_the_merge_is_deterministic_per_request_id(interleaved, tiny_store):
    client, _, app = interleaved
    user = _users(app, tiny_store, INTERLEAVED, 1)[0]

    def get(request_id: str):
        r = client.get(
            "/post/recommendations/",
            params={"id": user, "time": WHEN, "limit": 10},
            headers={"X-Request-ID": request_id},
        )
        return [p["id"] for p in r.json()["recommendations"]]

    assert get("same-id") == get("same-id")
    assert len({tuple(get(f"other-{i}")) for i in range(12)}) > 1  # the coins differ by request


def test_topic_and_mood_apply_to_both_teams(interleaved, tiny_store):
    client, sink, app = interleaved
    for user in _users(app, tiny_store, INTERLEAVED, 5):
        r = client.get(
            "/post/recommendations/",
            params={"id": user, "time": WHEN, "limit": 6, "topic": "sport", "mood": "football goal"},
        )
        assert r.status_code == 200 and {p["topic"] for p in r.json()["recommendations"]} == {"sport"}
        app.state.writer.flush()
        row = sink.rows[r.headers["X-Request-ID"]]
        assert len(row.teams) == 6 and set(row.teams) == {"control", "test"}


def test_ab_users_are_unchanged_and_cold_start_is_not_interleaved(interleaved, tiny_store):
    client, sink, app = interleaved
    for group in ("control", "test"):
        user = _users(app, tiny_store, group, 1)[0]
        r = client.get("/post/recommendations/", params={"id": user, "time": WHEN})
        assert r.json()["exp_group"] == group
        app.state.writer.flush()
        assert sink.rows[r.headers["X-Request-ID"]].teams is None
    experiment = app.state.serving.snapshot.experiment
    stranger = next(u for u in range(90_000_000, 90_001_000) if assign(experiment, u).arm == INTERLEAVED)
    r = client.get("/post/recommendations/", params={"id": stranger, "time": WHEN, "topic": "sport"})
    assert r.status_code == 200 and r.json()["exp_group"] == INTERLEAVED
    assert r.headers["X-Model-Version"] == "cold-start-popularity-1"
    app.state.writer.flush()
    assert sink.rows[r.headers["X-Request-ID"]].teams is None  # nothing to credit: not analysed


def test_experiment_endpoint_and_metrics_show_the_interleaved_group(interleaved):
    client, _, _ = interleaved
    exp = client.get("/experiment").json()
    assert exp["interleave_weight"] == pytest.approx(0.5)
    assert [a["weight"] for a in exp["arms"]] == pytest.approx([0.25, 0.25])
    assert 'arm="interleaved"' in client.get("/metrics").text
