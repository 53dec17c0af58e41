"""Assignment: frozen GrowthBook and md5 vectors, stickiness, split proportions, coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.assignment import (
    INTERLEAVED,
    Experiment,
    assign,
    bucket_ranges,
    gb_hash,
    md5_bucket,
    realised_shares,
)

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


@pytest.mark.parametrize("scheme", ["md5", "growthbook-v2"])
def test_interleave_weight_zero_changes_nothing(scheme):
    plain = Experiment("e", "s", ("control", "test"), (50, 50), scheme=scheme, coverage=0.8)
    zero = Experiment("e", "s", ("control", "test"), (50, 50), scheme=scheme, coverage=0.8, interleave_weight=0)
    assert [assign(plain, u) for u in range(3000)] == [assign(zero, u) for u in range(3000)]
    assert zero.groups == ("control", "test") and not zero.interleaving


@pytest.mark.parametrize("scheme", ["md5", "growthbook-v2"])
def test_interleaved_group_takes_its_own_range_after_the_arms(scheme):
    exp = Experiment("e", "s", ("control", "test"), (25, 25), scheme=scheme, interleave_weight=50)
    assert exp.groups == ("control", "test", INTERLEAVED)
    results = [assign(exp, u) for u in range(20_000)]
    assert all(r.in_experiment for r in results)
    counts = {g: sum(r.arm == g for r in results) for g in exp.groups}
    for group, share in zip(exp.groups, (0.25, 0.25, 0.5), strict=True):
        assert abs(counts[group] - 20_000 * share) < 4 * np.sqrt(20_000 * share * (1 - share)), counts
    # contiguous: the interleaved range is the top of the hash range
    for r in results:
        point = r.bucket / 100 if scheme == "md5" else r.bucket
        assert (r.arm == INTERLEAVED) == (point >= 0.5)
    assert realised_shares(exp) == pytest.approx((0.25, 0.25, 0.5))


def test_interleaved_users_outside_coverage_and_overrides():
    exp = Experiment(
        "e", "s", ("control", "test"), (1, 1), interleave_weight=2, coverage=0.5, overrides={3: INTERLEAVED}
    )
    forced = assign(exp, 3)
    assert forced.arm == INTERLEAVED and not forced.in_experiment
    outside = [r for r in (assign(exp, u) for u in range(2000)) if r.reason == "coverage"]
    assert outside and all(r.arm == "control" for r in outside)
    # md5 ranges [0, .125), [.25, .375), [.5, .75): buckets 0-12, 25-37 and 50-74
    assert realised_shares(exp) == pytest.approx((13 / 51, 13 / 51, 25 / 51))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": ("control", INTERLEAVED)}, "interleaved group"),
        ({"interleave_weight": -1}, "interleave_weight"),
        ({"overrides": {1: INTERLEAVED}}, "unknown arm"),  # no interleaved group without a weight
    ],
)
def test_invalid_interleaving_is_rejected(kwargs, message):
    base = {"name": "e", "salt": "s", "arms": ("control", "test"), "weights": (50, 50)}
    with pytest.raises(ValueError, match=message):
        Experiment(**{**base, **kwargs})
