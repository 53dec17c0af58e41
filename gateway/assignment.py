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

**Interleaving** (``interleave_weight`` > 0, same units as the arms' weights) adds one more
group, ``INTERLEAVED``, whose range follows the arms' ranges: the weights become
``(*arm weights, interleave_weight)`` and every rule above applies to it unchanged, so a user
is in exactly one of the A/B arms or the interleaved group. With ``interleave_weight`` 0 the
ranges, and so every assignment, are exactly those without interleaving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SCHEMES = ("md5", "growthbook-v2")
INTERLEAVED = "interleaved"
"""The group whose requests get a team-draft merge of the first two arms' rankings."""


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
    interleave_weight: float = 0.0

    @classmethod
    def from_settings(cls, e) -> Experiment:
        """From config.yaml's ``experiment`` section (any object with its attributes)."""
        return cls(
            name=e.name,
            salt=e.salt,
            arms=tuple(a.name for a in e.arms),
            weights=tuple(a.weight for a in e.arms),
            scheme=e.scheme,
            coverage=e.coverage,
            enabled=e.enabled,
            overrides=dict(e.overrides),
            interleave_weight=e.interleave_weight or 0.0,
        )

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown hashing scheme {self.scheme!r}: use one of {', '.join(SCHEMES)}")
        if len(self.arms) < 2 or len(self.arms) != len(self.weights):
            raise ValueError("an experiment needs at least two arms, each with a weight")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError("arm names must be unique")
        if any(w <= 0 for w in self.weights):
            raise ValueError("arm weights must be positive")
        if INTERLEAVED in self.arms:
            raise ValueError(f"{INTERLEAVED!r} is the interleaved group's name: give the arm another")
        if self.interleave_weight < 0:
            raise ValueError("interleave_weight must be 0 (off) or positive")
        unknown = {arm for arm in self.overrides.values() if arm not in self.groups}
        if unknown:
            raise ValueError(f"overrides name unknown arm(s): {', '.join(sorted(unknown))}")

    @property
    def interleaving(self) -> bool:
        return self.interleave_weight > 0

    @property
    def groups(self) -> tuple[str, ...]:
        """The arms, then the interleaved group when interleaving is on: what a user can be in."""
        return (*self.arms, INTERLEAVED) if self.interleaving else self.arms

    @property
    def group_weights(self) -> tuple[float, ...]:
        return (*self.weights, self.interleave_weight) if self.interleaving else self.weights

    @property
    def normalized_weights(self) -> list[float]:
        """Each group's share of the hash range, in ``groups`` order."""
        weights = self.group_weights
        total = sum(weights)
        return [w / total for w in weights]


GRID_POINTS = {"md5": 100, "growthbook-v2": 10_000}
"""How many distinct points in [0, 1) each scheme's hash can produce: bucket/100, n in steps of 1/10000."""


def realised_shares(experiment: Experiment) -> tuple[float, ...]:
    """Each group's exact share of the in-experiment population, as the hash grid realises the
    weights, in ``experiment.groups`` order (the arms, then the interleaved group if on).

    The hash puts a user on one of a finite grid of points, each equally likely; an arm
    gets the points that fall in its range. So the share is a count of grid points, not the
    configured weight: md5 with three equal weights gives 34/33/33 of 100 buckets. Coverage
    is applied as in :func:`assign`; points outside every range are not in the experiment and
    are not counted. Forced overrides and ``enabled`` do not change the shares of the users
    who are assigned by hash. These are the expected shares for ``srm_check``.
    """
    grid = GRID_POINTS[experiment.scheme]
    ranges = bucket_ranges(experiment.normalized_weights, experiment.coverage)
    counts = [0] * len(experiment.groups)
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
    arm: str  # an arm's name, or INTERLEAVED
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
    return Assignment(experiment.groups[index], bucket, True, "hash")
