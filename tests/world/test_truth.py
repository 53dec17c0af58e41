"""The world's truth: the documented signals, counter-based randomness."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gateway.storage import connect
from gateway.world.load import load_truth
from gateway.world.truth import standard_normal_from_keys


def test_truth_carries_the_documented_signals(tiny_db):
    truth = load_truth(connect(tiny_db))
    users = np.arange(len(truth.user_ids))
    evening = int(pd.Timestamp("2021-11-10 20:00").timestamp())
    noon = int(pd.Timestamp("2021-11-10 12:00").timestamp())
    p_evening = truth.like_prob(users[:, None], np.arange(len(truth.post_ids))[None, :], evening).mean()
    p_noon = truth.like_prob(users[:, None], np.arange(len(truth.post_ids))[None, :], noon).mean()
    assert p_evening > p_noon
    liked = truth.like_prob(0, 0, noon, liked_before=True)
    assert liked < 0.5 * truth.like_prob(0, 0, noon, liked_before=False)


def test_counter_based_normals_are_deterministic_and_standard():
    a = standard_normal_from_keys(3, np.arange(100_000), np.zeros(100_000, dtype=np.int64))
    assert np.array_equal(
        a, standard_normal_from_keys(3, np.arange(100_000), np.zeros(100_000, dtype=np.int64))
    )
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02
