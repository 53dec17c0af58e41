"""``recsys simulate``: closed-loop traffic through the real gateway, reactions from the truth.

Requests (user, time) for a sample of users over simulated days follow the world's daily
activity curve. Each user's requests run in time order on one worker, so a later request sees
the likes its earlier ones produced. For every response the user views each served post
(20–150 s apart, after the request time) and likes it with its true probability; a like
follows its view by 30–60 s and that view gets ``target = 1``, as in the generator. Rows go to
``feed_data``; the same events go to the gateway's online store (``POST /events``).
Everything random is keyed by (seed, request index): the run is deterministic for a seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from gateway.progress import track
from gateway.storage import bulk_insert
from gateway.storage.schema import feed_data
from gateway.world import params as P
from gateway.world.load import load_truth
from gateway.world.truth import Truth

_ACTIVITY = np.asarray(P.HOURLY_ACTIVITY) / np.sum(P.HOURLY_ACTIVITY)
_HOURS = np.arange(P.FIRST_HOUR, P.LAST_HOUR + 1)


class SimulationError(RuntimeError):
    pass


@dataclass
class SimulationReport:
    requests: int = 0
    served: int = 0
    failed: int = 0
    views: int = 0
    likes: int = 0
    arms: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: bool = False
    errors: list[str] = field(default_factory=list)
    start: pd.Timestamp | None = None  # the first simulated day


def default_start(engine: Engine) -> pd.Timestamp:
    with engine.connect() as conn:
        last = conn.execute(text('SELECT MAX("timestamp") FROM feed_data')).scalar_one()
    if last is None:
        raise SimulationError("feed_data is empty: run `recsys data synth` first")
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


def plan_requests(
    truth: Truth, *, users: int, requests: int, start: pd.Timestamp, days: int, seed: int
) -> pd.DataFrame:
    """The request schedule: (index, user_id, epoch seconds), sorted by time."""
    rng = np.random.default_rng([seed, 0])
    chosen = rng.choice(truth.user_ids, min(users, len(truth.user_ids)), replace=False)
    user = rng.choice(chosen, requests)
    day = rng.integers(0, days, requests)
    seconds = (
        int(start.timestamp())
        + day * 86400
        + rng.choice(_HOURS, requests, p=_ACTIVITY) * 3600
        + rng.integers(0, 3600, requests)
    )
    plan = pd.DataFrame({"user_id": user.astype(np.int64), "seconds": seconds.astype(np.int64)})
    plan = plan.sort_values(["seconds", "user_id"], kind="stable").reset_index(drop=True)
    plan["index"] = np.arange(len(plan))
    return plan


def react(
    truth: Truth, seed: int, index: int, user_id: int, seconds: int, post_ids: list[int]
) -> pd.DataFrame:
    """Views of the served posts and the likes drawn from the truth, for one response."""
    if not post_ids:
        return pd.DataFrame(columns=["timestamp", "user_id", "post_id", "action", "target"])
    rng = np.random.default_rng([seed, 1, index])
    n = len(post_ids)
    views = seconds + np.cumsum(rng.integers(P.VIEW_GAP_SECONDS[0], P.VIEW_GAP_SECONDS[1] + 1, n))
    u = truth.user_index(np.array([user_id]))
    posts = truth.post_index(np.array(post_ids))
    p = truth.like_prob(np.repeat(u, n), posts, views)
    liked = rng.random(n) < p
    like_times = views[liked] + rng.integers(
        P.LIKE_DELAY_SECONDS[0], P.LIKE_DELAY_SECONDS[1] + 1, int(liked.sum())
    )
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.r_[views, like_times], unit="s"),
            "user_id": user_id,
            "post_id": np.r_[np.asarray(post_ids)[:n], np.asarray(post_ids)[liked]].astype(np.int64),
            "action": ["view"] * n + ["like"] * int(liked.sum()),
            "target": np.r_[liked.astype(np.int64), np.zeros(int(liked.sum()), np.int64)],
        }
    )


def simulate(
    url: str,
    engine: Engine,
    truth: Truth,
    *,
    admin_token: str,
    users: int,
    requests: int,
    start: pd.Timestamp,
    days: int,
    seed: int,
    concurrency: int,
    limit: int = 5,
    max_seconds: float = 3600.0,
    flush_rows: int = 5_000,
) -> SimulationReport:
    plan = plan_requests(truth, users=users, requests=requests, start=start, days=days, seed=seed)
    report = SimulationReport(requests=len(plan), start=start)
    lock = threading.Lock()
    buffer: list[pd.DataFrame] = []
    buffered = 0
    deadline = time.monotonic() + max_seconds
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {admin_token}"}
    done = iter(range(len(plan)))
    progress = track(done, f"simulating {len(plan):,} requests", total=len(plan))
    progress_lock = threading.Lock()

    def flush(force: bool = False) -> None:
        nonlocal buffered
        with lock:
            if not buffer or (not force and buffered < flush_rows):
                return
            rows = pd.concat(buffer, ignore_index=True)
            buffer.clear()
            buffered = 0
        bulk_insert(engine, feed_data, rows)

    def run(worker_plan: pd.DataFrame) -> None:
        nonlocal buffered
        with httpx.Client(timeout=30) as client:
            for index, user_id, seconds in worker_plan[["index", "user_id", "seconds"]].itertuples(
                index=False
            ):
                if time.monotonic() > deadline:
                    report.stopped_early = True
                    return
                stamp = np.datetime64(int(seconds), "s").astype(str)
                try:
                    r = client.get(
                        f"{base}/post/recommendations/",
                        params={"id": int(user_id), "time": stamp, "limit": limit},
                        headers={"X-Request-ID": f"sim-{seed}-{start:%Y%m%d}-{index}"},
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        report.failed += 1
                        report.errors.append(repr(exc))
                    continue
                if r.status_code != 200:
                    with lock:
                        report.failed += 1
                        report.errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                body = r.json()
                rows = react(
                    truth,
                    seed,
                    int(index),
                    int(user_id),
                    int(seconds),
                    [p["id"] for p in body["recommendations"]],
                )
                events = [
                    {
                        "user_id": int(row.user_id),
                        "post_id": int(row.post_id),
                        "action": row.action,
                        "timestamp": row.timestamp.isoformat(),
                    }
                    for row in rows.itertuples(index=False)
                ]
                if events:
                    ev = client.post(f"{base}/events", json={"events": events}, headers=headers)
                    if ev.status_code != 200:
                        raise SimulationError(
                            f"the gateway refused events ({ev.status_code}): {ev.text[:200]}"
                        )
                arm = body["exp_group"]
                liked_top5 = bool((rows["action"] == "like").any()) if len(rows) else False
                with lock:
                    report.served += 1
                    report.arms[arm] = report.arms.get(arm, 0) + 1
                    report.hits[arm] = report.hits.get(arm, 0) + int(liked_top5)
                    report.views += int((rows["action"] == "view").sum())
                    report.likes += int((rows["action"] == "like").sum())
                    buffer.append(rows)
                    buffered += len(rows)
                with progress_lock:
                    next(progress, None)
                flush()

    started = time.monotonic()
    # Each user on one worker, in time order: later requests see earlier likes.
    worker_of = plan["user_id"].to_numpy() % concurrency
    errors: list[BaseException] = []

    def guarded(target, args):
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(run, (plan[worker_of == w],))) for w in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in progress:  # finish the bar
        pass
    flush(force=True)
    report.seconds = time.monotonic() - started
    if errors:
        raise errors[0]
    return report


def simulate_world(
    url: str, engine: Engine, *, start: pd.Timestamp | None = None, **options
) -> SimulationReport:
    """``simulate`` with the world in ``engine`` as the truth, from ``start`` (else the day
    after its feed ends)."""
    truth = load_truth(engine)
    return simulate(url, engine, truth, start=default_start(engine) if start is None else start, **options)
