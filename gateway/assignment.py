"""Deterministic assignment of users to arms: pure functions, no I/O.

Two schemes, chosen in config.yaml (``experiment.scheme``):

* ``md5`` (the source course's): ``bucket = int(md5(str(user_id) + salt), 16) % 100``;
  arms take contiguous bucket ranges by weight, in config order.
* ``growthbook-v2``: bit-compatible with GrowthBook's SDKs. FNV-1a 32-bit,
  ``n = (fnv(str(fnv(seed + value))) % 10000) / 10000``, ranges from weights and coverage
  exactly as ``getBucketRanges`` computes them.

Both map a user to a point in [0, 1) and then through GrowthBook's range rule, so coverage
means the same thing in both: each arm keeps the first ``coverage`` share of its range.
Users outside every range (coverage < 1) are served by the first arm's ranker but are
not in the experiment. Forced overrides are served the forced arm and are also not in the
experiment, so that they never bias the analysis. Pinned by tests/vectors/*.json.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SCHEMES = ("md5", "growthbook-v2")


def fnv1a32(text: str) -> int:
    """FNV-1a 32 over UTF-16 code units, like the JavaScript SDK's ``charCodeAt`` loop."""
    value = 0x811C9DC5
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        value = ((value ^ (data[i] | (data[i + 1] << 8))) * 0x01000193) & 0xFFFFFFFF
    return value


def gb_hash(seed: str, value: str, version: int = 2) -> float:
    """GrowthBook's seeded hash to [0, 1): version 2 (current) or 1 (legacy)."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    raise ValueError(f"unknown GrowthBook hash version {version}")


def md5_bucket(user_id: int, salt: str) -> int:
    """The source course's bucket in 0..99."""
    return int(hashlib.md5((str(user_id) + salt).encode()).hexdigest(), 16) % 100


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """GrowthBook ``getBucketRanges``: weights (summing to ~1, else equal) scaled by coverage."""
    n = len(weights)
    coverage = min(max(coverage, 0.0), 1.0)
    valid = n > 0 and all(w >= 0 for w in weights) and 0.99 <= sum(weights) <= 1.01
    weights = list(weights) if valid else [1 / n] * n
    ranges, cumulative = [], 0.0
    for w in weights:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    for i, (low, high) in enumerate(ranges):
        if low <= n < high:
            return i
    return -1


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    arms: tuple[str, ...]
    weights: tuple[float, ...]
    scheme: str = "md5"
    coverage: float = 1.0
    enabled: bool = True
    overrides: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown hashing scheme {self.scheme!r}: use one of {', '.join(SCHEMES)}")
        if len(self.arms) < 2 or len(self.arms) != len(self.weights):
            raise ValueError("an experiment needs at least two arms, each with a weight")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError("arm names must be unique")
        if any(w <= 0 for w in self.weights):
            raise ValueError("arm weights must be positive")
        unknown = {arm for arm in self.overrides.values() if arm not in self.arms}
        if unknown:
            raise ValueError(f"overrides name unknown arm(s): {', '.join(sorted(unknown))}")

    @property
    def normalized_weights(self) -> list[float]:
        total = sum(self.weights)
        return [w / total for w in self.weights]


GRID_POINTS = {"md5": 100, "growthbook-v2": 10_000}
"""How many distinct points in [0, 1) each scheme's hash can produce: bucket/100, n in steps of 1/10000."""


def realised_shares(experiment: Experiment) -> tuple[float, ...]:
    """Each arm's exact share of the in-experiment population, as the hash grid realises the weights.

    The hash puts a user on one of a finite grid of points, each equally likely; an arm
    gets the points that fall in its range. So the share is a count of grid points, not the
    configured weight: md5 with three equal weights gives 34/33/33 of 100 buckets. Coverage
    is applied as in :func:`assign`; points outside every range are not in the experiment and
    are not counted. Forced overrides and ``enabled`` do not change the shares of the users
    who are assigned by hash. These are the expected shares for ``srm_check``.
    """
    grid = GRID_POINTS[experiment.scheme]
    ranges = bucket_ranges(experiment.normalized_weights, experiment.coverage)
    counts = [0] * len(experiment.arms)
    for k in range(grid):
        index = choose_variation(k / grid, ranges)
        if index >= 0:
            counts[index] += 1
    total = sum(counts)
    if total == 0:
        raise ValueError("no hash point falls in any arm's range: coverage too small for the hash grid")
    return tuple(c / total for c in counts)


@dataclass(frozen=True)
class Assignment:
    arm: str
    bucket: float  # md5: 0..99; growthbook-v2: n in [0, 1)
    in_experiment: bool
    reason: str  # "hash", "override", "coverage", "disabled"


def assign(experiment: Experiment, user_id: int) -> Assignment:
    """The arm serving ``user_id``; sticky for a given salt, scheme, weights and coverage."""
    if experiment.scheme == "md5":
        bucket: float = md5_bucket(user_id, experiment.salt)
        point = bucket / 100
    else:
        bucket = point = gb_hash(experiment.salt, str(user_id), 2)
    forced = experiment.overrides.get(user_id)
    if forced is not None:
        return Assignment(forced, bucket, False, "override")
    if not experiment.enabled:
        return Assignment(experiment.arms[0], bucket, False, "disabled")
    index = choose_variation(point, bucket_ranges(experiment.normalized_weights, experiment.coverage))
    if index < 0:
        return Assignment(experiment.arms[0], bucket, False, "coverage")
    return Assignment(experiment.arms[index], bucket, True, "hash")
