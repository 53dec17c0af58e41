"""Shadow models judged by the truth (simulated worlds only): the expected Hitrate@5 of the
lists a shadow would have shown, next to the lists the arm did show, on the same requests.

For each shadow row scored without error: E[hit] = 1 − Π(1 − p_like) over its top 5 and over
the served top 5, at the request's user and time; the paired difference has a normal 95 %
interval over requests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.shadow import load_shadow_rows
from gateway.ranking import K, expected_hit, mean_ci95
from gateway.world.load import load_truth
from gateway.world.truth import Truth


def expected_hits(truth: Truth, user_ids, seconds, lists: list[list[int]], k: int = K) -> np.ndarray:
    """Per request, 1 − Π(1 − p) over the first ``k`` posts of its list (an empty slot: p = 0)."""
    padded = np.array([(ids[:k] + [-1] * k)[:k] for ids in lists], dtype=np.int64).reshape(len(lists), k)
    present = padded >= 0
    posts = np.zeros_like(padded)
    posts[present] = truth.post_index(padded[present])
    users = truth.user_index(np.asarray(user_ids, dtype=np.int64))[:, None]
    p = truth.like_prob(users, posts, np.asarray(seconds, dtype=np.int64)[:, None])
    return expected_hit(np.where(present, p, 0.0))


def judge_shadow(engine: Engine, *, experiment: str) -> dict[tuple[str, str], dict]:
    """``{(arm, shadow model version): {"shadow", "served", "difference", "ci95_difference", "requests"}}``."""
    rows = load_shadow_rows(engine, experiment)
    rows = rows[rows["error"].isna()]
    if rows.empty:
        return {}
    truth = load_truth(engine)
    seconds = ((rows["request_time"] - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy()
    shadow = expected_hits(truth, rows["user_id"], seconds, list(rows["shadow_post_ids"]))
    served = expected_hits(truth, rows["user_id"], seconds, list(rows["served_post_ids"]))
    out = {}
    for (arm, version), index in rows.groupby(["arm", "model_version"]).indices.items():
        difference, low, high = mean_ci95(shadow[index] - served[index])
        out[(arm, version)] = {
            "requests": len(index),
            "shadow": round(float(shadow[index].mean()), 5),
            "served": round(float(served[index].mean()), 5),
            "difference": round(difference, 5),
            "ci95_difference": [round(low, 5), round(high, 5)],
        }
    return out
