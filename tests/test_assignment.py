"""Assignment: frozen GrowthBook and md5 vectors, stickiness, split proportions, coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.assignment import Experiment, assign, bucket_ranges, gb_hash, md5_bucket

VECTORS = Path(__file__).parent / "vectors"
GB = json.loads((VECTORS / "growthbook.json").read_text())
MD5 = json.loads((VECTORS / "md5.json").read_text())


@pytest.mark.parametrize(("seed", "value", "version", "expected"), GB["published_hash"] + GB["sdk_hash"])
def test_growthbook_hash_vectors(seed, value, version, expected):
    assert round(gb_hash(seed, value, version), 6) == round(expected, 6)


@pytest.mark.parametrize(("n", "coverage", "weights", "expected"), GB["bucket_ranges"])
def test_growthbook_bucket_ranges(n, coverage, weights, expected):
    ranges = bucket_ranges(weights if weights is not None else [1 / n] * n, coverage)
    assert np.allclose(ranges, expected)


@pytest.mark.parametrize(("user_id", "salt", "expected"), MD5["md5_bucket"])
def test_md5_buckets_by_hand(user_id, salt, expected):
    assert md5_bucket(user_id, salt) == expected


def test_md5_arms_take_contiguous_ranges_in_config_order():
    exp = Experiment("e", "feed-ranker-v1", ("control", "test"), (50, 50))
    assert assign(exp, 42).arm == "control"  # bucket 22 < 50
    assert assign(exp, 200).arm == "test"  # bucket 57 >= 50
    skewed = Experiment("e", "feed-ranker-v1", ("control", "test"), (60, 40))
    assert assign(skewed, 200).arm == "control"  # bucket 57 < 60


@pytest.mark.parametrize("scheme", ["md5", "growthbook-v2"])
def test_assignment_is_sticky(scheme):
    exp = Experiment("e", "salt-1", ("control", "test"), (50, 50), scheme=scheme)
    first = [assign(exp, uid) for uid in range(1000)]
    again = [
        assign(Experiment("e", "salt-1", ("control", "test"), (50, 50), scheme=scheme), uid)
        for uid in range(1000)
    ]
    assert first == again


@pytest.mark.parametrize("scheme", ["md5", "growthbook-v2"])
@pytest.mark.parametrize("weights", [(50, 50), (30, 70), (1, 1, 2)])
def test_split_within_three_standard_deviations(scheme, weights):
    # Pooled over five salts: one salt's split is itself a random draw (a 3-sd miss has p ~ 0.003).
    arms = tuple(f"arm{i}" for i in range(len(weights)))
    counts = {a: 0 for a in arms}
    for salt in ("s1", "s2", "s3", "s4", "s5"):
        exp = Experiment("e", salt, arms, weights, scheme=scheme)
        for uid in range(200, 20_200):
            counts[assign(exp, uid).arm] += 1
    n = sum(counts.values())
    for arm, w in zip(arms, exp.normalized_weights, strict=True):
        sd = np.sqrt(n * w * (1 - w))
        assert abs(counts[arm] - n * w) < 3 * sd, (arm, counts)


def test_different_salts_give_independent_assignments():
    a = Experiment("e", "salt-a", ("control", "test"), (50, 50), scheme="growthbook-v2")
    b = Experiment("e", "salt-b", ("control", "test"), (50, 50), scheme="growthbook-v2")
    same = sum(assign(a, u).arm == assign(b, u).arm for u in range(4000))
    assert abs(same - 2000) < 3 * np.sqrt(4000 * 0.25)


def test_coverage_overrides_and_switch():
    exp = Experiment(
        "e", "s", ("control", "test"), (50, 50), scheme="growthbook-v2", coverage=0.5, overrides={7: "test"}
    )
    results = [assign(exp, u) for u in range(4000)]
    outside = [r for r in results if not r.in_experiment and r.reason == "coverage"]
    assert all(r.arm == "control" for r in outside)
    assert abs(len(outside) - 2000) < 3 * np.sqrt(1000)
    forced = assign(exp, 7)
    assert forced.arm == "test" and not forced.in_experiment and forced.reason == "override"
    off = Experiment("e", "s", ("control", "test"), (50, 50), enabled=False)
    assert {assign(off, u).arm for u in range(100)} == {"control"}
    assert not any(assign(off, u).in_experiment for u in range(100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "sha1"}, "unknown hashing scheme"),
        ({"arms": ("only",), "weights": (1,)}, "at least two arms"),
        ({"weights": (1, 0)}, "positive"),
        ({"overrides": {1: "nope"}}, "unknown arm"),
    ],
)
def test_invalid_experiments_are_rejected(kwargs, message):
    base = {"name": "e", "salt": "s", "arms": ("control", "test"), "weights": (50, 50)}
    with pytest.raises(ValueError, match=message):
        Experiment(**{**base, **kwargs})
