"""Our statistics against results frozen from gbstats (tests/vectors/gbstats_frequentist.json).

The vectors were computed by gbstats itself outside this repo (see the file's ``source``);
gbstats is not a dependency. Every figure must agree to the file's tolerance (1e-6).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.analysis.frequentist import moments_pair, one_sided_ttest, two_sided_ttest
from gateway.analysis.power import power_at
from gateway.analysis.sequential import sequential_ttest
from gateway.analysis.srm import srm_check
from gateway.analysis.statistics import (
    RatioStatistic,
    RegressionAdjustedRatioStatistic,
    SampleMeanStatistic,
    regression_theta,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "gbstats_frequentist.json").read_text())
TOLERANCE = VECTORS["tolerance"]
KINDS = {"mean": SampleMeanStatistic, "ratio": RatioStatistic, "ratio_ra": RegressionAdjustedRatioStatistic}


def statistic(kind: str, fields: dict):
    return KINDS[kind](**fields)


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE


def _ours(case: dict, spec: dict) -> tuple[float, tuple[float, float], float, str]:
    """(estimate, interval, p-value, message) for one gbstats result spec."""
    c, t = statistic(case["kind"], case["control"]), statistic(case["kind"], case["treatment"])
    relative = spec["difference"] == "relative"
    if spec["test"] == "one_sided":
        r = one_sided_ttest(
            c,
            t,
            alternative=spec["alternative"],
            test_value=spec["test_value"],
            relative=relative,
            alpha=spec["alpha"],
        )
        return r.estimate, r.ci, r.p_value, r.message
    if spec["test"] == "two_sided":
        r = two_sided_ttest(c, t, alpha=spec["alpha"])
    else:
        r = sequential_ttest(c, t, tuning=spec["tuning"], alpha=spec["alpha"])
    if relative:
        return r.relative, r.ci95_relative, r.p_value_relative, r.message
    return r.absolute, r.ci95_absolute, r.p_value, r.message


RESULTS = [
    pytest.param(case, spec, id=f"{case['name']}-{spec['test']}-{spec['difference']}-{i}")
    for case in VECTORS["tests"]
    for i, spec in enumerate(case["results"])
]


@pytest.mark.parametrize(("case", "spec"), RESULTS)
def test_tests_agree_with_gbstats(case, spec):
    estimate, interval, p_value, message = _ours(case, spec)
    assert close(p_value, spec["p_value"])
    if spec["error"]:  # gbstats' uninformative output: p = 1, no interval
        assert message and p_value == 1.0 and all(math.isnan(x) for x in interval)
        return
    assert not message
    assert close(estimate, spec["estimate"])
    absolute, relative, _ = moments_pair(
        statistic(case["kind"], case["control"]), statistic(case["kind"], case["treatment"])
    )
    effect = relative if spec["difference"] == "relative" else absolute
    assert close(effect.standard_error, spec["standard_error"])
    for ours, theirs in zip(interval, spec["ci"], strict=True):
        assert math.isinf(ours) if theirs is None else close(ours, theirs)


@pytest.mark.parametrize("case", [c for c in VECTORS["tests"] if "theta" in c], ids=lambda c: c["name"])
def test_cuped_theta_agrees_with_gbstats(case):
    c, t = statistic(case["kind"], case["control"]), statistic(case["kind"], case["treatment"])
    assert close(regression_theta(c, t), case["theta"])
    assert close(two_sided_ttest(c, t).theta, case["theta"])


@pytest.mark.parametrize("case", VECTORS["power"], ids=lambda c: c["name"])
def test_power_agrees_with_gbstats_mid_experiment_power(case):
    ours = power_at(
        case["effect"],
        case["standard_error"],
        alpha=case["alpha"],
        n_total=case["n_total"],
        sequential_tuning=case["sequential_tuning"],
    )
    assert close(ours, case["power"])


@pytest.mark.parametrize("case", VECTORS["srm"], ids=lambda c: str(c["observed"]))
def test_srm_agrees_with_gbstats(case):
    assert close(srm_check(case["observed"], case["shares"]).p_value, case["p_value"])
