"""A real database outage: a throwaway PostgreSQL cluster of its own (own data dir and port,
never the shared server) is stopped while traffic flows, then started again.

Recommendations keep being served from the in-memory store, exposures go to the spill file,
/ready and /metrics show the degraded state, and after the database returns the spill is
replayed exactly once: one row per served request.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest

from gateway.serving.server import free_port
from gateway.storage import connect, read_frame
from gateway.world.generate import synthesize
from gateway.world.params import SCALES
from tests.conftest import TINY_SEED, LiveServer, write_config


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class Cluster:
    """initdb + pg_ctl as the postgres OS user, in a temporary directory."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.root = tempfile.mkdtemp(prefix="recsys-pg-")
        os.chmod(self.root, 0o777)
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [os.path.join(self.bin, tool), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            self.data,
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "-l",
            os.path.join(self.root, "log"),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster():
    if _pg_bin() is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries not found")
    c = Cluster()
    try:
        yield c
    finally:
        c.destroy()


def test_outage_spills_then_replays_exactly_once(cluster, tiny_store_dir, tiny_models, tiny_store, tmp_path):
    synthesize(connect(cluster.url), SCALES["tiny"], TINY_SEED)
    config = write_config(
        tmp_path / "config.yaml",
        db=cluster.url,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    server = LiveServer(config, {})
    served: set[str] = set()
    failures: list[str] = []
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=15) as http:
            while not stop.is_set():
                r = http.get(
                    f"{server.url}/post/recommendations/",
                    params={"id": int(rng.choice(tiny_store.user_ids)), "time": "2021-12-26T12:00:00"},
                )
                if r.status_code == 200:
                    served.add(r.headers["X-Request-ID"])
                else:
                    failures.append(f"{r.status_code} {r.text[:100]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(2)
        cluster.stop()  # the outage
        before = len(served)
        degraded = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not degraded:
            ready = httpx.get(f"{server.url}/ready").json()
            degraded = ready["exposure_log"]["degraded"]
            time.sleep(0.3)
        assert degraded, "the exposure log never reported the outage"
        assert "recsys_exposure_log_degraded 1.0" in httpx.get(f"{server.url}/metrics").text
        time.sleep(2)
        assert len(served) > before + 20  # still serving during the outage
        # The spill is on disk: as the spill file, or renamed while a replay attempt waits for
        # the database (the writer renames it to *.replaying, then appends it back on failure).
        assert list((tmp_path / "spill").glob("exposures-*.jsonl")) or list(
            (tmp_path / "spill").glob("exposures-*.replaying")
        )
        cluster.start()  # the database returns
        deadline = time.monotonic() + 40
        while (
            time.monotonic() < deadline
            and httpx.get(f"{server.url}/ready").json()["exposure_log"]["degraded"]
        ):
            time.sleep(0.5)
        assert not httpx.get(f"{server.url}/ready").json()["exposure_log"]["degraded"]
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert not failures, failures[:3]
    rows = read_frame(connect(cluster.url), "SELECT request_id FROM exposures")
    assert rows["request_id"].is_unique
    assert set(rows["request_id"]) == served
