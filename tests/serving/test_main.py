"""The gateway in process (FastAPI TestClient, real lifespan) on the tiny world."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gateway.assignment import md5_bucket
from gateway.exposure import MemoryExposureSink
from gateway.serving.main import create_app
from tests.conftest import write_config

WHEN = "2021-12-20T19:00:00"


@pytest.fixture(scope="module")
def served(tiny_db, tiny_store_dir, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    config = write_config(
        root / "config.yaml",
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    sink = MemoryExposureSink()
    app = create_app(config_path=config, exposure_sink=sink)
    with TestClient(app) as client:
        yield client, sink, app


def test_recommendations_shape_headers_and_exposure(served, tiny_store):
    client, sink, app = served
    user = int(tiny_store.user_ids[3])
    r = client.get("/post/recommendations/", params={"id": user, "time": WHEN, "limit": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["exp_group"] in ("control", "test") and len(body["recommendations"]) == 7
    assert set(body["recommendations"][0]) == {"id", "text", "topic"}
    expected_arm = "control" if md5_bucket(user, "test-salt") < 50 else "test"
    assert body["exp_group"] == expected_arm == r.headers["X-Exp-Group"]
    assert r.headers["X-Model-Version"].startswith(expected_arm)
    app.state.writer.flush()
    row = sink.rows[r.headers["X-Request-ID"]]
    assert (
        row.user_id == user
        and row.arm == expected_arm
        and row.post_ids == [p["id"] for p in body["recommendations"]]
    )
    assert row.in_experiment and row.model_version == r.headers["X-Model-Version"]


def test_never_a_post_liked_before_time(served, tiny_store):
    client, _, _ = served
    for u in range(0, 40):
        user = int(tiny_store.user_ids[u])
        r = client.get("/post/recommendations/", params={"id": user, "time": WHEN, "limit": 100})
        seconds = int(np.datetime64(WHEN, "s").astype(np.int64))
        liked = set(tiny_store.post_ids[tiny_store.liked_before(u, seconds)].tolist())
        served_ids = {p["id"] for p in r.json()["recommendations"]}
        assert not liked & served_ids
        assert len(served_ids) == 100


def test_topic_filter(served, tiny_store):
    client, _, _ = served
    r = client.get(
        "/post/recommendations/",
        params={"id": int(tiny_store.user_ids[0]), "time": WHEN, "topic": "sport", "limit": 5},
    )
    assert r.status_code == 200 and {p["topic"] for p in r.json()["recommendations"]} == {"sport"}
    r = client.get(
        "/post/recommendations/", params={"id": int(tiny_store.user_ids[0]), "time": WHEN, "topic": "cooking"}
    )
    assert r.status_code == 422 and "valid topics" in r.json()["detail"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"time": WHEN}, 422),
        ({"id": "abc", "time": WHEN}, 422),
        ({"id": 5, "time": "yesterday"}, 422),
        ({"id": 5, "time": WHEN, "limit": 0}, 422),
        ({"id": 5, "time": WHEN, "limit": 101}, 422),
        ({"id": -3, "time": WHEN}, 422),
        ({"id": 2**40, "time": WHEN}, 422),
        ({"id": 199, "time": WHEN}, 404),
        ({"id": 200}, 422),
    ],
)
def test_bad_input(served, params, status):
    client, _, _ = served
    r = client.get("/post/recommendations/", params=params)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_users_posts_feeds(served, tiny_store):
    client, _, _ = served
    user = int(tiny_store.user_ids[0])
    r = client.get(f"/user/{user}")
    assert r.status_code == 200 and r.json()["user_id"] == user and r.json()["os"] in ("Android", "iOS")
    assert client.get("/user/1").status_code == 404
    post = int(tiny_store.post_ids[0])
    assert client.get(f"/post/{post}").json()["id"] == post
    assert client.get("/post/999999").status_code == 404
    feed = client.get(f"/user/{user}/feed", params={"limit": 4}).json()
    assert len(feed) == 4 and feed[0]["timestamp"] >= feed[-1]["timestamp"]
    similar = client.get(f"/post/{post}/feed", params={"limit": 3}).json()
    assert len(similar) == 3 and post not in {p["id"] for p in similar}
    assert similar[0]["similarity"] >= similar[-1]["similarity"]


def test_ops_endpoints(served):
    client, _, _ = served
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] and set(ready["models"]) == {"control", "test"}
    exp = client.get("/experiment").json()
    assert exp["name"] == "test-exp" and [a["name"] for a in exp["arms"]] == ["control", "test"]
    metrics = client.get("/metrics").text
    assert "recsys_requests_total" in metrics and "recsys_request_latency_seconds_bucket" in metrics
    schema = client.get("/openapi.json").json()
    assert "/post/recommendations/" in schema["paths"] and "/admin/reload" in schema["paths"]


def test_admin_reload_needs_token(served, monkeypatch):
    client, _, _ = served
    monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
    assert client.post("/admin/reload").status_code == 403
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "s3cret")
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["reloaded"]


def test_events_make_new_likes_visible_and_excluded(served, tiny_store, monkeypatch):
    client, _, app = served
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "tok")
    auth = {"Authorization": "Bearer tok"}
    user = int(tiny_store.user_ids[7])
    first = client.get(
        "/post/recommendations/", params={"id": user, "time": "2021-12-28T10:00:00", "limit": 3}
    ).json()
    top = first["recommendations"][0]["id"]
    body = {
        "events": [
            {"user_id": user, "post_id": top, "action": "view", "timestamp": "2021-12-28T10:00:20"},
            {"user_id": user, "post_id": top, "action": "like", "timestamp": "2021-12-28T10:01:00"},
        ]
    }
    assert client.post("/events", json=body).status_code in (401, 403)
    r = client.post("/events", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["accepted"] == 2
    later = client.get(
        "/post/recommendations/", params={"id": user, "time": "2021-12-28T11:00:00", "limit": 100}
    ).json()
    assert top not in {p["id"] for p in later["recommendations"]}
    again = client.get(
        "/post/recommendations/", params={"id": user, "time": "2021-12-28T10:00:30", "limit": 3}
    ).json()
    assert again["recommendations"][0]["id"] == top  # before the like happened, it is still eligible
    bad = client.post(
        "/events",
        json={
            "events": [{"user_id": 1, "post_id": top, "action": "like", "timestamp": "2021-12-28T10:01:00"}]
        },
        headers=auth,
    )
    assert bad.status_code == 404 and "unknown user" in bad.json()["detail"]
    assert client.post("/events", json={"events": []}, headers=auth).status_code == 422


FOOTBALL = "football goal striker penalty chelsea arsenal liverpool premiership midfielder keeper"


def _topic_share(client, users, topic, **params):
    shares = []
    for user in users:
        recs = client.get(
            "/post/recommendations/", params={"id": user, "time": WHEN, "limit": 5, **params}
        ).json()["recommendations"]
        shares.append(sum(p["topic"] == topic for p in recs) / len(recs))
    return float(np.mean(shares))


def test_mood_moves_the_feed_toward_matching_texts(served, tiny_store):
    client, sink, app = served
    users = [int(u) for u in tiny_store.user_ids[100:160]]
    plain = _topic_share(client, users, "sport")
    moody = _topic_share(client, users, "sport", mood=FOOTBALL)
    assert moody >= plain + 0.3, (plain, moody)
    r = client.get(
        "/post/recommendations/", params={"id": users[0], "time": WHEN, "mood": "  " + FOOTBALL + "  "}
    )
    app.state.writer.flush()
    row = sink.rows[r.headers["X-Request-ID"]]
    assert row.mood == FOOTBALL and not row.cold_start


@pytest.mark.parametrize("mood", ["", "   ", "x" * 201, "\x00\x01\x02", "12345 !!!", "ok\x07"])
def test_bad_moods_are_422(served, tiny_store, mood):
    client, _, _ = served
    r = client.get(
        "/post/recommendations/", params={"id": int(tiny_store.user_ids[0]), "time": WHEN, "mood": mood}
    )
    assert r.status_code == 422 and "mood" in r.json()["detail"]


def test_cold_start_serves_content_and_is_logged(served, tiny_store):
    client, sink, app = served
    stranger = 99_999_999
    r = client.get(
        "/post/recommendations/", params={"id": stranger, "time": WHEN, "topic": "sport", "limit": 5}
    )
    assert r.status_code == 200, r.text
    assert {p["topic"] for p in r.json()["recommendations"]} == {"sport"} and len(
        r.json()["recommendations"]
    ) == 5
    assert r.headers["X-Model-Version"] == "cold-start-popularity-1"
    assert r.json()["exp_group"] == ("control" if md5_bucket(stranger, "test-salt") < 50 else "test")
    app.state.writer.flush()
    row = sink.rows[r.headers["X-Request-ID"]]
    assert row.cold_start and row.topic == "sport"
    r = client.get("/post/recommendations/", params={"id": stranger, "time": WHEN, "mood": FOOTBALL})
    assert r.status_code == 200 and sum(p["topic"] == "sport" for p in r.json()["recommendations"]) >= 3
    r = client.get("/post/recommendations/", params={"id": stranger, "time": WHEN})
    assert r.status_code == 404 and "topic" in r.json()["detail"] and "mood" in r.json()["detail"]


def test_request_bodies_are_bounded(served, monkeypatch):
    client, _, _ = served
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "tok")
    auth = {"Authorization": "Bearer tok"}
    huge = (
        b'{"events": ['
        + b'{"user_id": 1, "post_id": 1, "action": "view", "timestamp": "2021-12-01T00:00:00"},' * 40_000
    )
    r = client.post("/events", content=huge, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b" " * 100_000

    r = client.post("/events", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_the_admin_token_never_reaches_the_logs(served, monkeypatch, caplog):
    client, _, _ = served
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "s3cret-token-value")
    caplog.set_level("DEBUG")
    client.post("/admin/reload", headers={"Authorization": "Bearer wrong-token-value"})
    client.post("/admin/reload", headers={"Authorization": "Bearer s3cret-token-value"})
    assert "s3cret-token-value" not in caplog.text and "wrong-token-value" not in caplog.text


def test_a_serving_process_freezes_what_it_loaded_out_of_the_collectors_reach(
    tiny_db, tiny_store_dir, tiny_models, tmp_path
):
    import gc

    config = write_config(
        tmp_path / "config.yaml", db=tiny_db, features_dir=tiny_store_dir.parent, models=tiny_models
    )
    gc.unfreeze()
    try:
        with TestClient(create_app(config_path=config, exposure_sink=MemoryExposureSink())) as client:
            assert client.get("/ready").status_code == 200 and gc.get_freeze_count() == 0  # tests: off
        with TestClient(
            create_app(config_path=config, exposure_sink=MemoryExposureSink(), freeze_gc=True)
        ) as client:
            assert client.get("/ready").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the store, catalogue and models loaded
    finally:
        gc.unfreeze()


def test_models_are_probed_on_posts_spread_over_the_catalogue(tiny_store, monkeypatch):
    from gateway.serving import state

    monkeypatch.setattr(state, "PROBE_POSTS", 10)
    users, times = np.array([3]), np.array([int(tiny_store.manifest["day0"]) + 5 * 86400])
    rows = state.probe_rows(tiny_store, users, times)
    whole = tiny_store.compute(users, times)
    posts = np.linspace(0, len(tiny_store.post_ids) - 1, 10).astype(np.int64)
    for name, values in rows.items():
        assert len(values) == 10
        np.testing.assert_array_equal(values, whole[name][posts], err_msg=name)
    monkeypatch.setattr(state, "PROBE_POSTS", 10**9)  # more than the catalogue: each post once
    assert len(next(iter(state.probe_rows(tiny_store, users, times).values()))) == len(tiny_store.post_ids)
