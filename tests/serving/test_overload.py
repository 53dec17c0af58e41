"""Overload: admission control, the popularity fallback, 503 with Retry-After and the request
deadline, on the real server (``recsys serve`` in a subprocess) logging to a real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from gateway.config import AdmissionSettings
from gateway.serving.admission import Admission, Deadline
from gateway.serving.routes.recommendations import new_request_id
from gateway.storage import connect, read_frame
from tests.conftest import LiveServer, write_config

WHEN = "2021-12-20T19:00:00"
PATH = "/post/recommendations/"


def _serve(tmp_path, pg_url, tiny_store_dir, tiny_models, **serving) -> LiveServer:
    config = write_config(
        tmp_path / "config.yaml",
        db=pg_url,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        serving=serving,
    )
    return LiveServer(config, {})


def _hammer(url: str, users: np.ndarray, clients: int, each: int) -> list[httpx.Response]:
    """``clients`` closed-loop clients, ``each`` requests apiece; every response."""
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=30) as http:
            for _ in range(each):
                r = http.get(url + PATH, params={"id": int(rng.choice(users)), "time": WHEN})
                with lock:
                    responses.append(r)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def _check_fallback_list(store, user_id: int, posts: list[int]) -> None:
    """The most liked posts before the request's day, none liked by the user before the time."""
    seconds = int(np.datetime64(WHEN, "s").astype(np.int64))
    likes = store.popularity_before(np.array([seconds]))[0]
    user_idx = int(store.user_index([user_id])[0])
    liked = set(store.liked_before(user_idx, seconds).tolist())
    idx = store.post_index(np.array(posts))
    assert len(posts) == 5 and not liked & set(idx.tolist())
    counts = likes[idx]
    assert list(counts) == sorted(counts, reverse=True)
    others = np.setdiff1d(np.arange(len(likes)), np.r_[idx, list(liked)].astype(np.int64))
    assert likes[others].max() <= counts[-1]  # nothing left out ranks above the list's last post


def test_overload_is_answered_with_the_fallback_and_logged_outside_the_experiment(
    pg_url, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    server = _serve(
        tmp_path,
        pg_url,
        tiny_store_dir,
        tiny_models,
        admission={"max_in_flight": 1, "shed_delay_ms": 0},
        deadline_ms=0,  # on a busy machine a request may pass any deadline: this test is about shedding
    )
    try:
        light = _hammer(server.url, tiny_store.user_ids, clients=1, each=20)
        assert {r.headers["X-Recsys-Served-By"] for r in light} == {"model"}  # one client: nothing shed
        probes: list[int] = []
        done = threading.Event()

        def probe() -> None:  # operations endpoints are never shed or queued behind recommendations
            with httpx.Client(timeout=30) as http:
                while not done.is_set():
                    probes.extend(
                        http.get(server.url + p).status_code for p in ("/health", "/ready", "/metrics")
                    )

        prober = threading.Thread(target=probe)
        prober.start()
        heavy = _hammer(server.url, tiny_store.user_ids, clients=12, each=40)
        done.set()
        prober.join()
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert probes and set(probes) == {200}
    assert {r.status_code for r in heavy} == {200}
    shed = [r for r in heavy if r.headers["X-Recsys-Served-By"] == "fallback:shed"]
    served = [r for r in heavy if r.headers["X-Recsys-Served-By"] == "model"]
    assert shed and served and len(shed) + len(served) == len(heavy)
    for r in shed:
        assert (
            r.json()["served_by"] == "fallback:shed" and r.headers["X-Model-Version"] == "fallback:popularity"
        )
        _check_fallback_list(
            tiny_store, int(r.request.url.params["id"]), [p["id"] for p in r.json()["recommendations"]]
        )
    assert f'recsys_shed_total{{overflow="fallback"}} {float(len(shed))}' in metrics
    assert f'recsys_fallbacks_total{{reason="shed"}} {float(len(shed))}' in metrics
    rows = read_frame(
        connect(pg_url), "SELECT request_id, arm, in_experiment, model_version, served_by FROM exposures"
    )
    rows = rows.set_index("request_id")
    assert len(rows) == len(light) + len(heavy)
    logged = rows.loc[[r.headers["X-Request-ID"] for r in shed]]
    assert (logged["served_by"] == "shed").all() and (logged["model_version"] == "fallback:popularity").all()
    assert set(logged["in_experiment"].astype(str).str.lower()) <= {"f", "false", "0"}
    assert list(logged["arm"]) == [r.headers["X-Exp-Group"] for r in shed]
    assert rows.loc[[r.headers["X-Request-ID"] for r in served], "served_by"].isna().all()


def test_overflow_503_says_when_to_retry_and_logs_nothing(
    pg_url, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    server = _serve(
        tmp_path,
        pg_url,
        tiny_store_dir,
        tiny_models,
        admission={"max_in_flight": 1, "overflow": "503", "retry_after_s": 2, "shed_delay_ms": 1},
    )
    try:
        responses = _hammer(server.url, tiny_store.user_ids, clients=12, each=30)
    finally:
        server.stop()
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}
    for r in responses:
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "2" and "retry after 2 s" in r.json()["detail"]
    rows = read_frame(connect(pg_url), "SELECT COUNT(*) AS n FROM exposures")
    assert rows["n"][0] == statuses.count(200)


def test_a_ranker_past_the_deadline_yields_the_fallback(
    pg_url, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    # 10 µs: no ranker answers within it (the request has waited longer than that to be parsed)
    server = _serve(tmp_path, pg_url, tiny_store_dir, tiny_models, deadline_ms=0.01)
    try:
        responses = _hammer(server.url, tiny_store.user_ids, clients=2, each=10)
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Recsys-Served-By"] for r in responses} == {"fallback:deadline"}
    assert 'recsys_fallbacks_total{reason="deadline"} 20.0' in metrics
    rows = read_frame(connect(pg_url), "SELECT served_by FROM exposures")
    assert list(rows["served_by"]) == ["deadline"] * 20


def test_deadline_returns_on_time_and_the_late_ranker_keeps_its_slot():
    async def scenario() -> None:
        admission = Admission(AdmissionSettings(max_in_flight=1))
        deadline = Deadline(50, admission)
        release = threading.Event()
        started = time.perf_counter()
        assert await deadline.run(lambda: release.wait(10), started) is None
        assert 0.04 < time.perf_counter() - started < 0.5
        assert admission.late == 1 and admission.full()  # still running: counted against the bound
        release.set()
        for _ in range(100):
            if admission.late == 0:
                break
            await asyncio.sleep(0.01)
        assert admission.late == 0 and not admission.full()
        assert await deadline.run(lambda: 42, time.perf_counter()) == 42
        with pytest.raises(KeyError):
            await deadline.run(lambda: {}["x"], time.perf_counter())
        assert await deadline.run(lambda: 42, time.perf_counter() - 1) is None  # too late to start
        deadline.close()
        without = Deadline(0, admission)  # no deadline: the answer whenever it comes
        assert await without.run(lambda: release.wait(0.1) and 7, time.perf_counter() - 1) == 7
        without.close()

    asyncio.run(scenario())


def _admission(limit: int, delay_ms: float) -> Admission:
    return Admission(AdmissionSettings(max_in_flight=limit, shed_delay_ms=delay_ms))


def test_a_freed_slot_goes_to_the_newest_waiter_and_the_oldest_are_shed():
    async def scenario() -> tuple[list, list, int]:
        admission = _admission(1, 200)
        assert admission.take() and not admission.take()  # the one slot is taken
        order: list[str] = []

        async def request(name: str) -> bool:
            admitted = await admission.wait()
            order.append(name)
            return admitted

        first = asyncio.ensure_future(request("oldest"))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(request("newest"))
        await asyncio.sleep(0.01)
        assert admission.waiting == 2
        admission.release()  # the slot is handed over: still taken, by the newest waiter
        results = [await second]
        held = admission.in_flight
        results.append(await first)  # nobody frees a slot: shed after shed_delay_ms
        return order, results, held

    started = time.perf_counter()
    order, results, held = asyncio.run(scenario())
    assert order == ["newest", "oldest"] and results == [True, False] and held == 1
    assert 0.15 < time.perf_counter() - started < 2.0


def test_waiting_is_bounded_and_a_cancelled_waiter_frees_its_slot():
    async def scenario() -> None:
        admission = _admission(1, 0)
        assert admission.take()
        assert await admission.wait() is False  # no delay: shed at once
        admission = _admission(1, 5_000)
        assert admission.take()
        waiter = asyncio.ensure_future(admission.wait())
        await asyncio.sleep(0.01)
        admission.release()  # handed to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs: the slot is not lost
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.in_flight == 0 and admission.take()
        late = asyncio.ensure_future(admission.wait())
        await asyncio.sleep(0.01)
        late.cancel()  # cancelled while waiting: nothing to give back
        with pytest.raises(asyncio.CancelledError):
            await late
        assert admission.in_flight == 1 and admission.waiting == 0

    asyncio.run(scenario())


def test_a_late_ranker_that_finishes_hands_its_slot_to_a_waiter():
    async def scenario() -> tuple[bool, float, int]:
        admission = _admission(1, 2_000)
        deadline = Deadline(20, admission)
        finish = threading.Event()
        assert admission.take()
        # the request's ranker misses the deadline and keeps the slot as "late"
        assert await deadline.run(lambda: finish.wait(10), time.perf_counter()) is None
        admission.release()  # the request itself answered with the fallback
        assert admission.full() and admission.late == 1
        waiter = asyncio.ensure_future(admission.wait())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        finish.set()  # the late ranker returns on its own thread: the waiter gets its slot now
        admitted = await waiter
        waited = time.perf_counter() - started
        deadline.close()
        return admitted, waited, admission.in_flight

    admitted, waited, in_flight = asyncio.run(scenario())
    assert admitted and in_flight == 1
    assert waited < 1.0  # not left to wait out shed_delay_ms (2 s) while the slot is free


def test_clients_past_the_bound_wait_for_a_slot_instead_of_being_shed(
    pg_url, tiny_store_dir, tiny_models, tiny_store, tmp_path
):
    # 3 clients, 1 slot: each waits for a slot (at most 10 s) rather than being shed
    waits = {"max_in_flight": 1, "shed_delay_ms": 10_000}
    server = _serve(tmp_path, pg_url, tiny_store_dir, tiny_models, admission=waits)
    try:
        responses = _hammer(server.url, tiny_store.user_ids, clients=3, each=15)
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Recsys-Served-By"] for r in responses} == {"model"}
    assert "recsys_shed_total{" not in metrics and "recsys_fallbacks_total{" not in metrics
    assert "recsys_admission_waiting 0.0" in metrics  # nobody waiting once the clients are done


def test_request_ids_are_32_hex_digits_and_do_not_repeat():
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
