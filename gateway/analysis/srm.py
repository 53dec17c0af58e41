"""Sample ratio mismatch: do the units per arm fit the shares the assignment realises?

Chi-square goodness of fit (gbstats ``utils.check_srm``). The expected shares should be the
ones the hashing scheme can actually produce — ``assignment.realised_shares`` — not the
configured weights: with the md5 scheme three equal weights realise 34/33/33 buckets, and at
100k users a weights-based check flags a healthy experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _st

from gateway.assignment import Experiment, realised_shares

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    flag: bool
    expected: tuple[float, ...]


def srm_check(
    observed: Sequence[int], expected_shares: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """Chi-square test of units per arm against ``expected_shares`` (normalised here, so weights work too).

    An arm with expected share 0 is left out of the statistic and of the degrees of freedom,
    as gbstats does — **unless it has units**: an arm the assignment cannot reach that has
    users is a mismatch by itself, so the result is chi2 = inf, p = 0 (gbstats would skip it).
    """
    if len(observed) != len(expected_shares):
        raise ValueError("one expected share per arm")
    if any(s < 0 for s in expected_shares) or sum(expected_shares) <= 0:
        raise ValueError("expected shares must be non-negative and not all zero")
    total = sum(observed)
    share_total = sum(expected_shares)
    expected = tuple(total * s / share_total for s in expected_shares)
    if total == 0:
        return SrmResult(0.0, 1.0, False, expected)
    if any(o > 0 and s == 0 for o, s in zip(observed, expected_shares, strict=True)):
        return SrmResult(math.inf, 0.0, True, expected)
    reachable = [(o, e) for o, e in zip(observed, expected, strict=True) if e > 0]
    if len(reachable) < 2:
        return SrmResult(0.0, 1.0, False, expected)
    chi2 = sum((o - e) ** 2 / e for o, e in reachable)
    p_value = float(_st.chi2.sf(chi2, len(reachable) - 1))
    return SrmResult(float(chi2), p_value, p_value < threshold, expected)


def srm_over_groups(experiment: Experiment, users: dict[str, int]) -> dict:
    """The SRM check over every group a user can be in (the arms and the interleaved group),
    against the shares the hash grid realises."""
    groups = experiment.groups
    check = srm_check([users.get(g, 0) for g in groups], realised_shares(experiment))
    return {
        "p_value": check.p_value,
        "flag": check.flag,
        "chi2": check.chi2,
        "users": {g: users.get(g, 0) for g in groups},
        "expected": dict(zip(groups, check.expected, strict=True)),
    }
