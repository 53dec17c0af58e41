"""``recsys analyze bench``: ``recsys analyze`` over a large synthetic exposure log, timed, with its peak memory.

Builds, in the database given (PostgreSQL is the target; its ``exposures`` and ``feed_data``
tables are **replaced**), an experiment of ``rows`` requests from ``rows / requests_per_user``
users over 14 days, each served 10 posts, with the feed the analysis reads: the users'
views and likes in the 14 days before their first request (CUPED's pre-period) and the likes
that make hits (a like of one of the first 5 posts inside the hour, at a per-user rate that
the pre-period predicts; the test arm a little higher). Rows are written with COPY in chunks.

Then ``recsys analyze --json`` runs as a child process, so that its wall time and its peak
resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) are those of the real command,
start-up included; the database server's own memory is not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from gateway.exposure import ensure_exposure_table, exposures
from gateway.storage import bulk_insert, drop_tables
from gateway.storage.schema import feed_data, metadata
from gateway.tables import Tables

EXPERIMENT = "bench-analyze"
START = pd.Timestamp("2030-01-01")
DAYS = 14
CHUNK = 250_000


class AnalyzeBenchError(RuntimeError):
    pass


@dataclass
class AnalyzeBenchResult:
    rows: int
    users: int
    feed_rows: int
    build_seconds: float
    analyze_seconds: float
    analyze_cpu_seconds: float  # the command's own CPU (user + system); the database server's is not in it
    peak_rss_mb: float
    load_average: float  # 1-minute load average when the command ended: how busy the machine was
    result: dict

    def as_json(self) -> dict:
        return asdict(self)


def _posts_json(posts: np.ndarray) -> list[str]:
    return ["[" + ", ".join(map(str, row)) + "]" for row in posts.tolist()]


def build_log(engine: Engine, rows: int, *, requests_per_user: int = 25, seed: int = 0) -> tuple[int, int]:
    """Replace ``exposures`` and ``feed_data`` with the synthetic experiment; (users, feed rows)."""
    rng = np.random.default_rng(seed)
    n_users = max(4, rows // requests_per_user)
    drop_tables(engine, [Tables.EXPOSURES, Tables.FEED])
    metadata.create_all(engine, tables=[feed_data])
    ensure_exposure_table(engine)
    taste = rng.beta(2, 5, n_users)  # each user's like rate: the pre-period predicts it
    arm_of = np.where(np.arange(n_users) % 2 == 0, "control", "test")
    lift = np.where(arm_of == "test", 0.01, 0.0)
    # Pre-period: views and likes in the 14 days before the experiment.
    views = rng.poisson(20, n_users)
    pre_user = np.repeat(np.arange(n_users), views)
    pre_time = START - pd.to_timedelta(rng.uniform(60, DAYS * 86400, len(pre_user)), unit="s")
    pre_post = rng.integers(0, 20_000, len(pre_user))
    liked = rng.random(len(pre_user)) < taste[pre_user]
    feed = [
        pd.DataFrame(
            {"timestamp": pre_time, "user_id": pre_user, "post_id": pre_post, "action": "view", "target": 0}
        ),
        pd.DataFrame(
            {
                "timestamp": pre_time[liked] + pd.Timedelta("30s"),
                "user_id": pre_user[liked],
                "post_id": pre_post[liked],
                "action": "like",
                "target": 1,
            }
        ),
    ]
    feed_rows = sum(len(f) for f in feed)
    for frame in feed:
        bulk_insert(engine, feed_data, frame)
    columns = [c.name for c in exposures.columns]
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        user = rng.integers(0, n_users, n)
        at = START + pd.to_timedelta(rng.uniform(0, DAYS * 86400, n), unit="s")
        posts = rng.integers(0, 20_000, (n, 10))
        frame = pd.DataFrame(
            {
                "request_id": [f"b{start + i}" for i in range(n)],
                "served_at": at,
                "request_time": at,
                "user_id": user,
                "experiment": EXPERIMENT,
                "arm": arm_of[user],
                "bucket": 0.0,
                "in_experiment": True,
                "model_version": np.where(arm_of[user] == "control", "control-v1", "test-v1"),
                "post_ids": _posts_json(posts),
                "latency_ms": rng.gamma(4.0, 5.0, n),
                "cold_start": False,
            }
        ).reindex(columns=columns)
        bulk_insert(engine, exposures, frame)
        hit = rng.random(n) < np.clip(taste[user] + lift[user], 0, 1)
        like_post = posts[np.arange(n), rng.integers(0, 5, n)]
        likes = pd.DataFrame(
            {
                "timestamp": at[hit] + pd.to_timedelta(rng.uniform(1, 3000, hit.sum()), unit="s"),
                "user_id": user[hit],
                "post_id": like_post[hit],
                "action": "like",
                "target": 1,
            }
        )
        bulk_insert(engine, feed_data, likes)
        feed_rows += len(likes)
    with engine.begin() as conn:  # fresh planner statistics, as autovacuum would give a real log
        for table in (Tables.EXPOSURES, Tables.FEED):
            conn.execute(text(f"ANALYZE {table}"))
    return n_users, feed_rows


def time_analyze(db_url: str, workdir: Path) -> tuple[float, float, float, dict]:
    """Run ``recsys analyze --json`` on the bench experiment in a child process: wall seconds, CPU
    seconds, peak MB, result."""
    config = workdir / "bench-analyze.yaml"
    config.write_text(
        f"experiment:\n  name: {EXPERIMENT}\n  salt: {EXPERIMENT}\n  arms:\n"
        "    - {name: control, weight: 50, model: models/control}\n"
        "    - {name: test, weight: 50, model: models/test}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_DB_URL"}
    command = [
        sys.executable,
        "-m",
        "gateway.cli",
        "analyze",
        "--json",
        "--db",
        db_url,
        "--config",
        str(config),
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=errors, env=env)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the maximum over children
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), errors.seek(0)
        stdout, stderr = out.read(), errors.read()
    if child.returncode != 0:
        raise AnalyzeBenchError(f"recsys analyze failed: {stderr.strip() or stdout.strip()}")
    peak = usage.ru_maxrss  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, peak / 1024, json.loads(stdout)


def run_analyze_bench(
    engine: Engine, db_url: str, *, rows: int, seed: int, workdir: Path
) -> AnalyzeBenchResult:
    started = time.perf_counter()
    users, feed_rows = build_log(engine, rows, seed=seed)
    build = time.perf_counter() - started
    seconds, cpu, peak_mb, result = time_analyze(db_url, workdir)
    return AnalyzeBenchResult(
        rows, users, feed_rows, round(build, 1), round(seconds, 1), round(cpu, 1), round(peak_mb, 1),
        round(os.getloadavg()[0], 1), result,
    )  # fmt: skip
