"""The effect over time: growing prefixes of the log through the report's own comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gateway.analysis.over_time import cutoffs, effect_points
from gateway.analysis.report import compare


def requests_frame(seed: int = 4, users: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2021-12-01")
    for user in range(users):
        arm = "control" if user % 2 else "test"
        for _ in range(rng.integers(1, 4)):
            rows.append(
                {
                    "user_id": user,
                    "arm": arm,
                    "request_time": start + pd.Timedelta(seconds=int(rng.integers(0, 86400 * 3))),
                    "hit": bool(rng.random() < (0.30 if arm == "control" else 0.36)),
                    "model_version": arm + "-v1",
                }
            )
    return pd.DataFrame(rows)


def test_cutoffs_span_the_log_and_end_at_its_last_request():
    times = pd.Series(pd.to_datetime(["2021-12-01", "2021-12-03", "2021-12-02"]))
    cuts = cutoffs(times, 4)
    assert len(cuts) == 4 and cuts[-1] == times.max() and cuts[0] == pd.Timestamp("2021-12-01 12:00")
    assert cutoffs(times.iloc[:1], 4) == [times.iloc[0]]


def test_the_last_point_is_the_full_analysis_and_the_band_is_wider():
    frame = requests_frame()
    points = effect_points(frame, "control", "test", points=6)
    full = compare(frame, "control", "test", {"control": 50, "test": 50})["delta"]
    assert len(points) == 6
    assert points[-1]["absolute"] == pytest.approx(full["absolute"], abs=1e-12)
    assert points[-1]["ci95_absolute"] == pytest.approx(full["ci95_absolute"], abs=1e-12)
    users = [p["users"]["control"] + p["users"]["test"] for p in points]
    assert users == sorted(users) and users[-1] == frame["user_id"].nunique()
    for p in points:
        (lo, hi), (slo, shi) = p["ci95_absolute"], p["sequential_ci95_absolute"]
        assert slo < lo <= p["absolute"] <= hi < shi  # always valid costs width
        assert 0 <= p["sequential_p_value"] <= 1
