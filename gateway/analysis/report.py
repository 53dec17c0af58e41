"""``recsys analyze``: the experiment's decision from the exposure log and the feed's likes.

The I/O edge of the A/B analysis, thin: the database computes per-user sufficient statistics
(``aggregate.py``, SQL in PostgreSQL and SQLite), and ``decision.py`` turns them into the
tests (pure). A request is a **hit** when the user liked at least one of its first 5 served
posts within ``window`` after the request time.

What is compared: the in-experiment requests of the A/B arms in ``[since, until)``; users
seen in more than one group are excluded and counted (``"excluded"``); interleaved requests
are left to ``interleaving.analyze_interleaving`` but counted in the SRM check, whose
expected counts are the shares the assignment can realise (``assignment.realised_shares``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.aggregate import (
    SLICES,
    AnalysisError,
    Scope,
    engagement,
    latency_histogram,
    model_versions,
    not_in_experiment,
    pre_period,
    require_exposures,
    served_by_arm,
    served_lists,
    user_groups,
    user_sums,
)
from gateway.analysis.decision import (
    PRIMARY_METRIC,
    ArmUsers,
    adjust_p_values,
    arm_summary,
    compare,
    compare_many,
)
from gateway.analysis.guardrails import ArmMetrics, guardrails, secondary
from gateway.analysis.sequential import DEFAULT_TUNING
from gateway.analysis.srm import srm_check, srm_over_groups
from gateway.analysis.statistics import RatioStatistic
from gateway.assignment import Experiment
from gateway.config import Settings
from gateway.storage import read_frame

__all__ = ["SLICES", "AnalysisError", "analyze", "analyze_experiment", "effect_over_time", "parse_window"]

DEFAULT_CUPED_DAYS = 14.0


def parse_window(text: str) -> pd.Timedelta:
    try:
        window = pd.Timedelta(text)
    except ValueError as exc:
        raise AnalysisError(f"bad window {text!r}: use e.g. 1h, 30min, 2h") from exc
    if window <= pd.Timedelta(0):
        raise AnalysisError("the window must be positive")
    return window


def parse_time(text: str | None, option: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except ValueError as exc:
        raise AnalysisError(f"bad {option} {text!r}: use an ISO date or datetime") from exc


def load_likes(engine: Engine, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    sql = (
        "SELECT user_id, post_id, \"timestamp\" FROM feed_data WHERE action = 'like' "
        'AND "timestamp" > :since AND "timestamp" <= :until'
    )
    bounds = {"since": f"{since:%Y-%m-%d %H:%M:%S}", "until": f"{until:%Y-%m-%d %H:%M:%S}"}
    return read_frame(engine, sql, parse_dates=["timestamp"], params=bounds)


def _scope(experiment: str, since: str | None, until: str | None, topic: str | None = None) -> Scope:
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if start is not None and end is not None and end <= start:
        raise AnalysisError(f"--until {until!r} must be after --since {since!r}")
    return Scope(experiment, start, end, topic)


def with_pre_period(sums: pd.DataFrame, pre: pd.DataFrame | None) -> pd.DataFrame:
    """Per-user sums with ``pre_likes``, ``pre_views`` (0 for users without a pre-period)."""
    if pre is None:
        return sums.assign(pre_likes=0, pre_views=0)
    merged = sums.merge(pre[["user_id", "pre_likes", "pre_views"]], on="user_id", how="left")
    return merged.fillna({"pre_likes": 0, "pre_views": 0})


def arm_users(users: pd.DataFrame, arms: list[str]) -> dict[str, ArmUsers]:
    """Per-user sums of each arm present (totals over slices when the frame is split)."""
    totals = users.groupby(["arm", "user_id"], as_index=False)[
        ["requests", "hits", "pre_likes", "pre_views"]
    ].agg({"requests": "sum", "hits": "sum", "pre_likes": "first", "pre_views": "first"})
    return {a: ArmUsers.from_frame(totals[totals["arm"] == a]) for a in arms if (totals["arm"] == a).any()}


def decide(
    users: pd.DataFrame,
    control: str,
    treatment: str,
    arm_names: list[str],
    *,
    planned_users: float = DEFAULT_TUNING,
) -> dict:
    """``arms``, ``delta``, ``cuped``, ``sequential``, ``welch`` (and ``comparisons`` with more
    than two arms) for a set of per-user rows."""
    present = arm_users(users, arm_names or sorted(users["arm"].unique()))
    arms = {a: arm_summary(u) for a, u in present.items()}
    result: dict = {"arms": arms}
    if control in present and treatment in present:
        if len(present) > 2:
            comparisons = compare_many(present, control, planned_users=planned_users)
            result |= comparisons[treatment]
            result["comparisons"] = comparisons
        else:
            result |= compare(present[control], present[treatment], planned_users=planned_users)
    else:
        message = f"need both arms {control!r} and {treatment!r} to compare; have {sorted(present)}"
        none = {"p_value": 1.0, "message": message}
        result |= {
            "delta": dict(none),
            "cuped": dict(none),
            "sequential": dict(none),
            "welch": {"p_value": None},
        }
    return result


def _phases(versions: pd.DataFrame, scope: Scope) -> list[tuple[pd.Timestamp | None, pd.Timestamp | None]]:
    """[start, end) of each period in which no arm changed model version (one when none changed)."""
    if versions.groupby("arm")["model_version"].nunique().max() <= 1:
        return []
    later = versions.sort_values("first_request").groupby("arm").tail(-1)  # each arm's later versions
    starts = sorted(later["first_request"].unique())
    bounds = [scope.since, *[pd.Timestamp(s) for s in starts], scope.until]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def fallback_guardrail(counts: pd.DataFrame) -> dict:
    """Requests each arm's users got the popularity fallback instead of the arm's model (shed by
    admission control or past the deadline; never in the comparison), and whether their split by
    arm departs from the split of all requests (chi-square, as for SRM): one arm shed or late
    more often than the other is a finding in itself."""
    fallback = counts[counts["served_by"].notna()]
    totals = counts.groupby("arm")["requests"].sum().astype(int)
    per_arm = fallback.groupby("arm")["requests"].sum().reindex(totals.index, fill_value=0).astype(int)
    check = srm_check(per_arm.tolist(), totals.tolist()) if len(totals) else None
    return {
        "per_arm": {str(a): int(n) for a, n in per_arm.items()},
        "share": {str(a): round(int(per_arm[a]) / int(totals[a]), 6) for a in totals.index},
        "by_reason": {str(k): int(v) for k, v in fallback.groupby("served_by")["requests"].sum().items()},
        "p_value": round(check.p_value, 6) if check else 1.0,
        "flag": bool(check.flag) if check else False,
    }


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
    until: str | None = None,
    split_by: str | None = None,
    groups: Experiment | None = None,
    cuped_days: float = DEFAULT_CUPED_DAYS,
    planned_users: float = DEFAULT_TUNING,
    guardrail_rules: Sequence = (),
) -> dict:
    """The A/B decision for ``experiment`` (see the module docstring); ``weights`` name the arms,
    ``groups`` (the configured experiment) gives the realisable shares for the SRM check."""
    name = experiment or _only_experiment(engine)
    span = parse_window(window)
    scope = _scope(name, since, until, topic)
    if split_by is not None and split_by not in SLICES:
        raise AnalysisError(f"cannot split by {split_by!r}: use one of {', '.join(SLICES)}")
    sums = user_sums(engine, scope, window_seconds=span.total_seconds(), by=split_by)
    excluded_requests = not_in_experiment(engine, scope)
    if sums.empty:
        raise AnalysisError(
            f"no in-experiment exposures for experiment {name!r}"
            + (f" in [{since or '…'}, {until or '…'})" if since or until else "")
        )
    memberships = user_groups(engine, scope)
    groups_per_user = memberships.groupby("user_id")["arm"].transform("size")
    multi = memberships[groups_per_user > 1]
    multi_ids = set(multi["user_id"])
    sums = sums[~sums["user_id"].isin(multi_ids)]
    pre = pre_period(engine, name, cuped_days) if cuped_days > 0 else None
    users = with_pre_period(sums, pre)
    arm_names = list(weights)
    if groups is None:
        groups = Experiment(name, name, tuple(weights), tuple(weights.values()))
    result: dict = {
        "experiment": name,
        "window": window,
        "since": since,
        "until": until,
        "primary": {
            "metric": PRIMARY_METRIC,
            "test": "delta",
            "definition": "Σ hits / Σ requests over the arm's users; a hit = a like of one of the first 5 "
            "served posts within the window; user-clustered (delta method)",
        },
        "cuped_days": cuped_days,
        **decide(users, control, treatment, arm_names, planned_users=planned_users),
    }
    single = memberships[groups_per_user == 1]  # excluded users are counted in no group
    group_counts = {str(a): int(n) for a, n in single.groupby("arm")["user_id"].size().items()}
    result["srm"] = srm_over_groups(groups, group_counts)
    result["fallbacks"] = fallback_guardrail(served_by_arm(engine, scope))
    excluded_requests -= sum(result["fallbacks"]["per_arm"].values())  # reported there
    result["excluded_not_in_experiment"] = excluded_requests
    result["excluded"] = {
        "not_in_experiment": excluded_requests,
        "multiple_arms_users": len(multi_ids),
        "multiple_arms_requests": int(multi["requests"].sum()) if len(multi) else 0,
    }
    if control in result["arms"] and treatment in result["arms"]:
        result["secondary"], result["guardrails"] = _secondary_and_guardrails(
            engine, scope, span, sums, multi_ids, control, treatment, guardrail_rules
        )
    if split_by is not None:
        slices = {
            str(key): decide(group, control, treatment, arm_names, planned_users=planned_users)
            for key, group in users.groupby("slice")
        }
        _adjust_slices(slices)
        result["by"] = {"field": split_by, "correction": "benjamini-hochberg across slices", "groups": slices}
    versions = model_versions(engine, scope)
    versions = versions[versions["arm"].isin(arm_names)]
    for arm, summary in result["arms"].items():
        summary["model_versions"] = sorted(versions.loc[versions["arm"] == arm, "model_version"].astype(str))
    phases = _phases(versions, scope)
    if phases:
        per_version = user_sums(engine, scope, window_seconds=span.total_seconds(), by="model_version")
        per_version = per_version[~per_version["user_id"].isin(multi_ids)]
        hits = per_version.groupby(["arm", "slice"])["hits"].sum()
        version_users = per_version.groupby(["arm", "slice"])["user_id"].nunique()
        result["by_model_version"] = [
            {
                "arm": row.arm,
                "model_version": row.model_version,
                "users": int(version_users.get((row.arm, str(row.model_version)), 0)),
                "requests": int(row.requests),
                "hits": int(hits.get((row.arm, str(row.model_version)), 0)),
                "hitrate": round(int(hits.get((row.arm, str(row.model_version)), 0)) / int(row.requests), 6),
                "first_request": str(row.first_request),
                "last_request": str(row.last_request),
                "note": "pooled over users: descriptive; compare arms within a phase ('phases')",
            }
            for row in versions.itertuples(index=False)
        ]
        result["phases"] = [
            _phase(
                engine,
                scope,
                span,
                start,
                end,
                versions,
                control,
                treatment,
                arm_names,
                pre,
                multi_ids,
                planned_users,
            )
            for start, end in phases
        ]
    return result


def _secondary_and_guardrails(
    engine, scope, span, sums, excluded, control, treatment, rules
) -> tuple[list, list]:
    """Secondary metrics (Holm across them) and guardrails for ``treatment`` against ``control``."""
    per_user = sums.groupby(["arm", "user_id"], as_index=False)[["requests", "hits", "latency_sum"]].sum()
    per_user = per_user.merge(
        engagement(engine, scope, window_seconds=span.total_seconds()), on="user_id", how="left"
    )
    per_user = per_user.fillna({"likes": 0, "views": 0})
    histogram = latency_histogram(engine, scope, requests=int(sums["requests"].sum()))
    histogram = histogram[~histogram["user_id"].isin(excluded)]

    def arm(name: str) -> ArmMetrics:
        users = per_user[per_user["arm"] == name].reset_index(drop=True)
        index = pd.Series(users.index, index=users["user_id"])
        hist = histogram[(histogram["arm"] == name) & histogram["user_id"].isin(index.index)]
        return ArmMetrics(
            *(users[c].to_numpy(float) for c in ("requests", "latency_sum", "hits", "likes", "views")),
            hist_users=index.loc[hist["user_id"]].to_numpy(),
            hist_latency=hist["latency"].to_numpy(float),
            hist_requests=hist["requests"].to_numpy(float),
        )

    c, t = arm(control), arm(treatment)
    lists, coverage = served_lists(engine, scope, requests=int(sums["requests"].sum()))
    lists = lists[~lists["user_id"].isin(excluded)]
    diversity = None
    if (lists["arm"] == control).any() and (lists["arm"] == treatment).any():
        diversity = tuple(
            RatioStatistic.from_values(g["topics"], g["lists"])
            for g in (lists[lists["arm"] == a] for a in (control, treatment))
        )
    shares = {str(r.arm): r.posts / r.catalogue for r in coverage.itertuples(index=False) if r.catalogue}
    covered = (shares[control], shares[treatment]) if control in shares and treatment in shares else None
    rows = secondary(c, t, diversity=diversity, coverage=covered)
    return rows, guardrails(c, t, rules, rows, stats={"topic_diversity": diversity} if diversity else None)


def _adjust_slices(slices: dict[str, dict]) -> None:
    """Benjamini–Hochberg across the slices, for each test (the slices are many looks at one question)."""
    for key in ("delta", "cuped"):
        names = [s for s, r in slices.items() if "absolute" in r[key]]
        for name, p in zip(
            names,
            adjust_p_values([slices[s][key]["p_value"] for s in names], "benjamini-hochberg"),
            strict=True,
        ):
            slices[name][key]["p_value_adjusted"] = p


def _phase(
    engine, scope, span, start, end, versions, control, treatment, arm_names, pre, multi_ids, planned_users
) -> dict:
    """The concurrent comparison in [start, end): both arms over the same period, one model version each."""
    phase_scope = Scope(scope.experiment, start, end, scope.topic)
    sums = user_sums(engine, phase_scope, window_seconds=span.total_seconds())
    sums = sums[~sums["user_id"].isin(multi_ids)]
    lo = start if start is not None else pd.Timestamp.min
    hi = end if end is not None else pd.Timestamp.max
    active = versions[(versions["first_request"] < hi) & (versions["last_request"] >= lo)]
    out = {
        "since": None if start is None else str(start),
        "until": None if end is None else str(end),
        "model_versions": {a: sorted(g["model_version"].astype(str)) for a, g in active.groupby("arm")},
    }
    if sums.empty:
        return out | {"delta": {"p_value": 1.0, "message": "no requests in this phase"}}
    decided = decide(with_pre_period(sums, pre), control, treatment, arm_names, planned_users=planned_users)
    return out | {k: decided[k] for k in ("arms", "delta", "cuped", "sequential") if k in decided}


def _only_experiment(engine: Engine) -> str:
    require_exposures(engine)
    frame = read_frame(engine, "SELECT DISTINCT experiment FROM exposures")
    names = sorted(frame["experiment"].astype(str))
    if len(names) != 1:
        raise AnalysisError(f"name the experiment: the log holds {names or 'none'}")
    return names[0]


def effect_over_time(
    engine: Engine,
    *,
    experiment: str,
    window: str,
    control: str,
    treatment: str,
    freq: str = "6h",
    planned_users: float = DEFAULT_TUNING,
    since: str | None = None,
    until: str | None = None,
) -> pd.DataFrame:
    """The effect as it would have been seen at each ``freq`` cut-off: fixed-horizon 95 % interval
    and the always-valid one (rows: cut-off times; each from the per-user sums up to it).

    Watching the fixed-horizon interval and stopping when it excludes 0 inflates false
    positives; the sequential one may be watched."""
    span = parse_window(window)
    scope = _scope(experiment, since, until)
    everything = user_sums(engine, scope, window_seconds=span.total_seconds())
    if everything.empty:
        raise AnalysisError(f"no in-experiment exposures for experiment {experiment!r}")
    first, last = everything["first_request"].min(), everything["last_request"].max()
    cutoffs = list(pd.date_range(first.floor(freq) + pd.Timedelta(freq), last.ceil(freq), freq=freq))
    if not cutoffs or cutoffs[-1] <= last:
        cutoffs.append(last + pd.Timedelta("1s"))
    rows = []
    for cutoff in cutoffs:
        sums = user_sums(engine, Scope(experiment, scope.since, cutoff), window_seconds=span.total_seconds())
        decided = decide(
            with_pre_period(sums, None), control, treatment, [control, treatment], planned_users=planned_users
        )
        d, s = decided["delta"], decided["sequential"]
        ok = "absolute" in d and d.get("absolute") is not None and "message" not in d
        rows.append(
            {
                "time": cutoff,
                "users": int(sums["user_id"].nunique()),
                "absolute": d.get("absolute"),
                "ci_low": d["ci95_absolute"][0] if ok else math.nan,
                "ci_high": d["ci95_absolute"][1] if ok else math.nan,
                "seq_low": s["ci95_absolute"][0] if ok else math.nan,
                "seq_high": s["ci95_absolute"][1] if ok else math.nan,
                "p_value": d["p_value"],
                "p_value_sequential": s["p_value"],
            }
        )
    return pd.DataFrame(rows).set_index("time")


def analyze_experiment(
    settings: Settings,
    engine: Engine,
    *,
    experiment: str | None = None,
    window: str = "1h",
    topic: str | None = None,
    since: str | None = None,
    until: str | None = None,
    split_by: str | None = None,
) -> dict:
    """``analyze`` for the experiment in ``settings``: its arms' weights, its first arm as control
    and its second as treatment (every further arm is compared with control too)."""
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
        until=until,
        split_by=split_by,
        groups=Experiment.from_settings(settings.experiment),
        cuped_days=settings.analysis.cuped_days,
        planned_users=settings.analysis.sequential_planned_users,
        guardrail_rules=settings.analysis.guardrails,
    )
    from gateway.analysis.interleaving import analyze_interleaving  # it reads likes through this module

    interleaving = analyze_interleaving(
        engine, experiment=name, window=window, control=names[0], treatment=names[1], since=since
    )
    if interleaving is not None:
        result["interleaving"] = interleaving
    return result
