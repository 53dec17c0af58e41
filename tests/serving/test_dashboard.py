"""The dashboard's endpoints in process (auth, headers, static files, the JSON) and its pure parts."""

from __future__ import annotations

import base64
import math
import sqlite3

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.exposure import MemoryExposureSink
from gateway.serving.dashboard.auth import DASHBOARD_TOKEN_ENV, presented_token, token_matches
from gateway.serving.dashboard.cache import ResultsCache, finite, last_error_line
from gateway.serving.dashboard.live import Traffic, histogram_quantile, read_sample, traffic
from gateway.serving.deps import ADMIN_TOKEN_ENV
from gateway.serving.main import create_app
from gateway.serving.routes.dashboard import plotly_js
from tests.conftest import write_config

VIEWER, ADMIN = "viewer-secret-1", "admin-secret-2"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def client(tiny_store_dir, tiny_models, tmp_path_factory):
    """The gateway on the tiny world's features and models, with a database of its own that
    has no exposures table (its exposures go to memory)."""
    root = tmp_path_factory.mktemp("dashboard-app")
    sqlite3.connect(root / "empty.db").close()
    db = f"sqlite:///{root / 'empty.db'}"
    config = write_config(root / "config.yaml", db=db, features_dir=tiny_store_dir.parent, models=tiny_models)
    app = create_app(config_path=config, exposure_sink=MemoryExposureSink())
    with TestClient(app) as c:
        yield c


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv(DASHBOARD_TOKEN_ENV, VIEWER)
    monkeypatch.setenv(ADMIN_TOKEN_ENV, ADMIN)
    # At the default (nice 19 + SCHED_IDLE) a busy shared test machine can starve the analysis for minutes.
    monkeypatch.setenv("RECSYS_DASHBOARD__NICE", "0")


PATHS = ("/dashboard", "/dashboard/data", "/dashboard/static/plotly.min.js")


@pytest.mark.parametrize("path", PATHS)
def test_off_without_any_token(client, monkeypatch, path):
    monkeypatch.delenv(DASHBOARD_TOKEN_ENV, raising=False)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    r = client.get(path, headers=basic("x", ""))
    assert r.status_code == 404 and DASHBOARD_TOKEN_ENV in r.json()["detail"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("anyone", "wrong"),
        basic("anyone", ""),
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Token {VIEWER}"},
    ],
)
def test_401_with_a_challenge_without_the_token(client, tokens, path, headers):
    r = client.get(path, headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_the_token_in_the_url_is_not_accepted(client, tokens):
    assert client.get("/dashboard", params={"token": VIEWER}).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [basic("anyone", VIEWER), basic("", VIEWER), basic("ops", ADMIN), {"Authorization": f"Bearer {VIEWER}"}],
)
def test_viewer_or_admin_token_as_basic_password_or_bearer(client, tokens, headers):
    r = client.get("/dashboard", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "unsafe" not in csp
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"
    assert "dashboard/static/plotly.min.js" in r.text and "http" not in r.text  # nothing from elsewhere


def test_static_files_plotly_from_the_package(client, tokens):
    auth = basic("x", VIEWER)
    r = client.get("/dashboard/static/plotly.min.js", headers={**auth, "Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.content == plotly_js().read_bytes()
    assert r.headers["content-type"].startswith("text/javascript")
    zipped = client.get("/dashboard/static/plotly.min.js", headers={**auth, "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.content == r.content  # httpx unzips
    again = client.get(
        "/dashboard/static/plotly.min.js", headers={**auth, "If-None-Match": r.headers["ETag"]}
    )
    assert again.status_code == 304
    assert (
        client.get("/dashboard/static/dashboard.css", headers=auth)
        .headers["content-type"]
        .startswith("text/css")
    )
    for name in ("nope.js", "..%2Fdeps.py", "index.html"):
        assert client.get(f"/dashboard/static/{name}", headers=auth).status_code == 404


def test_data_now_and_results_never_leak_secrets(client, tokens):
    auth = basic("x", VIEWER)
    first = client.get("/dashboard/data", headers=auth)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    body = first.json()
    assert [a["name"] for a in body["now"]["experiment"]["arms"]] == ["control", "test"]
    assert body["now"]["exposure_log"]["state"] == "healthy"
    assert body["now"]["serving"]["compiled_inference"] in (True, False)
    results = client.app.state.dashboard_results.wait(120)
    assert results.data is not None and results.error is None, results.error
    # The tiny world has no exposures table: the analysis says so instead of failing.
    again = client.get("/dashboard/data", headers=auth)
    assert "no exposures table" in again.json()["results"]["analysis"]["message"]
    assert again.json()["results"]["age_s"] >= 0
    for secret in (VIEWER, ADMIN, "sqlite", "redis://"):
        assert secret not in again.text


def test_live_traffic_counts_the_requests_served(client, tokens, tiny_store):
    before = client.get("/dashboard/data", headers=basic("x", VIEWER)).json()["now"]["traffic"]["arms"]
    for user in tiny_store.user_ids[:12]:
        r = client.get("/post/recommendations/", params={"id": int(user), "time": "2021-12-20T19:00:00"})
        assert r.status_code == 200
    arms = client.get("/dashboard/data", headers=basic("x", VIEWER)).json()["now"]["traffic"]["arms"]
    served = sum(a["requests"] for a in arms.values()) - sum(a["requests"] for a in before.values())
    assert served >= 12 and all(a["p99_ms"] >= a["p50_ms"] > 0 for a in arms.values() if a["requests"])


# ---- pure parts ----


def test_presented_token():
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("basic " + base64.b64encode(b"u:p:w").decode()) == "p:w"  # colons in the password
    assert presented_token("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert presented_token(None) is None and presented_token("Bearer ") is None
    assert (
        token_matches("b", ["a", "b"]) and not token_matches("c", ["a", "b"]) and not token_matches("a", [])
    )


def test_histogram_quantile_as_prometheus():
    buckets = {0.01: 50.0, 0.02: 90.0, 0.05: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.015)  # halfway through (0.01, 0.02]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.047)
    assert histogram_quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {0.01: 1.0, math.inf: 10.0}) == 0.01  # beyond the last bucket


def test_traffic_from_the_registry():
    registry = CollectorRegistry()
    requests = Counter(
        "recsys_requests_total", "", ["endpoint", "arm", "model_version", "status"], registry=registry
    )
    latency = Histogram(
        "recsys_request_latency_seconds", "", ["arm", "model_version"], buckets=(0.01, 0.1), registry=registry
    )
    errors = Counter(
        "recsys_errors_total", "", ["endpoint", "arm", "model_version", "status"], registry=registry
    )
    live = Traffic(registry, window_s=60)
    old = read_sample(registry, 100.0)
    for _ in range(20):
        requests.labels("recommendations", "control", "v1", "200").inc()
        latency.labels("control", "v1").observe(0.005)
    requests.labels("recommendations", "control", "v1", "503").inc()
    requests.labels("recommendations", "none", "none", "404").inc()  # a client error is not an error
    errors.labels("/x", "unknown", "unknown", "500").inc()
    shed = Counter("recsys_shed_total", "", ["overflow"], registry=registry)
    shed.labels("fallback").inc(3)
    Gauge("recsys_in_flight", "", registry=registry).set(2)
    now = traffic(old, read_sample(registry, 110.0))
    assert now["overload"] == {"shed:fallback": 3} and now["admission"] == {"in_flight": 2.0}
    assert now["window_s"] == 10.0
    assert now["arms"]["control"] == {"requests": 20, "errors": 1, "rps": 2.0, "p50_ms": 5.0, "p99_ms": 9.9}
    assert now["arms"]["unknown"]["errors"] == 1 and "none" not in now["arms"]
    assert sum(a["requests"] for a in live.now()["arms"].values()) == 20  # since the start


def test_finite_replaces_nan_and_infinity():
    assert finite({"a": [1.0, math.nan], "b": {"c": math.inf}, "d": "x"}) == {
        "a": [1.0, None],
        "b": {"c": None},
        "d": "x",
    }


def test_results_cache_reports_a_failing_worker():
    from gateway.config import Settings

    cache = ResultsCache(lambda: Settings(), command=["python3", "-c", "import sys; sys.exit('boom')"])
    assert cache.get().data is None  # starts a refresh, does not wait
    done = cache.wait(30)
    assert done.error == "the analysis failed: boom" and not done.computing
    assert cache.get().computing is False  # failed recently: not retried on every look
    ok = ResultsCache(lambda: Settings(), command=["python3", "-c", 'print(\'{"analysis": {"x": NaN}}\')'])
    ok.get()
    assert ok.wait(30).data == {"analysis": {"x": None}}


def test_the_error_shown_names_the_exception():
    trace = "Traceback (most recent call last):\n  File x\nsqlite3.OperationalError: no such table: t\n\n(Background on this error at: https://sqlalche.me/e/21/e3q8)\n"
    assert last_error_line(trace) == "sqlite3.OperationalError: no such table: t"
    assert last_error_line("boom\n") == "boom" and last_error_line("") == ""
