"""``recsys world like-prob``: the truth's public interface and its input file."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.storage import connect, read_frame
from gateway.world.pairs import PairsFileError, like_probabilities, read_pairs
from gateway.world.truth import UnknownIdError


def test_like_prob_matches_truth_and_rejects_unknown_ids(tiny_db, tmp_path):
    engine = connect(tiny_db)
    feed = read_frame(
        engine, "SELECT user_id, post_id, \"timestamp\" FROM feed_data WHERE action = 'view' LIMIT 500"
    )
    path = tmp_path / "pairs.csv"
    feed.to_csv(path, index=False)
    pairs = read_pairs(path)
    p = like_probabilities(engine, pairs)
    assert p.shape == (500,) and np.all((p > 0) & (p < 1))
    bad = pairs.copy()
    bad.loc[0, "user_id"] = 999_999_999
    with pytest.raises(UnknownIdError, match="999999999"):
        like_probabilities(engine, bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user_id,post_id\n1,2\n", "missing column"),
        ("user_id,post_id,timestamp\nabc,2,2021-10-01 10:00:00\n", "not an integer"),
        ("user_id,post_id,timestamp\n1,2,yesterday\n", "not an ISO datetime"),
        ("", "not a readable CSV"),
    ],
)
def test_malformed_pairs_files(tmp_path, content, message):
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(PairsFileError, match=message):
        read_pairs(path)
