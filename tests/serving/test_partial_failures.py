"""Partial failures under load, on the real server: Redis (a server of its own, on its own port)
stopped and restarted under 4 clients, and a spill directory that cannot be written (a full
disk: the spill file is /dev/full; a path that cannot be a directory) while the database is down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid

import httpx
import numpy as np
import pytest

from gateway.features.redis_history import RedisHistory
from gateway.serving.breaker import Breaker
from gateway.serving.server import free_port
from tests.conftest import LiveServer, write_config

WHEN = "2021-12-26T12:00:00"
PATH = "/post/recommendations/"


class RedisServer:
    """``redis-server`` on a free port, persisting to a temporary directory (a restart keeps
    what was SAVEd)."""

    def __init__(self, root) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.root = root
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root), "--save", ""]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server not found")
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


class Clients:
    """``n`` closed-loop clients until stopped; every status and served-by header."""

    def __init__(self, url: str, users: np.ndarray, n: int = 4) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, users, i)) for i in range(n)]
        for t in self._threads:
            t.start()

    def _run(self, url: str, users: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                r = http.get(url + PATH, params={"id": int(rng.choice(users)), "time": WHEN})
                self.statuses.append(r.status_code)

    def stop(self) -> list[int]:
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.statuses


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_redis_stopped_under_load_costs_no_recommendation_and_recovers(
    redis_server, tiny_store_dir, tiny_models, tiny_store, tiny_db, tmp_path
):
    prefix = f"recsys-outage-{uuid.uuid4().hex[:8]}"
    history = RedisHistory.connect(redis_server.url, tiny_store, prefix, require_pushed=False)
    history.push()
    history.client.save()  # the restarted server loads it
    history.close()
    config = write_config(
        tmp_path / "config.yaml",
        db=f"sqlite:///{tmp_path / 'exposures.db'}",  # not the shared world: its exposures are counted elsewhere
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        serving={
            "online_store": "redis",
            "redis_url": redis_server.url,
            "redis_prefix": prefix,
            "redis_breaker_cooldown_s": 0.5,
            "deadline_ms": 0,
        },
    )
    server = LiveServer(config, {})
    url = server.url
    clients = Clients(url, tiny_store.user_ids)
    try:
        time.sleep(1)
        assert httpx.get(url + "/ready").json()["online_store"]["breaker"] == "closed"
        redis_server.stop()  # the outage
        assert _wait_for(lambda: httpx.get(url + "/ready").json()["online_store"]["breaker"] != "closed")
        assert _metric(url, "recsys_online_store_breaker_open") == 1.0
        served_before = len(clients.statuses)
        time.sleep(2)
        assert len(clients.statuses) > served_before + 20  # still serving, from the local history
        assert _metric(url, "recsys_online_store_skipped_total") > 0  # most requests never tried Redis
        redis_server.start()  # Redis returns: the next probe closes the breaker
        assert _wait_for(lambda: httpx.get(url + "/ready").json()["online_store"]["breaker"] == "closed")
        errors = _metric(url, "recsys_online_store_errors_total")
        time.sleep(1)
        assert _metric(url, "recsys_online_store_errors_total") == errors  # reading Redis again, no failure
        ready = httpx.get(url + "/ready").json()["online_store"]
        assert ready["opened"] >= 1 and ready["failures"] >= 1
    finally:
        statuses = clients.stop()
        server.stop()
    assert statuses and set(statuses) == {200}  # 0 failed recommendations


def test_breaker_opens_on_failure_probes_after_cooldown_and_closes_on_success():
    now = [0.0]
    breaker = Breaker(2.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure(ConnectionError("refused"))
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 2.5
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure(ConnectionError("still down"))
    assert not breaker.allow() and breaker.opened == 1 and breaker.failures == 2
    now[0] = 5.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.status()["last_error"] == "ConnectionError: still down"


DB_DOWN = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1


def test_a_full_spill_disk_never_fails_serving(tiny_store_dir, tiny_models, tiny_store, tmp_path):
    spill = tmp_path / "spill"
    config = write_config(
        tmp_path / "config.yaml",
        db=DB_DOWN,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        spill_dir=spill,
        serving={"deadline_ms": 0},
    )
    server = LiveServer(config, {})
    url = server.url
    try:
        pid = int(_metric(url, "recsys_worker_pid"))
        (spill / f"exposures-{pid}.jsonl").unlink(missing_ok=True)
        (spill / f"exposures-{pid}.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
        clients = Clients(url, tiny_store.user_ids, n=4)
        assert _wait_for(lambda: httpx.get(url + "/ready").json()["exposure_log"]["dropped"] > 0)
        time.sleep(1)
        statuses = clients.stop()
        log = httpx.get(url + "/ready").json()["exposure_log"]
        metrics_dropped = _metric(url, "recsys_exposures_dropped")
    finally:
        server.stop()
    assert statuses and set(statuses) == {200}
    assert log["degraded"] and "No space left on device" in log["disk_error"]
    assert metrics_dropped >= log["dropped"] > 0


def test_a_spill_directory_that_cannot_exist_never_stops_the_gateway(
    tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = write_config(
        tmp_path / "config.yaml",
        db=DB_DOWN,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        spill_dir=blocker / "spill",  # cannot be created, nor anything in it
        serving={"deadline_ms": 0},
    )
    server = LiveServer(config, {})
    url = server.url
    try:
        clients = Clients(url, tiny_store.user_ids, n=2)
        assert _wait_for(lambda: httpx.get(url + "/ready").json()["exposure_log"]["dropped"] > 0)
        statuses = clients.stop()
        log = httpx.get(url + "/ready").json()["exposure_log"]
    finally:
        server.stop()
    assert statuses and set(statuses) == {200}
    assert log["degraded"] and "Not a directory" in log["disk_error"] and log["journal_errors"] == 0
