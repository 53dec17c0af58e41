"""``recsys analyze``: exposures joined with likes → per-arm Hitrate@5 and the tests.

This is the I/O edge of the analysis: SQL reads and pandas reshaping into per-user
sufficient statistics; the maths is in ``statistics.py``. A request is a **hit** when the
user liked at least one of its first 5 served posts within ``window`` after the request time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine, inspect

from gateway.analysis.statistics import RatioStatistic, SampleMeanStatistic, srm_check, two_sided_ttest
from gateway.assignment import INTERLEAVED, Experiment
from gateway.config import Settings
from gateway.ranking import Z_95, K
from gateway.storage import read_frame, table_exists
from gateway.tables import Tables


class AnalysisError(RuntimeError):
    pass


def parse_window(text: str) -> pd.Timedelta:
    try:
        window = pd.Timedelta(text)
    except ValueError as exc:
        raise AnalysisError(f"bad window {text!r}: use e.g. 1h, 30min, 2h") from exc
    if window <= pd.Timedelta(0):
        raise AnalysisError("the window must be positive")
    return window


def load_exposures(engine: Engine, experiment: str | None) -> pd.DataFrame:
    if not table_exists(engine, Tables.EXPOSURES):
        raise AnalysisError(
            "no exposures table: serve traffic through the gateway first (`recsys serve`, `recsys simulate`)"
        )
    columns = {c["name"] for c in inspect(engine).get_columns(Tables.EXPOSURES)}
    served_by = "served_by" if "served_by" in columns else "NULL AS served_by"  # logged before it existed
    sql = (
        "SELECT request_id, request_time, user_id, experiment, arm, in_experiment, model_version, post_ids, "
        f"topic, mood, cold_start, {served_by} FROM {Tables.EXPOSURES}"
    )
    frame = read_frame(engine, sql, parse_dates=["request_time"])
    if experiment is not None:
        frame = frame[frame["experiment"] == experiment]
    if frame.empty:
        raise AnalysisError(f"no exposures{' for experiment ' + repr(experiment) if experiment else ''}")
    frame["in_experiment"] = frame["in_experiment"].astype(str).str.lower().isin(("1", "true", "t"))
    return frame


def load_likes(engine: Engine, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    sql = (
        "SELECT user_id, post_id, \"timestamp\" FROM feed_data WHERE action = 'like' "
        'AND "timestamp" > :since AND "timestamp" <= :until'
    )
    bounds = {"since": f"{since:%Y-%m-%d %H:%M:%S}", "until": f"{until:%Y-%m-%d %H:%M:%S}"}
    return read_frame(engine, sql, parse_dates=["timestamp"], params=bounds)


def mark_hits(exposures: pd.DataFrame, likes: pd.DataFrame, window: pd.Timedelta, k: int = K) -> pd.Series:
    """Per exposure: did the user like one of its first ``k`` posts in (t, t + window]?"""
    served = exposures[["request_id", "user_id", "request_time", "post_ids"]].copy()
    served["post_id"] = served["post_ids"].map(
        lambda text: json.loads(text)[:k] if isinstance(text, str) else list(text)[:k]
    )
    served = served.explode("post_id").dropna(subset=["post_id"])
    served["post_id"] = served["post_id"].astype(np.int64)
    joined = served.merge(likes, on=["user_id", "post_id"], how="inner")
    inside = (joined["timestamp"] > joined["request_time"]) & (
        joined["timestamp"] <= joined["request_time"] + window
    )
    hit_ids = set(joined.loc[inside, "request_id"])
    return exposures["request_id"].isin(hit_ids)


def per_user(requests: pd.DataFrame) -> pd.DataFrame:
    return (
        requests.groupby(["arm", "user_id"]).agg(requests=("hit", "size"), hits=("hit", "sum")).reset_index()
    )


def ratio_statistic(users: pd.DataFrame) -> RatioStatistic:
    m, d = users["hits"].to_numpy(float), users["requests"].to_numpy(float)
    return RatioStatistic(len(users), m.sum(), (m**2).sum(), d.sum(), (d**2).sum(), (m * d).sum())


def mean_statistic(values: np.ndarray) -> SampleMeanStatistic:
    values = np.asarray(values, dtype=float)
    return SampleMeanStatistic(len(values), values.sum(), (values**2).sum())


@dataclass
class ArmSummary:
    users: int
    requests: int
    hits: int
    hitrate: float
    model_versions: list[str] = field(default_factory=list)
    ci95: list[float] = field(default_factory=list)


def compare(requests: pd.DataFrame, control: str, treatment: str, weights: dict[str, float]) -> dict:
    """The result object for one set of requests (already filtered to the experiment)."""
    users = per_user(requests)
    arms = {}
    for arm, group in users.groupby("arm"):
        stat = ratio_statistic(group)
        half = Z_95 * (stat.variance / stat.n) ** 0.5 if stat.n > 1 else float("nan")
        arms[arm] = ArmSummary(
            users=len(group),
            requests=int(group["requests"].sum()),
            hits=int(group["hits"].sum()),
            hitrate=round(float(group["hits"].sum() / group["requests"].sum()), 6),
            model_versions=sorted(requests.loc[requests["arm"] == arm, "model_version"].unique().tolist()),
            ci95=[round(float(stat.mean - half), 6), round(float(stat.mean + half), 6)],
        ).__dict__
    result: dict = {"arms": arms}
    names = [a for a in weights if a in arms] or sorted(arms)
    srm = srm_check([arms[a]["users"] if a in arms else 0 for a in weights], list(weights.values()))
    result["srm"] = {
        "p_value": srm.p_value,
        "flag": srm.flag,
        "chi2": srm.chi2,
        "users": {a: arms.get(a, {}).get("users", 0) for a in weights},
        "expected": dict(zip(weights, srm.expected, strict=True)),
    }
    if control in arms and treatment in arms:
        c, t = users[users["arm"] == control], users[users["arm"] == treatment]
        test = two_sided_ttest(ratio_statistic(c), ratio_statistic(t))
        result["delta"] = {
            "absolute": test.absolute,
            "relative": test.relative,
            "ci95_absolute": list(test.ci95_absolute),
            "ci95_relative": list(test.ci95_relative),
            "p_value": test.p_value,
            "method": "delta method on per-user sums (ratio metric)",
        }
        if test.message:
            result["delta"]["message"] = test.message
        welch = two_sided_ttest(
            mean_statistic(c["hits"] / c["requests"]), mean_statistic(t["hits"] / t["requests"])
        )
        result["welch"] = {"p_value": welch.p_value, "method": "Welch's t-test on per-user hit rates"}
    else:
        result["delta"] = {
            "message": f"need both arms {control!r} and {treatment!r} to compare; have {names}"
        }
        result["welch"] = {"p_value": None}
    return result


def experiment_requests(
    engine: Engine, *, experiment: str | None, window: str, topic: str | None = None, since: str | None = None
) -> tuple[pd.DataFrame, int]:
    """In-experiment exposures (request time >= ``since``) with a ``hit`` column, and how many were excluded."""
    exposures = load_exposures(engine, experiment)
    if since is not None:
        try:
            exposures = exposures[exposures["request_time"] >= pd.Timestamp(since)]
        except ValueError as exc:
            raise AnalysisError(f"bad --since {since!r}: use an ISO date or datetime") from exc
    excluded = int((~exposures["in_experiment"] & exposures["served_by"].isna()).sum())
    exposures = exposures[exposures["in_experiment"] | exposures["served_by"].notna()]
    if topic is not None:
        exposures = exposures[exposures["topic"] == topic]
    if exposures.empty:
        raise AnalysisError("no in-experiment exposures to analyse")
    span = parse_window(window)
    likes = load_likes(engine, exposures["request_time"].min(), exposures["request_time"].max() + span)
    return exposures.assign(hit=mark_hits(exposures, likes, span).to_numpy()), excluded


def fallback_guardrail(requests: pd.DataFrame) -> dict:
    """Requests each arm's users got the popularity fallback instead of the arm's model (shed by
    admission control or past the deadline; never part of the comparison), and whether their
    split by arm departs from the split of all requests (a chi-square test as for SRM): one arm
    shed or late more than the other is a finding in itself."""
    per_arm = requests.groupby("arm")["served_by"].agg(lambda s: int(s.notna().sum()))
    totals = requests.groupby("arm").size()
    check = srm_check(per_arm.tolist(), totals.tolist())
    return {
        "per_arm": {str(a): int(n) for a, n in per_arm.items()},
        "share": {str(a): round(per_arm[a] / totals[a], 6) for a in per_arm.index},
        "by_reason": {str(k): int(v) for k, v in requests["served_by"].value_counts().items()},
        "p_value": round(check.p_value, 6),
        "flag": check.flag,
    }


SPLITS = ("topic", "cold_start", "mood")


def split_groups(requests: pd.DataFrame, by: str):
    """Groups of requests by topic (none = unfiltered), cold start, or whether a mood was sent."""
    if by not in SPLITS:
        raise AnalysisError(f"cannot split by {by!r}: use one of {', '.join(SPLITS)}")
    if by == "topic":
        key = requests["topic"].fillna("(none)")
    elif by == "cold_start":
        key = (
            requests["cold_start"]
            .astype(str)
            .str.lower()
            .isin(("1", "true", "t"))
            .map({True: "cold start", False: "known user"})
        )
    else:
        key = requests["mood"].notna().map({True: "with mood", False: "without mood"})
    return requests.groupby(key)


def cumulative_hitrate(requests: pd.DataFrame, freq: str = "1h") -> pd.DataFrame:
    """Hitrate@5 per arm accumulated over request time (rows: time bins, columns: arms)."""
    binned = requests.set_index("request_time").groupby("arm").resample(freq)["hit"].agg(["sum", "count"])
    cumulative = binned.groupby(level="arm").cumsum()
    return (cumulative["sum"] / cumulative["count"]).unstack("arm").ffill()


def analyze(
    engine: Engine,
    *,
    experiment: str | None,
    window: str,
    weights: dict[str, float],
    control: str = "control",
    treatment: str = "test",
    topic: str | None = None,
    since: str | None = None,
    split_by: str | None = None,
    groups: Experiment | None = None,
) -> dict:
    """The A/B comparison; interleaved requests are left to ``interleaving.analyze_interleaving``
    but, given the experiment's ``groups``, counted in an SRM check over every group."""
    exposures, excluded = experiment_requests(
        engine, experiment=experiment, window=window, topic=topic, since=since
    )
    fallbacks = fallback_guardrail(exposures)
    exposures = exposures[exposures["served_by"].isna()]
    users_per_group = exposures.groupby("arm")["user_id"].nunique().to_dict()
    exposures = exposures[exposures["arm"] != INTERLEAVED]
    result = {
        "experiment": experiment or ", ".join(sorted(exposures["experiment"].unique())),
        "window": window,
        **compare(exposures, control, treatment, weights),
        "excluded_not_in_experiment": excluded,
        "fallbacks": fallbacks,
    }
    if groups is not None and groups.interleaving:
        from gateway.analysis.interleaving import srm_over_groups  # it reads likes through this module

        result["srm"] = srm_over_groups(groups, users_per_group)
    if split_by is not None:
        result["by"] = {
            "field": split_by,
            "groups": {
                str(k): compare(g, control, treatment, weights) for k, g in split_groups(exposures, split_by)
            },
        }
    # A model swap during the experiment: each arm's figures per model version that served.
    versions = exposures.groupby("arm")["model_version"].nunique()
    if (versions > 1).any():
        splits = []
        for (arm, version), group in exposures.groupby(["arm", "model_version"]):
            splits.append(
                {
                    "arm": arm,
                    "model_version": version,
                    "users": int(group["user_id"].nunique()),
                    "requests": int(len(group)),
                    "hits": int(group["hit"].sum()),
                    "hitrate": round(float(group["hit"].mean()), 6),
                    "first_request": str(group["request_time"].min()),
                    "last_request": str(group["request_time"].max()),
                }
            )
        result["by_model_version"] = splits
    return result


def analyze_experiment(
    settings: Settings,
    engine: Engine,
    *,
    experiment: str | None = None,
    window: str = "1h",
    topic: str | None = None,
    since: str | None = None,
    split_by: str | None = None,
) -> dict:
    """``analyze`` for the experiment in ``settings``: its arms' weights, its first arm as control
    and its second as treatment."""
    weights = {a.name: a.weight for a in settings.experiment.arms}
    names = list(weights)
    name = experiment or settings.experiment.name
    result = analyze(
        engine,
        experiment=name,
        window=window,
        weights=weights,
        control=names[0],
        treatment=names[1],
        topic=topic,
        since=since,
        split_by=split_by,
        groups=Experiment.from_settings(settings.experiment),
    )
    from gateway.analysis.interleaving import analyze_interleaving  # it reads likes through this module

    interleaving = analyze_interleaving(
        engine, experiment=name, window=window, control=names[0], treatment=names[1], since=since
    )
    if interleaving is not None:
        result["interleaving"] = interleaving
    return result
