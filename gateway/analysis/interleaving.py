"""``recsys analyze`` on interleaved requests: credit likes to teams, test the preference.

The I/O edge; the maths is in ``preference.py``. Only interleaved, in-experiment exposures
with their teams are read (``arm = 'interleaved'``), and the likes of their window. A like
of a served post within ``window`` after the request time credits the team that placed the
post (any served position: the user saw the whole list); each liked post counts once per
request. The A/B comparison never sees these rows (``ab_requests``).
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.preference import preference_statistic, preference_test, winners
from gateway.analysis.report import AnalysisError, load_likes, parse_window
from gateway.analysis.srm import srm_over_groups  # noqa: F401  (re-exported: callers import it from here)
from gateway.assignment import INTERLEAVED
from gateway.storage import read_frame, table_exists
from gateway.tables import Tables

METHOD = "team-draft interleaving; delta method on per-user sums (ratio metric), one-sample t-test of 0"


def ab_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """The A/B arms' requests only: interleaved ones are analysed by ``analyze_interleaving``."""
    return requests[requests["arm"] != INTERLEAVED]


def load_interleaved(engine: Engine, experiment: str, since: str | None = None) -> pd.DataFrame:
    """In-experiment interleaved exposures with their teams (none when the table or the rows are absent)."""
    if not table_exists(engine, Tables.EXPOSURES):
        return pd.DataFrame(columns=["request_id", "request_time", "user_id", "post_ids", "teams"])
    sql = (
        f"SELECT request_id, request_time, user_id, in_experiment, post_ids, teams FROM {Tables.EXPOSURES} "
        "WHERE experiment = :experiment AND arm = :arm AND teams IS NOT NULL"
    )
    frame = read_frame(
        engine, sql, parse_dates=["request_time"], params={"experiment": experiment, "arm": INTERLEAVED}
    )
    frame = frame[frame["in_experiment"].astype(str).str.lower().isin(("1", "true", "t"))]
    if since is not None:
        try:
            frame = frame[frame["request_time"] >= pd.Timestamp(since)]
        except ValueError as exc:
            raise AnalysisError(f"bad --since {since!r}: use an ISO date or datetime") from exc
    return frame.drop(columns="in_experiment").reset_index(drop=True)


def credit(exposures: pd.DataFrame, likes: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Per request: (request_id, user_id, team, credited likes) for every team that got one."""
    positions = pd.DataFrame(
        [
            (request_id, user, t, int(post), team)
            for request_id, user, t, posts, teams in exposures[
                ["request_id", "user_id", "request_time", "post_ids", "teams"]
            ].itertuples(index=False)
            for post, team in zip(json.loads(posts), json.loads(teams), strict=True)
        ],
        columns=["request_id", "user_id", "request_time", "post_id", "team"],
    )
    joined = positions.merge(likes, on=["user_id", "post_id"], how="inner")
    inside = (joined["timestamp"] > joined["request_time"]) & (
        joined["timestamp"] <= joined["request_time"] + window
    )
    liked = joined.loc[inside, ["request_id", "user_id", "post_id", "team"]].drop_duplicates()
    return liked.groupby(["request_id", "user_id", "team"]).size().rename("likes").reset_index()


def summarise(exposures: pd.DataFrame, credited: pd.DataFrame, control: str, treatment: str) -> dict:
    """Wins, ties and the user-clustered preference for ``treatment`` over ``control``."""
    per_request = (
        credited.pivot_table(index="request_id", columns="team", values="likes", aggfunc="sum", fill_value=0)
        .reindex(index=exposures["request_id"], columns=[control, treatment], fill_value=0)
        .fillna(0)
    )
    outcome = winners(per_request[control].to_numpy(), per_request[treatment].to_numpy())
    users = (
        pd.DataFrame(
            {"user_id": exposures["user_id"].to_numpy(), "control": outcome < 0, "treatment": outcome > 0}
        )
        .groupby("user_id")[["control", "treatment"]]
        .sum()
    )
    result = preference_test(preference_statistic(users["control"], users["treatment"]))
    summary = {
        "control": control,
        "treatment": treatment,
        "requests": len(exposures),
        "users": int(exposures["user_id"].nunique()),
        "wins": {control: int((outcome < 0).sum()), treatment: int((outcome > 0).sum())},
        "ties": int((outcome == 0).sum()),
        "credited_likes": {
            control: int(per_request[control].sum()),
            treatment: int(per_request[treatment].sum()),
        },
        "preference": result.preference,
        "ci95": list(result.ci95),
        "p_value": result.p_value,
        "method": METHOD,
    }
    if result.message:
        summary["message"] = result.message
    return summary


def analyze_interleaving(
    engine: Engine,
    *,
    experiment: str,
    window: str,
    control: str,
    treatment: str,
    since: str | None = None,
) -> dict | None:
    """The interleaving result of ``experiment``, or None when it has no interleaved requests."""
    exposures = load_interleaved(engine, experiment, since)
    if exposures.empty:
        return None
    span = parse_window(window)
    likes = load_likes(engine, exposures["request_time"].min(), exposures["request_time"].max() + span)
    return summarise(exposures, credit(exposures, likes, span), control, treatment)
