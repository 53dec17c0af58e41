"""The decision of ``recsys analyze``: per-user sums by SQL (SQLite and PostgreSQL), one primary test,
CUPED, sequential, exclusions, realisable SRM shares, phases, --until."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from gateway.analysis.decision import ArmUsers
from gateway.analysis.frequentist import two_sided_ttest
from gateway.analysis.report import AnalysisError, analyze
from gateway.analysis.sequential import sequential_ttest
from gateway.analysis.statistics import RegressionAdjustedRatioStatistic
from gateway.exposure import exposure_metadata, exposures
from gateway.storage import bulk_insert, connect
from gateway.storage.schema import feed_data, metadata

T0 = datetime(2022, 1, 10, 12, 0, 0)
H = pd.Timedelta("1h")
HALF = {"control": 1, "test": 1}


def fill(engine, rows: list[dict], feed: list[tuple]) -> None:
    """Exposure rows (``row``) and feed rows (timestamp, user, post, action) into a fresh database."""
    metadata.create_all(engine, tables=[feed_data])
    exposure_metadata.create_all(engine, tables=[exposures])
    frame = pd.DataFrame(rows)
    frame["served_at"] = T0
    frame["bucket"] = 1.0
    frame["cold_start"] = frame.get("cold_start", False)
    frame["post_ids"] = frame["post_ids"].map(json.dumps)
    bulk_insert(engine, exposures, frame.reindex(columns=[c.name for c in exposures.columns]))
    if feed:
        fd = pd.DataFrame(feed, columns=["timestamp", "user_id", "post_id", "action"])
        fd["target"] = (fd["action"] == "like").astype(int)
        bulk_insert(engine, feed_data, fd[["timestamp", "user_id", "post_id", "action", "target"]])


def row(i, user, arm, t, posts=(1, 2, 3, 4, 5), *, version="v1", inside=True, latency=10.0, topic=None):
    return {
        "request_id": f"r{i}",
        "request_time": t,
        "user_id": user,
        "experiment": "e",
        "arm": arm,
        "in_experiment": inside,
        "model_version": f"{arm}-{version}",
        "post_ids": list(posts),
        "latency_ms": latency,
        "topic": topic,
    }


def sqlite(tmp_path):
    return connect(f"sqlite:///{tmp_path}/d.db", create=True)


def test_equal_rates_in_every_arm_give_p_1_and_a_message_not_a_winner(tmp_path):
    # The case: control's users at 1 hit of 2, test's at 2 of 2: zero variance in each arm.
    rows, feed, i = [], [], 0
    for user, arm, hits in ((1, "control", 1), (2, "control", 1), (3, "test", 2), (4, "test", 2)):
        for r in range(2):
            i += 1
            rows.append(
                row(i, user, arm, T0 + r * 3 * H, posts=(100 * i + p for p in range(5)), topic="news")
            )
            if r < hits:
                feed.append((T0 + r * 3 * H + pd.Timedelta("5min"), user, 100 * i, "like"))
    engine = sqlite(tmp_path)
    fill(engine, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights=HALF, split_by="topic")
    for key in ("delta", "cuped", "sequential"):
        assert result[key]["p_value"] == 1.0 and "variance" in result[key]["message"], key
        assert result[key]["ci95_absolute"] == [None, None]
    assert result["delta"]["absolute"] == pytest.approx(0.5)  # descriptive only
    news = result["by"]["groups"]["news"]["delta"]  # a --by slice goes through the same guard
    assert news["p_value"] == 1.0 and "message" in news
    json.dumps(result, allow_nan=False)  # no NaN reaches the JSON


def _experiment(n_users=60, seed=0, *, effect=0.15, pre=True, cold=0):
    """Users whose pre-period like rate predicts their hit rate; test adds ``effect`` to the hit chance."""
    rng = np.random.default_rng(seed)
    rows, feed, i = [], [], 0
    for user in range(1, n_users + 1):
        arm = "control" if user % 2 else "test"
        taste = rng.uniform(0.05, 0.9)
        if pre and user > cold:
            views = int(rng.integers(20, 40))
            for v in range(views):
                t = T0 - pd.Timedelta(days=10) + v * pd.Timedelta("10min")
                feed.append((t, user, 9000 + v, "view"))
                if rng.random() < taste:
                    feed.append((t + pd.Timedelta("1min"), user, 9000 + v, "like"))
            feed.append((T0 - pd.Timedelta(days=20), user, 8000, "like"))  # outside the 14-day window
        for r in range(int(rng.integers(2, 6))):
            i += 1
            t = T0 + r * 2 * H + pd.Timedelta(minutes=user)
            posts = [100 * i + p for p in range(6)]
            rows.append(row(i, user, arm, t, posts))
            if rng.random() < min(1.0, taste + (effect if arm == "test" else 0.0)):
                feed.append((t + pd.Timedelta("10min"), user, posts[int(rng.integers(0, 5))], "like"))
    return rows, feed


def _by_hand(rows, feed, window=H, days=14):
    """Per-user sums computed in Python from the raw rows, the reference for the SQL."""
    ex = pd.DataFrame(rows)
    fd = pd.DataFrame(feed, columns=["timestamp", "user_id", "post_id", "action"])
    likes = fd[fd["action"] == "like"]
    out = []
    for user, group in ex.groupby("user_id"):
        mine = likes[likes["user_id"] == user]
        hits = sum(
            any(
                ((mine["post_id"] == p) & (mine["timestamp"] > t) & (mine["timestamp"] <= t + window)).any()
                for p in posts[:5]
            )
            for t, posts in zip(group["request_time"], group["post_ids"], strict=True)
        )
        first = group["request_time"].min()
        pre = fd[
            (fd["user_id"] == user)
            & (fd["timestamp"] < first)
            & (fd["timestamp"] >= first - pd.Timedelta(days=days))
        ]
        out.append(
            (
                group["arm"].iloc[0],
                len(group),
                hits,
                (pre["action"] == "like").sum(),
                (pre["action"] == "view").sum(),
            )
        )
    frame = pd.DataFrame(out, columns=["arm", "requests", "hits", "pre_likes", "pre_views"])
    return {a: ArmUsers.from_frame(g) for a, g in frame.groupby("arm")}


def _check_against_hand(result, rows, feed):
    arms = _by_hand(rows, feed)
    c, t = arms["control"], arms["test"]
    assert result["arms"]["control"]["hits"] == int(c.hits.sum())
    assert result["arms"]["test"]["requests"] == int(t.requests.sum())
    plain = two_sided_ttest(c.ratio(), t.ratio())
    assert result["delta"]["p_value"] == pytest.approx(plain.p_value, rel=1e-9)
    assert result["delta"]["ci95_absolute"] == pytest.approx(list(plain.ci95_absolute), rel=1e-9)
    cuped = two_sided_ttest(c.cuped(), t.cuped())
    assert isinstance(c.cuped(), RegressionAdjustedRatioStatistic)
    assert result["cuped"]["theta"] == pytest.approx(cuped.theta, rel=1e-9)
    assert result["cuped"]["ci95_relative"] == pytest.approx(list(cuped.ci95_relative), rel=1e-9)
    assert result["cuped"]["variance_reduction"] == pytest.approx(cuped.variance_reduction, rel=1e-9)
    seq = sequential_ttest(c.ratio(), t.ratio(), tuning=5000)
    assert result["sequential"]["ci95_absolute"] == pytest.approx(list(seq.ci95_absolute), rel=1e-9)
    assert result["sequential"]["p_value"] == pytest.approx(seq.p_value, rel=1e-9)


def test_sql_sums_cuped_and_sequential_agree_with_the_pure_layer_on_raw_rows(tmp_path):
    rows, feed = _experiment(80, seed=1)
    engine = sqlite(tmp_path)
    fill(engine, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights=HALF)
    _check_against_hand(result, rows, feed)
    # The pre-period predicts the outcome here, so CUPED must have bought a clear reduction.
    assert result["cuped"]["variance_reduction"] > 0.2
    width = lambda d: d["ci95_absolute"][1] - d["ci95_absolute"][0]  # noqa: E731
    assert width(result["cuped"]) < width(result["delta"]) < width(result["sequential"])
    assert result["primary"] == {**result["primary"], "metric": "hitrate@5", "test": "delta"}
    assert result["welch"]["metric"] == "user_hitrate@5"  # a separate, secondary metric
    for key in ("delta", "cuped", "sequential"):
        assert set(result[key]) >= {"absolute", "relative", "ci95_absolute", "ci95_relative", "p_value"}


def test_postgres_aggregation_matches(pg_url):
    rows, feed = _experiment(60, seed=2, cold=6)
    engine = connect(pg_url)
    fill(engine, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights=HALF)
    _check_against_hand(result, rows, feed)
    assert result["cuped"]["cold_start_users"] == 6


def test_cold_start_users_enter_at_the_pooled_rate_and_an_arm_without_pre_period_is_plain(tmp_path):
    rows, feed = _experiment(60, seed=3, cold=20)
    engine = sqlite(tmp_path)
    fill(engine, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights=HALF)
    assert result["cuped"]["cold_start_users"] == 20 and result["cuped"]["users_with_pre_period"] == 40
    _check_against_hand(result, rows, feed)
    rows, feed = _experiment(30, seed=3, pre=False)
    engine = connect(f"sqlite:///{tmp_path}/none.db", create=True)
    fill(engine, rows, feed)
    plain = analyze(engine, experiment="e", window="1h", weights=HALF)
    assert plain["cuped"]["variance_reduction"] == 0 and "pre-period" in plain["cuped"]["note"]
    assert plain["cuped"]["p_value"] == pytest.approx(plain["delta"]["p_value"])


def test_users_in_two_arms_are_excluded_and_counted(tmp_path):
    rows, feed = _experiment(40, seed=4)
    clean = analyze(_filled(tmp_path / "a", rows, feed), experiment="e", window="1h", weights=HALF)
    moved = rows + [row(10_000 + k, user, "test", T0 + 20 * H) for k, user in enumerate((1, 3, 5))]
    result = analyze(_filled(tmp_path / "b", moved, feed), experiment="e", window="1h", weights=HALF)
    assert result["excluded"]["multiple_arms_users"] == 3
    assert result["excluded"]["not_in_experiment"] == 0
    assert result["arms"]["control"]["users"] == clean["arms"]["control"]["users"] - 3
    assert result["arms"]["test"]["users"] == clean["arms"]["test"]["users"]
    assert sum(result["srm"]["users"].values()) == sum(clean["srm"]["users"].values()) - 3


def _filled(path, rows, feed):
    path.mkdir(parents=True, exist_ok=True)
    engine = connect(f"sqlite:///{path}/x.db", create=True)
    fill(engine, rows, feed)
    return engine


def test_srm_expects_the_shares_the_hash_realises(tmp_path):
    rows = [row(u, u, ("a", "b", "c")[u % 3], T0) for u in range(300)]
    for r in rows:
        r["model_version"] = "m"
    engine = _filled(tmp_path, rows, [])
    result = analyze(
        engine, experiment="e", window="1h", weights={"a": 1, "b": 1, "c": 1}, control="a", treatment="b"
    )
    assert result["srm"]["expected"] == pytest.approx({"a": 102.0, "b": 99.0, "c": 99.0})  # 34/33/33


def test_until_beside_since_and_a_concurrent_comparison_per_model_version_phase(tmp_path):
    rows, feed = _experiment(60, seed=5)
    for r in rows:  # the test arm's model is swapped 5 hours in
        if r["arm"] == "test" and r["request_time"] >= T0 + 5 * H:
            r["model_version"] = "test-v2"
    engine = _filled(tmp_path, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights=HALF)
    phases = result["phases"]
    assert len(phases) == 2 and phases[0]["until"] == phases[1]["since"]
    assert phases[0]["model_versions"]["test"] == ["test-v1"] and phases[1]["model_versions"]["test"] == [
        "test-v2"
    ]
    for phase in phases:
        assert (
            phase["delta"]["ci95_absolute"][0]
            < phase["delta"]["absolute"]
            < phase["delta"]["ci95_absolute"][1]
        )
    first = analyze(engine, experiment="e", window="1h", weights=HALF, until=phases[0]["until"])
    assert first["delta"]["absolute"] == pytest.approx(phases[0]["delta"]["absolute"])
    assert "phases" not in first and first["until"] == phases[0]["until"]
    with pytest.raises(AnalysisError, match="--until"):
        analyze(engine, experiment="e", window="1h", weights=HALF, since="2022-01-11", until="2022-01-10")


def test_more_than_two_arms_each_against_control_holm_adjusted(tmp_path):
    rows, feed = _experiment(90, seed=6)
    for r in rows:
        if r["user_id"] % 3 == 0:
            r["arm"], r["model_version"] = "third", "third-v1"
    engine = _filled(tmp_path, rows, feed)
    result = analyze(engine, experiment="e", window="1h", weights={"control": 1, "test": 1, "third": 1})
    comparisons = result["comparisons"]
    assert set(comparisons) == {"test", "third"}
    raw = sorted(c["delta"]["p_value"] for c in comparisons.values())
    adjusted = sorted(c["delta"]["p_value_adjusted"] for c in comparisons.values())
    assert adjusted[0] == pytest.approx(min(1.0, 2 * raw[0]))  # Holm: the smallest times 2
    assert result["delta"] == comparisons["test"]["delta"]


def test_cli_json_keeps_the_old_keys_adds_the_new_and_takes_until(tmp_path):
    from typer.testing import CliRunner

    from gateway.cli import app

    rows, feed = _experiment(40, seed=7)
    _filled(tmp_path, rows, feed)
    config = tmp_path / "config.yaml"
    config.write_text(
        "experiment:\n  name: e\n  arms:\n    - {name: control, weight: 50, model: m/c}\n"
        "    - {name: test, weight: 50, model: m/t}\nanalysis:\n  cuped_days: 14\n  sequential_planned_users: 400\n"
    )
    db = f"sqlite:///{tmp_path}/x.db"
    runner = CliRunner()
    out = runner.invoke(app, ["analyze", "--json", "--db", db, "--config", str(config)])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert {"arms", "srm", "delta", "welch", "excluded_not_in_experiment"} <= set(result)  # today's keys
    assert {"cuped", "sequential", "excluded", "primary"} <= set(result)
    assert result["sequential"]["planned_users"] == 400
    cut = runner.invoke(
        app, ["analyze", "--json", "--db", db, "--config", str(config), "--until", "2022-01-10 14:00"]
    )
    assert json.loads(cut.output)["arms"]["control"]["requests"] < result["arms"]["control"]["requests"]
    table = runner.invoke(app, ["analyze", "--db", db, "--config", str(config)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "CUPED" in table.output and "sequential" in table.output
    bad = runner.invoke(app, ["analyze", "--db", db, "--config", str(config), "--until", "someday"])
    assert bad.exit_code != 0 and "--until" in bad.output and "Traceback" not in bad.output


def test_power_from_the_running_experiment_and_from_the_pre_period(tmp_path):
    from typer.testing import CliRunner

    from gateway.analysis.decision import cuped_object
    from gateway.analysis.power import Design, users_per_arm
    from gateway.cli import app

    rows, feed = _experiment(80, seed=8)
    _filled(tmp_path, rows, feed)
    config = tmp_path / "config.yaml"
    config.write_text(
        "experiment:\n  name: e\n  arms:\n    - {name: control, weight: 50, model: m/c}\n"
        "    - {name: test, weight: 50, model: m/t}\n"
    )
    db = f"sqlite:///{tmp_path}/x.db"
    out = CliRunner().invoke(
        app, ["analyze", "power", "--mde", "0.05", "--json", "--db", db, "--config", str(config)]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert set(report) >= {"mde", "users_per_arm", "days"} and report["source"] == "experiment"
    arms = _by_hand(rows, feed)
    sigma2 = (arms["control"].ratio().variance + arms["test"].ratio().variance) / 2
    assert report["users_per_arm"]["plain"] == users_per_arm(0.05, sigma2, Design())
    reduction = cuped_object(arms["control"], arms["test"])["variance_reduction"]
    assert report["variance_reduction"] == pytest.approx(reduction) and reduction > 0.2
    assert report["users_per_arm"]["cuped"] == users_per_arm(
        0.05, sigma2, Design(variance_reduction=reduction)
    )
    assert report["users_per_arm"]["cuped"] < report["users_per_arm"]["plain"]
    assert report["days"]["cuped"] <= report["days"]["plain"]
    # Before the experiment starts: the feed's own likes / views per user.
    engine = connect(f"sqlite:///{tmp_path}/pre.db", create=True)
    fill(engine, [row(1, 1, "control", T0)], [f for f in feed if f[0] < T0])
    with engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM exposures"))
    pre = CliRunner().invoke(
        app, ["analyze", "power", "--json", "--db", f"sqlite:///{tmp_path}/pre.db", "--config", str(config)]
    )
    assert pre.exit_code == 0, pre.output
    assert json.loads(pre.output)["source"] == "pre-period" and json.loads(pre.output)["mde"] == 0.02
    bad = CliRunner().invoke(app, ["analyze", "power", "--mde", "-1", "--db", db, "--config", str(config)])
    assert bad.exit_code != 0 and "--mde" in bad.output and "Traceback" not in bad.output


def test_guardrails_and_secondary_metrics_user_clustered(tmp_path):
    from gateway.config import GuardrailSettings

    rows, feed = _experiment(80, seed=9)
    rng = np.random.default_rng(9)
    for r in rows:  # the test arm is 50 % slower: the latency guardrails must fail
        r["latency_ms"] = float(rng.gamma(4.0, 5.0)) * (1.5 if r["arm"] == "test" else 1.0)
        feed += [
            (r["request_time"] + pd.Timedelta("30s"), r["user_id"], p, "view") for p in r["post_ids"][:5]
        ]
    engine = _filled(tmp_path, rows, feed)
    rules = [GuardrailSettings(metric="latency_p99", margin=0.1), GuardrailSettings(metric="latency_mean", margin=0.1),
             GuardrailSettings(metric="likes_per_view", margin=0.5)]  # fmt: skip
    result = analyze(engine, experiment="e", window="1h", weights=HALF, guardrail_rules=rules)
    by = {g["metric"]: g for g in result["guardrails"]}
    assert set(by) == {"latency_p99", "latency_mean", "likes_per_view"}
    for g in by.values():
        assert set(g) >= {"metric", "control", "test", "absolute", "ci95_absolute", "margin", "status"}
    assert by["latency_mean"]["status"] == "fail" and by["latency_p99"]["status"] == "fail"
    frame = pd.DataFrame(rows)
    mean = frame.groupby("arm")["latency_ms"].sum() / frame.groupby("arm").size()
    assert by["latency_mean"]["control"] == pytest.approx(mean["control"])
    assert by["latency_p99"]["test"] == pytest.approx(
        np.quantile(frame.loc[frame["arm"] == "test", "latency_ms"], 0.99, method="inverted_cdf"), rel=0.021
    )
    # Likes per view: the test arm likes more (its hit chance is higher), far inside a 50 % margin.
    assert by["likes_per_view"]["status"] == "pass" and by["likes_per_view"]["absolute"] > 0
    secondary = {s["metric"]: s for s in result["secondary"]}
    assert set(secondary) == {"latency_mean", "latency_p99", "likes_per_view", "user_hitrate@5"}
    raw = sorted(s["p_value"] for s in secondary.values())
    assert min(s["p_value_adjusted"] for s in secondary.values()) == pytest.approx(
        min(1.0, 4 * raw[0])
    )  # Holm
    json.dumps(result, allow_nan=False)


def test_analyze_bench_builds_the_log_and_times_the_real_command(pg_url):
    from typer.testing import CliRunner

    from gateway.cli import app

    out = CliRunner().invoke(app, ["analyze", "bench", "--rows", "3000", "--json", "--db", pg_url])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["rows"] == 3000 and report["users"] == 120
    result = report["result"]
    assert sum(a["requests"] for a in result["arms"].values()) == 3000
    assert result["cuped"]["variance_reduction"] > 0.2  # the built pre-period predicts the hits
    assert report["analyze_seconds"] > 0 and 50 < report["peak_rss_mb"] < 1024
    refused = CliRunner().invoke(app, ["analyze", "bench", "--rows", "3000"])
    assert refused.exit_code != 0 and "--db" in refused.output


def test_topic_diversity_and_catalogue_coverage_of_the_served_top_5(tmp_path):
    from gateway.storage.schema import post_text_df

    rows, feed = _experiment(60, seed=10)
    engine = _filled(tmp_path, rows, feed)
    rng = np.random.default_rng(10)
    catalogue = pd.DataFrame({"post_id": np.arange(50_000), "text": "x"})
    catalogue["topic"] = [f"t{t}" for t in rng.integers(0, 4, len(catalogue))]
    metadata.create_all(engine, tables=[post_text_df])
    bulk_insert(engine, post_text_df, catalogue)
    result = analyze(engine, experiment="e", window="1h", weights=HALF)
    secondary = {s["metric"]: s for s in result["secondary"]}
    topic = catalogue.set_index("post_id")["topic"]
    frame = pd.DataFrame(rows)
    frame["topics"] = frame["post_ids"].map(lambda posts: topic.loc[list(posts[:5])].nunique())
    expected = frame.groupby("arm")["topics"].sum() / frame.groupby("arm").size()
    assert secondary["topic_diversity"]["control"] == pytest.approx(expected["control"])
    assert secondary["topic_diversity"]["test"] == pytest.approx(expected["test"])
    assert "p_value_adjusted" in secondary["topic_diversity"]
    served = frame.groupby("arm")["post_ids"].agg(
        lambda lists: len({p for posts in lists for p in posts[:5]})
    )
    assert secondary["catalogue_coverage"]["control"] == pytest.approx(served["control"] / 50_000)
    assert secondary["catalogue_coverage"]["p_value"] is None  # descriptive
