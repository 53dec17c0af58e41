"""``recsys analyze power``: users per arm and days needed to detect an effect, plain and with CUPED.

The I/O edge of the power calculator (``power.py`` is the maths). The per-user variance of
Hitrate@5 and CUPED's variance reduction come from data, in this order:

* **the running experiment**: the per-user sums of its arms (``aggregate.user_sums``, by SQL)
  give σ² = the mean of the arms' per-user delta-method variances, and the CUPED comparison
  on the same users gives the variance reduction. Eligible users per day = the experiment's
  distinct users / the days it has run (first to last request, at least one hour);
* **the pre-period** when it has not started: each user's likes / views in ``feed_data`` during
  the last ``days`` (a proxy for hits / requests: the feed's own ratio metric) gives σ², and
  the previous ``days`` as covariate of the last (users split in two pseudo-arms by parity)
  give the variance reduction. Users per day = distinct active users in the last window / its
  days — an upper bound on *new* users per day, so the days are optimistic.
"""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.aggregate import Scope, pre_period, user_sums
from gateway.analysis.decision import ArmUsers, cuped_object
from gateway.analysis.power import Design, plan
from gateway.analysis.report import AnalysisError, parse_window
from gateway.assignment import Experiment, realised_shares
from gateway.storage import read_frame, table_exists
from gateway.tables import Tables


def _reduction(value) -> float:
    """CUPED's variance reduction usable for planning: in [0, 0.99]; 0 when unknown."""
    if value is None or not math.isfinite(value):
        return 0.0
    return min(max(float(value), 0.0), 0.99)


def power_from_arms(
    arms: dict[str, ArmUsers],
    *,
    mde: float,
    users_per_day: float,
    shares: tuple[float, ...],
    design: Design,
) -> dict:
    """The plan from per-user sums of two or more groups (pure; ``arms`` in assignment order)."""
    names = list(arms)
    stats = [arms[a].ratio() for a in names]
    variances = [s.variance for s in stats if s.n > 1]
    if not variances or min(variances) <= 0:
        raise AnalysisError("too few users (or no variance) to estimate the per-user variance")
    sigma2 = sum(variances) / len(variances)
    baseline = stats[0].mean
    cuped = cuped_object(arms[names[0]], arms[names[1]])
    reduction = _reduction(cuped.get("variance_reduction"))
    out: dict = {"mde": mde, "users_per_arm": {}, "days": {}}
    for key, vr in (("plain", 0.0), ("cuped", reduction)):
        result = plan(
            baseline,
            sigma2,
            mde,
            Design(design.alpha, design.power, design.comparisons, vr, design.sequential_tuning),
            users_per_day=users_per_day,
            shares=shares,
        )
        out["users_per_arm"][key] = result.users_per_arm
        out["days"][key] = result.days
    out |= {
        "relative_mde": mde / baseline if baseline else None,
        "baseline": baseline,
        "sigma2": sigma2,
        "variance_reduction": reduction,
        "users_per_day": users_per_day,
        "alpha": design.alpha,
        "power": design.power,
        "comparisons": design.comparisons,
    }
    return out


def _experiment_arms(engine: Engine, experiment: Experiment, window: str, cuped_days: float):
    scope = Scope(experiment.name)
    sums = user_sums(engine, scope, window_seconds=parse_window(window).total_seconds())
    sums = sums[sums["arm"].isin(experiment.arms)]
    if sums.empty or sums["arm"].nunique() < 2:
        return None
    pre = pre_period(engine, experiment.name, cuped_days)
    users = sums.merge(pre[["user_id", "pre_likes", "pre_views"]], on="user_id", how="left").fillna(0)
    arms = {
        a: ArmUsers.from_frame(users[users["arm"] == a]) for a in experiment.arms if (users["arm"] == a).any()
    }
    span = (sums["last_request"].max() - sums["first_request"].min()) / pd.Timedelta(days=1)
    users_per_day = users["user_id"].nunique() / max(span, 1 / 24)
    return arms, users_per_day


def _pre_period_arms(engine: Engine, days: float):
    if not table_exists(engine, Tables.FEED):
        raise AnalysisError("no feed_data and no experiment: nothing to estimate the variance from")
    end = read_frame(engine, f'SELECT MAX("timestamp") AS t FROM {Tables.FEED}', parse_dates=["t"])["t"].iloc[
        0
    ]
    if pd.isna(end):
        raise AnalysisError("feed_data is empty: nothing to estimate the variance from")
    middle, start = end - pd.Timedelta(days=days), end - pd.Timedelta(days=2 * days)
    bounds = {k: f"{v:%Y-%m-%d %H:%M:%S}" for k, v in (("start", start), ("middle", middle), ("end", end))}
    later = '"timestamp" > :middle AND "timestamp" <= :end'
    sql = f"""
        SELECT user_id,
               SUM(CASE WHEN action = 'like' AND {later} THEN 1 ELSE 0 END) AS hits,
               SUM(CASE WHEN action = 'view' AND {later} THEN 1 ELSE 0 END) AS requests,
               SUM(CASE WHEN action = 'like' AND "timestamp" <= :middle THEN 1 ELSE 0 END) AS pre_likes,
               SUM(CASE WHEN action = 'view' AND "timestamp" <= :middle THEN 1 ELSE 0 END) AS pre_views
        FROM {Tables.FEED} WHERE "timestamp" > :start AND "timestamp" <= :end GROUP BY user_id
    """
    users = read_frame(engine, sql, params=bounds)
    users = users[users["requests"] > 0]
    if len(users) < 4:
        raise AnalysisError("too few active users in the pre-period to estimate the variance")
    odd = users["user_id"] % 2 == 1
    arms = {"a": ArmUsers.from_frame(users[~odd]), "b": ArmUsers.from_frame(users[odd])}
    return arms, len(users) / days


def power_report(
    engine: Engine,
    experiment: Experiment,
    *,
    mde: float,
    window: str = "1h",
    cuped_days: float = 14.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
) -> dict:
    """``{"mde", "users_per_arm": {"plain", "cuped"}, "days": {"plain", "cuped"}, ...}`` for 80 %
    power (by default) at two-sided alpha, every arm against control (alpha divided among them)."""
    if mde <= 0:
        raise AnalysisError("--mde must be a positive absolute difference in Hitrate@5 (e.g. 0.02)")
    design = Design(alpha=alpha, power=target_power, comparisons=len(experiment.arms) - 1)
    shares = realised_shares(experiment)[: len(experiment.arms)]
    found = (
        _experiment_arms(engine, experiment, window, cuped_days)
        if table_exists(engine, Tables.EXPOSURES)
        else None
    )
    if found is not None:
        source = "experiment"
        arms, users_per_day = found
    else:
        source = "pre-period"
        arms, users_per_day = _pre_period_arms(engine, cuped_days or 14.0)
    return power_from_arms(arms, mde=mde, users_per_day=users_per_day, shares=shares, design=design) | {
        "source": source,
        "experiment": experiment.name,
    }
