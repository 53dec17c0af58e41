"""Shadow scoring in process (real lifespan, tiny world): rows for every served request under light
load, drops counted under overload, responses unchanged, promotion by config edit and reload."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import yaml
from fastapi.testclient import TestClient

from gateway.exposure import Exposure, MemoryExposureSink, ShadowExposure
from gateway.serving.main import create_app
from gateway.serving.shadow import lower_priority
from tests.conftest import SHADOW_TEST_SERVING, shadowed_arms, write_config
from tests.serving.test_interleaved import WHEN, _expected_lists, _users

TOKEN = "shadow-token"


def _config(path, tiny_db, tiny_store_dir, tiny_models, *, shadow: bool = True, serving=None):
    return write_config(
        path,
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        arms=shadowed_arms(tiny_models, shadow=shadow),
        serving={**SHADOW_TEST_SERVING, **(serving or {})},
    )


def _serve(config):
    sink = MemoryExposureSink()
    return sink, create_app(config_path=config, exposure_sink=sink)


def _rows(sink, kind):
    return {k: v for k, v in sink.rows.items() if isinstance(v, kind)}


def _requests(app, store, n_per_arm: int = 12):
    users = _users(app, store, "control", n_per_arm) + _users(app, store, "test", n_per_arm)
    return [(f"sh-{i}", user) for i, user in enumerate(users)]


def _get(client, request_id, user, limit=6):
    r = client.get(
        "/post/recommendations/",
        params={"id": user, "time": WHEN, "limit": limit},
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 200, r.text
    return r


def test_light_load_every_shadowed_request_gets_its_row_and_responses_are_unchanged(
    tiny_db, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    bodies = {}
    for shadow in (False, True):
        sink, app = _serve(
            _config(tmp_path / f"c{shadow}.yaml", tiny_db, tiny_store_dir, tiny_models, shadow=shadow)
        )
        with TestClient(app) as client:
            requests = _requests(app, tiny_store)
            bodies[shadow] = [_get(client, rid, user).content for rid, user in requests]
            shadow_version = app.state.serving.snapshot.shadow_versions.get("test")
            control_version = app.state.serving.snapshot.versions["control"]
            lists = {rid: _expected_lists(app, tiny_store, user, WHEN, 6)[0] for rid, user in requests}
            post_ids = app.state.catalogue.post_ids
        # the lifespan has ended: the shadow queue is finished and both logs are flushed
        exposures, shadows = _rows(sink, Exposure), _rows(sink, ShadowExposure)
        if not shadow:
            assert not shadows and all(e.shadow_version is None for e in exposures.values())
            continue
        assert shadow_version == control_version
        test_requests = {rid for rid, e in exposures.items() if e.arm == "test"}
        assert len(test_requests) == 12
        assert {e.request_id for e in exposures.values() if e.shadow_version} == test_requests
        assert set(shadows) == {(rid, shadow_version) for rid in test_requests}  # none dropped
        for (rid, _), row in shadows.items():
            assert row.error is None and row.arm == "test" and row.latency_ms > 0
            assert row.post_ids == [int(post_ids[i]) for i in lists[rid][0]]  # what control would serve
    assert bodies[True] == bodies[False]  # the shadow never changes what is served


def test_overload_drops_shadow_work_and_counts_it(tiny_db, tiny_store_dir, tiny_models, tiny_store, tmp_path):
    config = _config(tmp_path / "c.yaml", tiny_db, tiny_store_dir, tiny_models, serving={"shadow_queue": 1})
    sink, app = _serve(config)
    with TestClient(app) as client:
        shadow = app.state.serving.snapshot.shadows["test"]
        predict, gate = shadow.predict, threading.Event()

        def stuck(*args, **kwargs):  # the shadow worker cannot keep up: it waits until released
            gate.wait(30)
            return predict(*args, **kwargs)

        shadow.predict = stuck
        users = _users(app, tiny_store, "test", 15)
        for i, user in enumerate(users):
            _get(client, f"ov-{i}", user)
        metrics = client.get("/metrics").text
        gate.set()
    line = rf'recsys_shadow_dropped_total{{arm="test",model_version="{re.escape(shadow.version)}"}} ([0-9.]+)'
    dropped = float(re.search(line, metrics).group(1))
    exposures, shadows = _rows(sink, Exposure), _rows(sink, ShadowExposure)
    assert len(exposures) == 15 and all(e.shadow_version == shadow.version for e in exposures.values())
    # one job in the worker, one in the queue of 1: every other request's shadow work was dropped
    assert dropped == 15 - len(shadows) >= 13


def test_a_shadow_is_loaded_like_an_arm_and_promoted_by_config_and_reload(
    tiny_db, tiny_store_dir, tiny_models, tiny_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    config = _config(tmp_path / "c.yaml", tiny_db, tiny_store_dir, tiny_models)
    sink, app = _serve(config)
    with TestClient(app) as client:
        snapshot = app.state.serving.snapshot
        shadow_version = snapshot.shadow_versions["test"]
        arm = next(a for a in client.get("/experiment").json()["arms"] if a["name"] == "test")
        assert arm["shadow_model_version"] == shadow_version and arm["shadow_model_path"].endswith("control")
        user = _users(app, tiny_store, "test", 1)[0]
        before = _get(client, "before", user).json()["recommendations"]

        # a broken shadow is refused like a broken arm model; the old snapshot keeps serving
        data = yaml.safe_load(config.read_text())
        data["experiment"]["arms"][1]["shadow"] = str(tmp_path / "no-such-model")
        config.write_text(yaml.safe_dump(data))
        r = client.post("/admin/reload", headers=auth)
        assert r.status_code == 422 and "arm test shadow" in r.json()["detail"]
        assert app.state.serving.snapshot is snapshot

        # promotion: the shadow's folder becomes the arm's model; no shadow any more
        data["experiment"]["arms"][1] = {"name": "test", "weight": 50, "model": str(tiny_models / "control")}
        config.write_text(yaml.safe_dump(data))
        assert client.post("/admin/reload", headers=auth).status_code == 200
        arm = next(a for a in client.get("/experiment").json()["arms"] if a["name"] == "test")
        assert arm["model_version"] == shadow_version and arm["shadow_model_version"] is None
        r = _get(client, "after", user)
        assert r.headers["X-Model-Version"] == shadow_version
        after = r.json()["recommendations"]
    shadows = _rows(sink, ShadowExposure)
    assert [p["id"] for p in after][:6] == shadows[("before", shadow_version)].post_ids  # what it shadowed
    assert after != before and _rows(sink, Exposure)["after"].shadow_version is None


def test_reload_rejects_unknown_keys_naming_key_and_section(
    tiny_db, tiny_store_dir, tiny_models, tmp_path, monkeypatch
):
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", TOKEN)
    config = _config(tmp_path / "c.yaml", tiny_db, tiny_store_dir, tiny_models)
    _, app = _serve(config)
    with TestClient(app) as client:
        data = yaml.safe_load(config.read_text())
        data["experiment"]["arms"][0]["wieght"] = data["experiment"]["arms"][0].pop("weight")
        config.write_text(yaml.safe_dump(data))
        r = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 422
        assert "unknown key 'wieght' in section experiment.arms[0]" in r.json()["detail"]


def test_the_shadow_thread_lowers_its_own_priority_only():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # 19 when pytest runs niced
    seen = {}

    def run():
        seen["changed"] = lower_priority(19)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == {"changed": True, "nice": 19}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # this thread is untouched
    assert lower_priority(0) is False


def test_scoring_in_chunks_between_requests_gives_the_same_scores(tiny_store, tiny_models):
    from gateway.rankers.libraries import load_ranker
    from gateway.serving.shadow import CHUNK_ROWS, Idle, predict_in_gaps

    ranker = load_ranker(tiny_models / "control", threads=1)
    features = tiny_store.compute([3], [tiny_store.manifest["day0"] + 20 * 86400])
    rows = len(tiny_store.post_ids)
    gaps = []
    scores, busy = predict_in_gaps(ranker, features, rows, lambda: gaps.append(1))
    assert len(gaps) == -(-rows // CHUNK_ROWS) and busy > 0
    assert np.array_equal(scores, ranker.predict(features))
    idle = Idle()
    idle.enter()
    idle.enter()
    idle.leave()
    assert not idle.wait(0)  # one request still in flight
    idle.leave()
    assert idle.wait(0)
