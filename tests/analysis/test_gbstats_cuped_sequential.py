"""CUPED and the sequential interval against gbstats (tests/vectors/gbstats_cuped_sequential.json).

The vectors come from gbstats itself in a throwaway environment
(tests/vectors/make_gbstats_cuped_sequential.py; gbstats is not a dependency): theta,
``EffectMoments`` of the CUPED ratio and of the post-period ratio alone, ``TwoSidedTTest`` and
``SequentialTwoSidedTTest`` tuned by several planned sample sizes, and one experiment looked at
eight times as it grows. Every figure must agree to the file's tolerance (1e-6).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.analysis.cuped import adjust
from gateway.analysis.frequentist import moments_pair, two_sided_ttest
from gateway.analysis.sequential import sequential_ttest
from gateway.analysis.statistics import RegressionAdjustedRatioStatistic, regression_theta

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "gbstats_cuped_sequential.json").read_text())
TOLERANCE = VECTORS["tolerance"]
CASES = VECTORS["cases"]


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE


def gbstats_reduction(case: dict) -> float:
    """1 − SE²(CUPED) / SE²(plain), both standard errors as gbstats computes them."""
    se = {kind: case["moments"][kind]["standard_error"] for kind in ("cuped_absolute", "plain_absolute")}
    return 1 - (se["cuped_absolute"] / se["plain_absolute"]) ** 2


def arms(entry: dict, cuped: bool):
    c = RegressionAdjustedRatioStatistic(**entry["control"])
    t = RegressionAdjustedRatioStatistic(**entry["treatment"])
    return (c, t) if cuped else (c.post, t.post)


def run(entry: dict, spec: dict):
    c, t = arms(entry, spec["cuped"])
    if spec.get("test", "sequential") == "two_sided":
        return two_sided_ttest(c, t, alpha=spec["alpha"])
    return sequential_ttest(c, t, tuning=spec.get("tuning") or entry["tuning"], alpha=spec["alpha"])


def agree(result, spec: dict) -> None:
    assert spec["error"] is None and result.ok
    relative = spec["difference"] == "relative"
    estimate = result.relative if relative else result.absolute
    interval = result.ci95_relative if relative else result.ci95_absolute
    p_value = result.p_value_relative if relative else result.p_value
    assert close(estimate, spec["estimate"])
    assert close(p_value, spec["p_value"])
    for ours, theirs in zip(interval, spec["ci"], strict=True):
        assert close(ours, theirs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_theta_agrees_with_gbstats(case):
    c, t = arms(case, cuped=True)
    assert close(regression_theta(c, t), case["theta"])
    assert close(adjust(c, t).theta, case["theta"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
@pytest.mark.parametrize("kind", ["cuped_absolute", "cuped_relative", "plain_absolute", "plain_relative"])
def test_effect_moments_agree_with_gbstats(case, kind):
    cuped, difference = kind.split("_")
    absolute, relative, _ = moments_pair(*arms(case, cuped == "cuped"))
    effect, theirs = (relative if difference == "relative" else absolute), case["moments"][kind]
    assert theirs["error"] is None and effect.ok
    assert close(effect.estimate, theirs["estimate"])
    assert close(effect.standard_error, theirs["standard_error"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_variance_reduction_is_gbstats_cuped_over_plain(case):
    assert close(two_sided_ttest(*arms(case, cuped=True)).variance_reduction, gbstats_reduction(case))


RESULTS = [
    pytest.param(
        case,
        spec,
        id=f"{case['name']}-{'cuped' if spec['cuped'] else 'plain'}-{spec['test']}-{spec['tuning']}-{spec['difference']}",
    )
    for case in CASES
    for spec in case["results"]
]


@pytest.mark.parametrize(("case", "spec"), RESULTS)
def test_fixed_and_sequential_tests_agree_with_gbstats(case, spec):
    agree(run(case, spec), spec)


LOOKS = [
    pytest.param({**look, "tuning": sequence["tuning"]}, spec, id=f"{sequence['name']}-{i}-{spec['cuped']}")
    for sequence in VECTORS["sequences"]
    for i, look in enumerate(sequence["looks"])
    for spec in look["results"]
]


@pytest.mark.parametrize(("look", "spec"), LOOKS)
def test_sequential_interval_at_every_look_agrees_with_gbstats(look, spec):
    agree(run(look, spec), spec)


def test_the_vectors_exercise_what_they_claim():
    """Guards against a regenerated file that no longer tests anything interesting."""
    assert any(c["theta"] < 0 for c in CASES) and any(c["theta"] > 0.3 for c in CASES)
    assert max(gbstats_reduction(c) for c in CASES) > 0.05
    looks = VECTORS["sequences"][0]["looks"]
    widths = [r["ci"][1] - r["ci"][0] for look in looks for r in look["results"] if r["cuped"]]
    assert widths == sorted(widths, reverse=True)  # the sequence narrows as users arrive
    assert any(r["p_value"] < 1 for look in looks for r in look["results"])
    assert all(math.isfinite(r["p_value"]) for c in CASES for r in c["results"])
