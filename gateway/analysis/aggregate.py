"""Per-user sufficient statistics, computed by SQL in the database (PostgreSQL and SQLite).

The I/O edge of the A/B analysis. No exposure row reaches Python: the database unnests the
first ``k`` served posts of every request, finds the likes inside the window, and returns one
row per (slice, arm, user) with the sums the tests need. Everything downstream
(``decision.py``) is pure maths on those per-user rows.

* A request is a **hit** when the user liked one of its first ``k`` served posts in
  ``(request_time, request_time + window]``.
* The **pre-period** of a user is the ``days`` before their first in-experiment exposure (over
  the whole experiment, not the slice being analysed); their likes and views in ``feed_data``
  there are CUPED's covariate. A user with none (cold start) gets 0 and 0: see
  ``statistics.RegressionAdjustedRatioStatistic`` for why that is unbiased.
* **Users seen in more than one group** (arms, or arm and interleaved: salt, weights or an
  override changed mid-run) are listed by :func:`multiple_arm_users`; the caller excludes them.

SQLite stores timestamps as text with or without fractional seconds; window arithmetic there
goes through epoch seconds (``strftime('%s')`` plus the fraction), which is exact at the
window's edge. PostgreSQL compares timestamps directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, inspect, text

from gateway.assignment import INTERLEAVED
from gateway.ranking import K
from gateway.storage import read_frame, table_exists
from gateway.tables import Tables

SLICES = ("topic", "cold_start", "mood")
"""``--by`` fields: the request's topic filter, whether the user was cold, whether a mood was sent."""


class AnalysisError(RuntimeError):
    pass


@dataclass(frozen=True)
class Scope:
    """Which exposures are analysed: the experiment, a request-time range [since, until), a topic."""

    experiment: str
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    topic: str | None = None

    def where(self, alias: str = "") -> tuple[str, dict]:
        """SQL conditions (in-experiment rows of the experiment in range) and their parameters."""
        a = f"{alias}." if alias else ""
        clauses = [f"{a}experiment = :experiment", f"{a}in_experiment = :yes"]
        params: dict = {"experiment": self.experiment, "yes": True}
        if self.since is not None:
            clauses.append(f"{a}request_time >= :since")
            params["since"] = _sql_time(self.since)
        if self.until is not None:
            clauses.append(f"{a}request_time < :until")
            params["until"] = _sql_time(self.until)
        if self.topic is not None:
            clauses.append(f"{a}topic = :topic")
            params["topic"] = self.topic
        return " AND ".join(clauses), params


USER_SUM_COLUMNS = (
    "slice", "arm", "user_id", "requests", "hits", "latency_sum",
    "first_request", "last_request",
)  # fmt: skip


def _read(engine: Engine, sql: str, params: dict, parse_dates=()) -> pd.DataFrame:
    """``read_frame`` for the heavy aggregations: on PostgreSQL with memory for in-memory hash
    joins and sorts (server side, this transaction only) and without JIT, whose compile time
    costs more than it saves on one-off queries."""
    if not _postgres(engine):
        return read_frame(engine, sql, params=params, parse_dates=parse_dates)
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL jit = off"))
        frame = pd.read_sql_query(text(sql), conn, params=params)
    for name in parse_dates:
        frame[name] = pd.to_datetime(frame[name], format="ISO8601")
    return frame


def time_range(engine: Engine, scope: Scope) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """First and last request time of the A/B arms in ``scope`` (None, None when it has none)."""
    where, params = scope.where()
    sql = f"SELECT MIN(request_time) AS lo, MAX(request_time) AS hi FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved"
    frame = read_frame(engine, sql, params=params | {"interleaved": INTERLEAVED})
    lo, hi = frame["lo"].iloc[0], frame["hi"].iloc[0]
    if lo is None or pd.isna(lo):
        return None, None
    return pd.Timestamp(lo), pd.Timestamp(hi)


def _sql_time(value: pd.Timestamp) -> str:
    text = f"{value:%Y-%m-%d %H:%M:%S}"
    return text + (f".{value.microsecond:06d}" if value.microsecond else "")


def _postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _epoch(engine: Engine, column: str) -> str:
    """Seconds since 1970 of a timestamp column, with its fraction (SQLite text timestamps)."""
    return (
        f"(CAST(strftime('%s', {column}) AS REAL) + "
        f"CAST(COALESCE(NULLIF(substr({column}, 20), ''), '0') AS REAL))"
    )


def _in_first_k(engine: Engine, post: str, posts: str) -> str:
    """``post`` is one of the first ``:k`` ids of the JSON list ``posts`` (evaluated only on the
    few request/like pairs of one user inside the window, never on every served list)."""
    if _postgres(engine):
        return f"{post} = ANY ((string_to_array(btrim({posts}, '[] '), ','))[1:(:k)]::integer[])"
    return f"EXISTS (SELECT 1 FROM json_each({posts}) AS p WHERE p.key < :k AND CAST(p.value AS INTEGER) = {post})"


def _bucket(engine: Engine, column: str) -> str:
    """The ``:window``-second time bucket of a timestamp column (an integer)."""
    if _postgres(engine):
        return f"CAST(floor(extract(epoch FROM {column}) / :window) AS BIGINT)"
    return f"CAST({_epoch(engine, column)} / :window AS INTEGER)"


def _inside_window(engine: Engine, like: str, request: str) -> str:
    if _postgres(engine):
        return f"{like} > {request} AND {like} <= {request} + make_interval(secs => :window)"
    like_s, request_s = _epoch(engine, like), _epoch(engine, request)
    return f"{like_s} > {request_s} AND {like_s} <= {request_s} + :window"


def _slice_expression(engine: Engine, by: str | None) -> str:
    if by is None:
        return "'all'"
    if by == "model_version":
        return "model_version"
    if by not in SLICES:
        raise AnalysisError(f"cannot split by {by!r}: use one of {', '.join(SLICES)}")
    if by == "topic":
        return "COALESCE(topic, '(none)')"
    if by == "cold_start":
        return "CASE WHEN cold_start = :yes THEN 'cold start' ELSE 'known user' END"
    return "CASE WHEN mood IS NULL THEN 'without mood' ELSE 'with mood' END"


def require_exposures(engine: Engine) -> None:
    if not table_exists(engine, Tables.EXPOSURES):
        raise AnalysisError(
            "no exposures table: serve traffic through the gateway first (`recsys serve`, `recsys simulate`)"
        )


def user_sums(
    engine: Engine, scope: Scope, *, window_seconds: float, by: str | None = None, k: int = K
) -> pd.DataFrame:
    """One row per (slice, arm, user) of the A/B arms: requests, hits, latency sums, first and last request.

    Columns: ``slice`` (``'all'`` without ``by``), ``arm``, ``user_id``, ``requests``, ``hits``,
    ``latency_sum``, ``first_request``, ``last_request``. Interleaved
    requests are not A/B requests and are left out.
    """
    require_exposures(engine)
    where, params = scope.where()
    x_where, _ = scope.where("x")
    inside = _inside_window(engine, 'f."timestamp"', "x.request_time")
    # Likes outside [first request, last request + window] cannot be hits: constant bounds keep
    # the pre-period's likes out of the join (and give the planner a fair estimate).
    first, last = time_range(engine, scope)
    if first is None:
        return pd.DataFrame(columns=[*USER_SUM_COLUMNS])
    params |= {"first": _sql_time(first), "last": _sql_time(last + pd.Timedelta(seconds=window_seconds + 1))}
    # Each like is matched only with the requests of its user in its own or the previous time
    # bucket of ``window`` seconds (a like inside (t, t + window] is in t's bucket or the next),
    # so the join's hash key is (user, bucket), not the user alone.
    like_bucket, request_bucket = _bucket(engine, 'f."timestamp"'), _bucket(engine, "x.request_time")
    slice_ = _slice_expression(engine, by)
    sql = f"""
        WITH l AS (
            SELECT f.user_id, f.post_id, f."timestamp", {like_bucket} - d.shift AS bucket
            FROM {Tables.FEED} f CROSS JOIN (SELECT 0 AS shift UNION ALL SELECT 1 AS shift) d
            WHERE f.action = 'like' AND f."timestamp" > :first AND f."timestamp" <= :last
        ),
        h AS (
            SELECT DISTINCT x.request_id, {slice_} AS slice, x.arm, x.user_id FROM {Tables.EXPOSURES} x
            JOIN l f ON f.user_id = x.user_id AND f.bucket = {request_bucket}
            WHERE {x_where} AND x.arm <> :interleaved
              AND {inside} AND {_in_first_k(engine, "f.post_id", "x.post_ids")}
        ),
        hu AS (SELECT slice, arm, user_id, COUNT(*) AS hits FROM h GROUP BY slice, arm, user_id),
        r AS (
            SELECT {slice_} AS slice, arm, user_id, COUNT(*) AS requests, SUM(latency_ms) AS latency_sum,
                   MIN(request_time) AS first_request, MAX(request_time) AS last_request
            FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved
            GROUP BY 1, arm, user_id
        )
        SELECT r.slice, r.arm, r.user_id, r.requests, COALESCE(hu.hits, 0) AS hits, r.latency_sum,
               r.first_request, r.last_request
        FROM r LEFT JOIN hu ON hu.slice = r.slice AND hu.arm = r.arm AND hu.user_id = r.user_id
    """
    params |= {"interleaved": INTERLEAVED, "k": k, "window": float(window_seconds)}
    frame = _read(engine, sql, params, parse_dates=["first_request", "last_request"])
    for column in ("requests", "hits", "user_id"):
        frame[column] = frame[column].astype("int64")
    frame["slice"] = frame["slice"].astype(str)
    return frame


def pre_period(engine: Engine, experiment: str, days: float) -> pd.DataFrame:
    """Per user of the experiment: first in-experiment exposure and likes and views in the ``days`` before it.

    Columns ``user_id``, ``first_exposure``, ``pre_likes``, ``pre_views``; users without any
    pre-period activity have 0 and 0.
    """
    require_exposures(engine)
    where, params = Scope(experiment).where()
    if _postgres(engine):
        start = "u.first_exposure - make_interval(secs => :pre_seconds)"
        before = 'f."timestamp" < u.first_exposure'
        after = f'f."timestamp" >= {start}'
    else:
        ts, first = _epoch(engine, 'f."timestamp"'), _epoch(engine, "u.first_exposure")
        before, after = f"{ts} < {first}", f"{ts} >= {first} - :pre_seconds"
    sql = f"""
        WITH u AS (
            SELECT user_id, MIN(request_time) AS first_exposure FROM {Tables.EXPOSURES}
            WHERE {where} GROUP BY user_id
        )
        SELECT u.user_id, u.first_exposure,
               COALESCE(SUM(CASE WHEN f.action = 'like' THEN 1 ELSE 0 END), 0) AS pre_likes,
               COALESCE(SUM(CASE WHEN f.action = 'view' THEN 1 ELSE 0 END), 0) AS pre_views
        FROM u LEFT JOIN {Tables.FEED} f ON f.user_id = u.user_id AND {before} AND {after}
        GROUP BY u.user_id, u.first_exposure
    """
    params["pre_seconds"] = float(days) * 86400.0
    frame = _read(engine, sql, params, parse_dates=["first_exposure"])
    for column in ("user_id", "pre_likes", "pre_views"):
        frame[column] = frame[column].astype("int64")
    return frame


def user_groups(engine: Engine, scope: Scope) -> pd.DataFrame:
    """Per (user, group) of the experiment in range (arms and interleaved; the topic ignored: a
    user's assignment is per experiment): ``user_id``, ``arm``, ``requests``. A user on two rows
    was seen in more than one group; the users per group feed the SRM check."""
    require_exposures(engine)
    where, params = Scope(scope.experiment, scope.since, scope.until).where()
    sql = f"SELECT user_id, arm, COUNT(*) AS requests FROM {Tables.EXPOSURES} WHERE {where} GROUP BY user_id, arm"
    frame = read_frame(engine, sql, params=params)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["arm"] = frame["arm"].astype(str)
    return frame


def not_in_experiment(engine: Engine, scope: Scope) -> int:
    """Requests of the experiment in range that were served outside it (coverage, disabled)."""
    require_exposures(engine)
    where, params = scope.where()
    where = where.replace("in_experiment = :yes", "in_experiment = :no")
    params["no"] = False
    sql = f"SELECT COUNT(*) AS n FROM {Tables.EXPOSURES} WHERE {where}"
    return int(read_frame(engine, sql, params=params)["n"].iloc[0])


def served_by_arm(engine: Engine, scope: Scope) -> pd.DataFrame:
    """Requests of the experiment in range per (arm, served_by): ``served_by`` is None for the
    arm's model (in-experiment rows) and the fallback's reason (shed, deadline) for requests
    answered with the popularity fallback (logged outside the experiment)."""
    require_exposures(engine)
    if "served_by" not in {c["name"] for c in inspect(engine).get_columns(Tables.EXPOSURES)}:
        return pd.DataFrame({"arm": [], "served_by": [], "requests": []})  # logged before fallbacks
    where, params = scope.where()
    where = where.replace("in_experiment = :yes", "(in_experiment = :yes OR served_by IS NOT NULL)")
    sql = (
        f"SELECT arm, served_by, COUNT(*) AS requests FROM {Tables.EXPOSURES} WHERE {where} "
        "GROUP BY arm, served_by"
    )
    return read_frame(engine, sql, params=params)


def model_versions(engine: Engine, scope: Scope) -> pd.DataFrame:
    """Per (arm, model version) of the A/B arms: requests, first and last request time."""
    require_exposures(engine)
    where, params = scope.where()
    sql = (
        "SELECT arm, model_version, COUNT(*) AS requests, "
        "MIN(request_time) AS first_request, MAX(request_time) AS last_request "
        f"FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved GROUP BY arm, model_version "
        "ORDER BY MIN(request_time), arm"
    )
    params["interleaved"] = INTERLEAVED
    return read_frame(engine, sql, params=params, parse_dates=["first_request", "last_request"])


LATENCY_BUCKET = 1.02
"""Latency histograms: buckets 2 % wide (a quantile read from them is within 2 % of the exact one)."""


def latency_histogram(engine: Engine, scope: Scope, *, requests: int, tail: float = 0.9) -> pd.DataFrame:
    """Per (arm, user, latency bucket) of the A/B arms, for the requests at or above a cut-off near
    the ``tail`` quantile of their latencies: ``latency`` (the bucket's lower edge, ms), ``requests``.

    A quantile above the cut-off (p99) bootstrapped over users needs only these rows and each
    user's total requests (``requests`` is the A/B arms' total, from ``user_sums``). The cut-off
    is the lowest arm's ``tail`` quantile in a sample of about 100,000 requests (users with
    ``user_id`` divisible by m).
    """
    require_exposures(engine)
    where, params = scope.where()
    step = max(1, int(requests) // 100_000)
    params |= {"interleaved": INTERLEAVED, "base": LATENCY_BUCKET, "step": step}
    sample = f"FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved AND MOD(user_id, :step) = 0"
    counts = read_frame(engine, f"SELECT arm, COUNT(*) AS n {sample} GROUP BY arm", params=params)
    cuts = []
    for arm, n in zip(counts["arm"], counts["n"], strict=True):  # the lowest arm's tail sets the cut
        cut = read_frame(
            engine,
            f"SELECT latency_ms {sample} AND arm = :arm ORDER BY latency_ms LIMIT 1 OFFSET :offset",
            params=params | {"arm": arm, "offset": int(max(0, math.floor(tail * int(n)) - 1))},
        )
        cuts += [float(cut["latency_ms"].iloc[0])] if len(cut) else []
    params["cut"] = min(cuts, default=0.0)
    bucket = "FLOOR(LN(CASE WHEN latency_ms > 0.01 THEN latency_ms ELSE 0.01 END) / LN(:base))"
    sql = f"""
        SELECT arm, user_id, {bucket} AS b, COUNT(*) AS requests
        FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved AND latency_ms >= :cut
        GROUP BY arm, user_id, {bucket}
    """
    frame = _read(engine, sql, params)
    frame["latency"] = LATENCY_BUCKET ** frame["b"].astype(float)
    frame["user_id"] = frame["user_id"].astype("int64")
    return frame.drop(columns="b")


def engagement(engine: Engine, scope: Scope, *, window_seconds: float) -> pd.DataFrame:
    """Per user of the A/B arms: likes and views in ``feed_data`` from their first request in
    range to ``window`` after their last (``user_id``, ``likes``, ``views``)."""
    require_exposures(engine)
    where, params = scope.where()
    if _postgres(engine):
        after = 'f."timestamp" >= u.first_t AND f."timestamp" <= u.last_t + make_interval(secs => :window)'
    else:
        ts, first, last = (
            _epoch(engine, 'f."timestamp"'),
            _epoch(engine, "u.first_t"),
            _epoch(engine, "u.last_t"),
        )
        after = f"{ts} >= {first} AND {ts} <= {last} + :window"
    sql = f"""
        WITH u AS (
            SELECT user_id, MIN(request_time) AS first_t, MAX(request_time) AS last_t FROM {Tables.EXPOSURES}
            WHERE {where} AND arm <> :interleaved GROUP BY user_id
        )
        SELECT u.user_id,
               COALESCE(SUM(CASE WHEN f.action = 'like' THEN 1 ELSE 0 END), 0) AS likes,
               COALESCE(SUM(CASE WHEN f.action = 'view' THEN 1 ELSE 0 END), 0) AS views
        FROM u LEFT JOIN {Tables.FEED} f ON f.user_id = u.user_id AND {after}
        GROUP BY u.user_id
    """
    params |= {"interleaved": INTERLEAVED, "window": float(window_seconds)}
    frame = _read(engine, sql, params)
    for column in ("user_id", "likes", "views"):
        frame[column] = frame[column].astype("int64")
    return frame


LIST_SAMPLE = 100_000
"""Served lists read for diversity and coverage: about this many requests (a sample of users)."""


def _served_top_k(engine: Engine) -> tuple[str, str]:
    """FROM-clause fragment unnesting ``x.post_ids`` (a JSON list) and the condition keeping the first k."""
    if _postgres(engine):
        return (
            "CROSS JOIN LATERAL json_array_elements_text(x.post_ids::json) WITH ORDINALITY AS p(value, pos)",
            "p.pos <= :k",
        )
    return "JOIN json_each(x.post_ids) AS p", "p.key < :k"


def served_lists(
    engine: Engine, scope: Scope, *, requests: int, k: int = K
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Topic diversity and catalogue coverage of the served top ``k``, on the users whose
    ``user_id`` is divisible by m (about ``LIST_SAMPLE`` requests of ``requests``; all when fewer):

    * per (arm, user): ``lists`` and ``topics`` (Σ over their requests of the distinct topics
      in the top k), for a user-clustered ratio;
    * per arm: ``posts`` (distinct posts served in the top k) and ``catalogue`` (posts in the
      catalogue), for coverage.
    """
    require_exposures(engine)
    if not table_exists(engine, Tables.POSTS):
        return pd.DataFrame(columns=["arm", "user_id", "lists", "topics"]), pd.DataFrame(
            columns=["arm", "posts", "catalogue"]
        )
    where, params = scope.where("x")
    step = max(1, int(requests) // LIST_SAMPLE)
    unnest, keep = _served_top_k(engine)
    params |= {"interleaved": INTERLEAVED, "k": k, "step": step}
    served = f"""
        WITH s AS (
            SELECT x.request_id, x.arm, x.user_id, CAST(p.value AS INTEGER) AS post_id
            FROM {Tables.EXPOSURES} x {unnest}
            WHERE {where} AND x.arm <> :interleaved AND MOD(x.user_id, :step) = 0 AND {keep}
        )
    """
    per_user = _read(
        engine,
        served
        + f"""
        , t AS (
            SELECT s.request_id, s.arm, s.user_id, COUNT(DISTINCT q.topic) AS topics
            FROM s JOIN {Tables.POSTS} q ON q.post_id = s.post_id GROUP BY s.request_id, s.arm, s.user_id
        )
        SELECT arm, user_id, COUNT(*) AS lists, SUM(topics) AS topics FROM t GROUP BY arm, user_id
        """,
        params,
    )
    coverage = _read(
        engine,
        served
        + f"SELECT arm, COUNT(DISTINCT post_id) AS posts, (SELECT COUNT(*) FROM {Tables.POSTS}) AS catalogue "
        "FROM s GROUP BY arm",
        params,
    )
    per_user["user_id"] = per_user["user_id"].astype("int64")
    per_user.attrs["sample_step"] = step
    return per_user, coverage
