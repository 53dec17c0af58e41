"""The effect over request time: the A/B comparison of ``report`` on growing prefixes of the log.

At each of up to ``points`` cut-offs (evenly spaced in request time, the last = every request),
the delta-method effect of treatment − control with its fixed-horizon 95 % interval and its
always-valid (sequential) interval, on the requests up to that time. The always-valid band is
the one that may be watched: its coverage holds at every look, the fixed one only at one
planned look. The last point is the full analysis (``report.analyze``'s ``delta``).
"""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.report import experiment_requests, per_user, ratio_statistic
from gateway.analysis.sequential import DEFAULT_TUNING, sequential_ttest
from gateway.assignment import INTERLEAVED


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def cutoffs(times: pd.Series, points: int) -> list[pd.Timestamp]:
    """``points`` request times evenly spaced from the first to the last (the last included)."""
    first, last = times.min(), times.max()
    if points <= 1 or first == last:
        return [last]
    step = (last - first) / points
    return [first + step * (i + 1) for i in range(points - 1)] + [last]


def effect_points(
    requests: pd.DataFrame,
    control: str,
    treatment: str,
    *,
    points: int = 12,
    tuning: float = DEFAULT_TUNING,
) -> list[dict]:
    """One entry per cut-off: users and requests per arm so far, the effect and both intervals."""
    requests = requests[requests["arm"].isin((control, treatment))]
    out = []
    for cut in cutoffs(requests["request_time"], points):
        users = per_user(requests[requests["request_time"] <= cut])
        c, t = users[users["arm"] == control], users[users["arm"] == treatment]
        entry = {
            "until": cut.isoformat(),
            "users": {control: len(c), treatment: len(t)},
            "requests": {control: int(c["requests"].sum()), treatment: int(t["requests"].sum())},
        }
        if len(c) and len(t):
            fixed = two_sided_ttest(ratio_statistic(c), ratio_statistic(t))
            always = sequential_ttest(ratio_statistic(c), ratio_statistic(t), tuning=tuning)
            entry["absolute"] = _finite(fixed.absolute)
            entry["ci95_absolute"] = [_finite(x) for x in fixed.ci95_absolute]
            entry["sequential_ci95_absolute"] = [_finite(x) for x in always.ci95_absolute]
            entry["sequential_p_value"] = _finite(always.p_value)
        out.append(entry)
    return out


def effect_over_time(
    engine: Engine,
    *,
    experiment: str | None,
    window: str,
    control: str,
    treatment: str,
    points: int = 12,
    tuning: float = DEFAULT_TUNING,
) -> dict:
    """The A/B requests of the experiment (interleaved ones left out) as ``effect_points``."""
    requests, _ = experiment_requests(engine, experiment=experiment, window=window)
    requests = requests[requests["arm"] != INTERLEAVED]
    return {
        "control": control,
        "treatment": treatment,
        "tuning": tuning,
        "points": effect_points(requests, control, treatment, points=points, tuning=tuning),
    }
