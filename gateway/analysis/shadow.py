"""``recsys analyze --shadow``: how each shadow model's lists compare with what was served.

The I/O edge; the overlap measures are in ``overlap.py``. Per shadow model (and arm): the
requests it scored, those it was asked to score but did not (exposures naming it as their
``shadow_version`` without a shadow row: dropped under overload, or lost in a crash), errors,
its scoring latency p50/p99, and the overlap of its top 5 with the served top 5 (Jaccard and
rank-biased overlap, p = 0.9), averaged over the requests it scored without error. Quality
under the truth is judged by the judging layer (its shadow module): analysis never reads it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.overlap import jaccard, rank_biased_overlap
from gateway.analysis.report import AnalysisError
from gateway.ranking import K
from gateway.storage import read_frame, table_exists
from gateway.tables import Tables

RBO_P = 0.9


def load_shadow_rows(engine: Engine, experiment: str) -> pd.DataFrame:
    """Shadow rows joined with the exposure they shadow (served list, user, request time)."""
    if not table_exists(engine, Tables.SHADOW_EXPOSURES):
        raise AnalysisError(
            "no shadow_exposures table: give an arm a `shadow:` model and serve traffic first"
        )
    sql = (
        "SELECT s.request_id, s.model_version, s.arm, s.post_ids AS shadow_post_ids, s.latency_ms, s.error, "
        "e.post_ids AS served_post_ids, e.model_version AS served_version, e.user_id, e.request_time "
        f"FROM {Tables.SHADOW_EXPOSURES} s JOIN {Tables.EXPOSURES} e ON e.request_id = s.request_id "
        "WHERE e.experiment = :experiment"
    )
    rows = read_frame(engine, sql, parse_dates=["request_time"], params={"experiment": experiment})
    for column in ("shadow_post_ids", "served_post_ids"):
        rows[column] = rows[column].map(json.loads)
    return rows


def count_dropped(engine: Engine, experiment: str) -> pd.DataFrame:
    """(arm, model_version, dropped): requests that named a shadow that never scored them."""
    sql = (
        f"SELECT e.arm, e.shadow_version AS model_version, COUNT(*) AS dropped FROM {Tables.EXPOSURES} e "
        f"LEFT JOIN {Tables.SHADOW_EXPOSURES} s "
        "ON s.request_id = e.request_id AND s.model_version = e.shadow_version "
        "WHERE e.experiment = :experiment AND e.shadow_version IS NOT NULL AND s.request_id IS NULL "
        "GROUP BY e.arm, e.shadow_version"
    )
    return read_frame(engine, sql, params={"experiment": experiment})


def overlaps(rows: pd.DataFrame, k: int = K) -> pd.DataFrame:
    """Per scored row: Jaccard and rank-biased overlap of the two top ``k`` lists."""
    pairs = list(zip(rows["shadow_post_ids"], rows["served_post_ids"], strict=True))
    return pd.DataFrame(
        {
            "jaccard": [jaccard(s[:k], t[:k]) for s, t in pairs],
            "rbo": [rank_biased_overlap(s[:k], t[:k], RBO_P) for s, t in pairs],
        },
        index=rows.index,
    )


def summarise(rows: pd.DataFrame, dropped: pd.DataFrame) -> list[dict]:
    """One entry per (arm, shadow model version)."""
    out = []
    keys = set(map(tuple, rows[["arm", "model_version"]].drop_duplicates().to_numpy())) | set(
        map(tuple, dropped[["arm", "model_version"]].to_numpy())
    )
    for arm, version in sorted(keys):
        mine = rows[(rows["arm"] == arm) & (rows["model_version"] == version)]
        ok = mine[mine["error"].isna()]
        lost = dropped.loc[(dropped["arm"] == arm) & (dropped["model_version"] == version), "dropped"]
        overlap = overlaps(ok)
        latency = mine["latency_ms"].to_numpy(float)
        out.append(
            {
                "arm": arm,
                "model_version": version,
                "served_model_versions": sorted(mine["served_version"].unique().tolist()),
                "scored": len(mine),
                "dropped": int(lost.sum()),
                "errors": int(mine["error"].notna().sum()),
                f"jaccard@{K}": round(float(overlap["jaccard"].mean()), 4) if len(ok) else None,
                f"rbo@{K}": round(float(overlap["rbo"].mean()), 4) if len(ok) else None,
                "latency_ms": {
                    "p50": round(float(np.percentile(latency, 50)), 3) if len(latency) else None,
                    "p99": round(float(np.percentile(latency, 99)), 3) if len(latency) else None,
                },
            }
        )
    return out


def analyze_shadow(engine: Engine, *, experiment: str) -> dict:
    """The shadow report of ``experiment``: ``{"experiment", "shadow": [per shadow model]}``."""
    rows = load_shadow_rows(engine, experiment)
    dropped = count_dropped(engine, experiment)
    if rows.empty and dropped.empty:
        raise AnalysisError(f"no shadow rows for experiment {experiment!r}")
    return {"experiment": experiment, "shadow": summarise(rows, dropped)}
