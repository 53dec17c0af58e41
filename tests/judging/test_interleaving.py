"""Interleaving and shadow scoring end to end on the tiny world: a live gateway, the closed-loop
simulation, the analysis and the judges; and the in-process interleaving validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gateway.analysis.report import analyze_experiment
from gateway.analysis.shadow import analyze_shadow
from gateway.assignment import INTERLEAVED
from gateway.cli import app as cli
from gateway.config import load_settings
from gateway.features.dataset import time_split
from gateway.judging.interleaving import (
    PATTERNS,
    expected_preference,
    interleave_runs,
    merge_all,
    validate_interleaving,
)
from gateway.judging.oracle import OracleRanker
from gateway.judging.shadow import judge_shadow
from gateway.rankers.libraries import load_arm_rankers
from gateway.storage import connect, read_frame
from gateway.world.load import load_truth
from tests.conftest import MODES_REQUESTS as REQUESTS


def test_every_request_is_served_in_one_of_three_groups(simulated_modes):
    report, engine = simulated_modes["report"], simulated_modes["engine"]
    assert report.served == REQUESTS and report.failed == 0
    assert set(report.arms) == {"control", "test", INTERLEAVED} and min(report.arms.values()) > 60
    rows = read_frame(engine, "SELECT arm, post_ids, teams, model_versions FROM exposures")
    assert len(rows) == REQUESTS
    interleaved = rows[rows["arm"] == INTERLEAVED]
    assert interleaved["teams"].notna().all() and rows.loc[rows["arm"] != INTERLEAVED, "teams"].isna().all()
    for posts, teams, versions in interleaved[["post_ids", "teams", "model_versions"]].itertuples(
        index=False
    ):
        assert len(json.loads(posts)) == len(json.loads(teams)) == 5
        assert set(json.loads(teams)) == {"control", "test"} and set(json.loads(versions)) == {
            "control",
            "test",
        }


def test_the_analysis_reports_interleaving_apart_from_the_ab_comparison(simulated_modes):
    settings = load_settings(simulated_modes["config"])
    result = analyze_experiment(settings, simulated_modes["engine"], since=str(simulated_modes["start"]))
    counts = simulated_modes["report"].arms
    assert set(result["arms"]) == {"control", "test"}
    assert {arm: a["requests"] for arm, a in result["arms"].items()} == {
        "control": counts["control"],
        "test": counts["test"],
    }
    il = result["interleaving"]
    assert il["requests"] == counts[INTERLEAVED] and il["control"] == "control" and il["treatment"] == "test"
    assert il["wins"]["control"] + il["wins"]["test"] + il["ties"] == il["requests"]
    assert sum(il["credited_likes"].values()) > 0 and -1 <= il["preference"] <= 1
    assert il["ci95"][0] <= il["preference"] <= il["ci95"][1] and 0 <= il["p_value"] <= 1
    assert set(result["srm"]["users"]) == {"control", "test", INTERLEAVED}
    assert sum(result["srm"]["expected"].values()) == pytest.approx(sum(result["srm"]["users"].values()))


def test_shadow_report_and_its_judgement_under_the_truth(simulated_modes):
    engine = simulated_modes["engine"]
    shadowed = read_frame(engine, "SELECT COUNT(*) AS n FROM exposures WHERE shadow_version IS NOT NULL")[
        "n"
    ][0]
    assert shadowed == simulated_modes["report"].arms["test"]
    (entry,) = analyze_shadow(engine, experiment="test-exp")["shadow"]
    assert entry["arm"] == "test" and entry["scored"] + entry["dropped"] == shadowed and entry["errors"] == 0
    assert entry["scored"] > 0.9 * shadowed  # light load: (almost) nothing dropped
    assert 0 <= entry["jaccard@5"] < 1 and 0 <= entry["rbo@5"] < 1  # another model: other lists
    assert entry["latency_ms"]["p50"] > 0
    judged = judge_shadow(engine, experiment="test-exp")[("test", entry["model_version"])]
    assert judged["requests"] == entry["scored"]
    assert 0 < judged["shadow"] < 1 and 0 < judged["served"] < 1
    assert judged["difference"] == pytest.approx(judged["shadow"] - judged["served"], abs=1e-4)


def test_the_cli_prints_both(simulated_modes):
    runner = CliRunner()
    config = str(simulated_modes["config"])
    shadow = runner.invoke(cli, ["analyze", "--shadow", "--json", "--config", config])
    assert shadow.exit_code == 0, shadow.output
    assert "expected_hitrate@5" in json.loads(shadow.output)["shadow"][0]  # the database holds a world
    plain = runner.invoke(cli, ["analyze", "--json", "--config", config])
    assert plain.exit_code == 0 and "interleaving" in json.loads(plain.output)
    table = runner.invoke(cli, ["analyze", "--config", config], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "preference for test" in table.output


def test_expected_preference_by_hand():
    # control's top post is always liked, nothing else ever is: control wins every request
    top_c, top_t = np.array([[0, 1, 2, 3, 4]]), np.array([[5, 6, 7, 8, 9]])
    p_c, p_t = np.array([[1.0, 0, 0, 0, 0]]), np.zeros((1, 5))
    pool = merge_all(top_c, top_t, p_c, p_t)
    assert pool.p.shape == (1, len(PATTERNS), 5)
    assert expected_preference(pool) == pytest.approx(-1.0)
    # the same ranking on both teams: no preference, exactly
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.5, (30, 5))
    tops = np.argsort(-rng.random((30, 20)), axis=1)[:, :5]
    assert expected_preference(merge_all(tops, tops, p, p)) == pytest.approx(0.0, abs=1e-12)


def test_simulated_runs_agree_with_the_exact_expectation():
    rng = np.random.default_rng(1)
    n = 600
    top_c = np.argsort(-rng.random((n, 30)), axis=1)[:, :5]
    top_t = np.argsort(-rng.random((n, 30)), axis=1)[:, :5]
    p_c, p_t = rng.uniform(0, 0.3, (n, 5)), rng.uniform(0.1, 0.4, (n, 5))
    pool = merge_all(top_c, top_t, p_c, p_t)
    users = np.repeat(np.arange(200), 3)
    runs = interleave_runs(pool, users, 200, seed=3, label="t")
    estimates = np.array([r.preference for r in runs])
    assert abs(estimates.mean() - expected_preference(pool)) < 4 * estimates.std() / np.sqrt(len(runs))


def test_validate_interleaving_on_the_tiny_world(tiny_store, tiny_db, tiny_models):
    from gateway.config import ArmSettings

    arms = [ArmSettings(name=a, weight=1, model=tiny_models / a) for a in ("control", "test")]
    models = load_arm_rankers(arms, tiny_store.manifest["feature_set_version"])
    oracle = OracleRanker(load_truth(connect(tiny_db)), tiny_store)
    window = time_split(tiny_store, 7, 7).evaluation
    result = validate_interleaving(
        tiny_store,
        (models["control"], models["test"]),
        oracle,
        window,
        runs=60,
        seed=0,
        users=300,
        power_runs=40,
    )
    out = result.as_json()
    assert {"aa_false_positive_rate", "sign_agreement", "users_for_80pct_power"} <= set(out)
    assert (
        set(out["users_for_80pct_power"])
        == set(out["closed_form"])
        == set(out["source"])
        == {"ab", "interleave"}
    )
    assert result.users == 300 and result.runs == 60
    assert 0 <= result.aa_false_positive_rate <= 0.2 and 0 <= result.sign_agreement <= 1
    assert all(n >= 2 for n in result.users_for_80pct_power.values())
    assert out["ratio"] == pytest.approx(
        result.users_for_80pct_power["ab"] / result.users_for_80pct_power["interleave"], rel=0.01
    )


def test_smallest_sample_bisects_a_monotone_power_curve():
    from gateway.judging.interleaving import smallest_sample

    calls = []

    def power(n: int) -> float:
        calls.append(n)
        return min(1.0, n / 1000)

    assert smallest_sample(power, 2, 4000) in range(800, 817)  # within 2 %
    assert len(calls) < 20
    assert smallest_sample(power, 2, 500) is None  # the pool is too small to reach 80 %
