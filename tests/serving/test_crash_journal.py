"""Stopping the server under load loses no acknowledged exposure: SIGTERM (graceful: in-flight
requests finish, the log is flushed, no replay needed) and SIGKILL (the journal is replayed by
the next start)."""

from __future__ import annotations

import shutil
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from gateway.storage import connect, read_frame
from tests.conftest import LiveServer, write_config


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_acknowledged_exposure_is_lost(
    stop_signal, tiny_db, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    shutil.copy(tiny_db.removeprefix("sqlite:///"), tmp_path / "world.db")
    db = f"sqlite:///{tmp_path / 'world.db'}"
    config = write_config(
        tmp_path / "config.yaml",
        db=db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )
    server = LiveServer(config, {})
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.get(
                        f"{server.url}/post/recommendations/",
                        params={"id": int(rng.choice(tiny_store.user_ids)), "time": "2021-12-26T12:00:00"},
                    )
                except httpx.TimeoutException:
                    continue  # a slow answer on a busy machine: never acknowledged, ask again
                except httpx.HTTPError:
                    return  # the server died under us: this response was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.add(r.headers["X-Request-ID"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 180
    while len(acked) < 300:  # bounded: a test that cannot get there fails instead of hanging
        if not any(t.is_alive() for t in threads) or time.monotonic() > deadline:
            stop.set()
            server.stop()
            pytest.fail(f"only {len(acked)} responses acknowledged before the clients stopped or time ran out")
        threading.Event().wait(0.05)
    server.proc.send_signal(stop_signal)  # mid-load
    server.proc.wait(60)
    stop.set()
    for t in threads:
        t.join()
    if stop_signal == signal.SIGTERM:
        # uvicorn shuts down gracefully, then re-raises the signal it caught: -15 is expected.
        assert server.proc.returncode in (0, -signal.SIGTERM)
        assert not list((tmp_path / "spill").glob("journal-*.jsonl"))  # flushed: nothing to replay
    else:
        restarted = LiveServer(config, {})  # replays the dead process's journal
        restarted.stop()
    logged = set(read_frame(connect(db), "SELECT request_id FROM exposures")["request_id"])
    assert len(acked) >= 300
    assert acked <= logged, f"{len(acked - logged)} acknowledged exposures lost"
    assert not list((tmp_path / "spill").glob("journal-*.jsonl"))  # replayed and cleaned up
