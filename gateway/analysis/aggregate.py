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

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, inspect

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
    ``latency_sum``, ``latency_sum_squares``, ``first_request``, ``last_request``. Interleaved
    requests are not A/B requests and are left out.
    """
    require_exposures(engine)
    where, params = scope.where()
    inside = _inside_window(engine, 'f."timestamp"', "e.request_time")
    # Likes outside [first request, last request + window] cannot be hits: a constant filter
    # that keeps the pre-period's likes out of the join.
    upper = (
        "(SELECT MAX(request_time) FROM e) + make_interval(secs => :window)"
        if _postgres(engine)
        else "datetime((SELECT MAX(request_time) FROM e), '+' || CAST(CAST(:window AS INTEGER) + 1 AS TEXT) || ' seconds')"
    )
    sql = f"""
        WITH e AS (
            SELECT request_id, user_id, arm, request_time, post_ids, latency_ms, model_version,
                   {_slice_expression(engine, by)} AS slice
            FROM {Tables.EXPOSURES}
            WHERE {where} AND arm <> :interleaved
        ),
        h AS (
            SELECT DISTINCT e.request_id FROM e
            JOIN {Tables.FEED} f ON f.user_id = e.user_id
                AND f."timestamp" > (SELECT MIN(request_time) FROM e) AND f."timestamp" <= {upper}
            WHERE f.action = 'like' AND {inside} AND {_in_first_k(engine, "f.post_id", "e.post_ids")}
        )
        SELECT e.slice, e.arm, e.user_id, COUNT(*) AS requests, COUNT(h.request_id) AS hits,
               SUM(e.latency_ms) AS latency_sum, SUM(e.latency_ms * e.latency_ms) AS latency_sum_squares,
               MIN(e.request_time) AS first_request, MAX(e.request_time) AS last_request,
               MIN(e.model_version) AS first_version, MAX(e.model_version) AS last_version
        FROM e LEFT JOIN h ON h.request_id = e.request_id
        GROUP BY e.slice, e.arm, e.user_id
    """
    params |= {"interleaved": INTERLEAVED, "k": k, "window": float(window_seconds)}
    frame = read_frame(engine, sql, params=params, parse_dates=["first_request", "last_request"])
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
    frame = read_frame(engine, sql, params=params, parse_dates=["first_exposure"])
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
    """Per (arm, model version) of the A/B arms: users, requests, first and last request time."""
    require_exposures(engine)
    where, params = scope.where()
    sql = (
        "SELECT arm, model_version, COUNT(DISTINCT user_id) AS users, COUNT(*) AS requests, "
        "MIN(request_time) AS first_request, MAX(request_time) AS last_request "
        f"FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved GROUP BY arm, model_version "
        "ORDER BY MIN(request_time), arm"
    )
    params["interleaved"] = INTERLEAVED
    return read_frame(engine, sql, params=params, parse_dates=["first_request", "last_request"])


LATENCY_BUCKET = 1.02
"""Latency histograms: buckets 2 % wide (a quantile read from them is within 2 % of the exact one)."""


def latency_histogram(engine: Engine, scope: Scope) -> pd.DataFrame:
    """Per (arm, user, latency bucket) of the A/B arms: ``latency`` (the bucket's lower edge, ms) and ``requests``.

    Enough for a quantile of per-request latency bootstrapped over users, without reading
    every request: a user contributes one row per distinct bucket.
    """
    require_exposures(engine)
    where, params = scope.where()
    sql = f"""
        SELECT arm, user_id, FLOOR(LN(CASE WHEN latency_ms > 0.01 THEN latency_ms ELSE 0.01 END) / LN(:base)) AS b,
               COUNT(*) AS requests
        FROM {Tables.EXPOSURES} WHERE {where} AND arm <> :interleaved
        GROUP BY arm, user_id, FLOOR(LN(CASE WHEN latency_ms > 0.01 THEN latency_ms ELSE 0.01 END) / LN(:base))
    """
    params |= {"interleaved": INTERLEAVED, "base": LATENCY_BUCKET}
    frame = read_frame(engine, sql, params=params)
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
    frame = read_frame(engine, sql, params=params)
    for column in ("user_id", "likes", "views"):
        frame[column] = frame[column].astype("int64")
    return frame
