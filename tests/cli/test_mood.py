"""``recsys mood ...`` on the tiny world: explain, measure, bench, import-vectors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import write_config

runner = CliRunner()


@pytest.fixture(scope="module")
def config(tiny_db, tiny_store_dir, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("mood-cli")
    return write_config(
        root / "config.yaml", db=tiny_db, features_dir=tiny_store_dir.parent, models=tiny_models
    )


def _json(output: str):
    return json.loads(output[output.index("{") if output.lstrip().startswith("{") else output.index("[") :])


def test_explain_shows_how_a_mood_is_read(config):
    result = runner.invoke(app, ["mood", "explain", "⚽ xyzzy", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    explained = _json(result.output)
    assert explained["matched"] and [p["typed"] for p in explained["parts"]] == ["⚽", "xyzzy"]
    assert explained["parts"][0]["terms"]["sport"] == "topic" and explained["parts"][1]["terms"] == {
        "xyzzy": "unknown"
    }
    shares = explained["nearest_topics"]  # of the 50 nearest posts; the tiny world has ~25 sport posts
    assert max(shares, key=shares.get) == "sport" and shares["sport"] >= 0.4, shares
    table = runner.invoke(app, ["mood", "explain", "sad", "--config", str(config)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "drama (word)" in table.output


def test_explain_a_mood_without_words_is_one_line_and_exit_2(config):
    result = runner.invoke(app, ["mood", "explain", "!!!", "--config", str(config)])
    assert result.exit_code == 2 and "mood has no words" in result.output and "Traceback" not in result.output


def test_measure_reports_topic_shares_per_mood(config, tiny_store):
    user = int(tiny_store.user_ids[0])
    args = ["mood", "measure", "--config", str(config), "--users", "8", "--user", str(user), "--json"]
    result = runner.invoke(app, [*args, "--mood", "", "--mood", "tennis", "--mood", "xyzzy", "--mood", "..."])
    assert result.exit_code == 0, result.output
    rows = {r["mood"]: r for r in _json(result.output)}
    assert (
        rows[""]["matched"] is None and rows["xyzzy"]["matched"] == 0.0 and rows["tennis"]["matched"] == 1.0
    )
    assert rows["tennis"]["topic_share"]["sport"] >= 0.9 and rows["tennis"]["top_subtopic"] == "sport/tennis"
    assert rows["xyzzy"]["topic_share"] == rows[""]["topic_share"]
    assert rows["..."]["statuses"] == {"422": 8} and rows["..."]["user_topics"][0].startswith(
        "422: mood has no words"
    )


def test_bench_prints_before_and_after_per_mood(config):
    args = ["mood", "bench", "--config", str(config), "--number", "5", "--repeat", "1", "--json"]
    result = runner.invoke(app, [*args, "--mood", "football", "--mood", "⚽"])
    assert result.exit_code == 0, result.output
    rows = _json(result.output)
    assert [r["mood"] for r in rows] == ["football", "⚽"]
    assert all(r[k] > 0 for r in rows for k in ("before_us", "after_first_us", "after_repeated_us"))


def test_import_vectors_writes_the_directory_or_says_why_not(tmp_path):
    source = tmp_path / "vectors.txt"
    source.write_text("football 1 0\nsoccer 1 0.1\n")
    result = runner.invoke(app, ["mood", "import-vectors", str(source), "--out", str(tmp_path / "model")])
    assert result.exit_code == 0 and "2 words × 2 dims" in result.output
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "model" / "vectors.npz").exists()
    missing = runner.invoke(
        app, ["mood", "import-vectors", str(tmp_path / "absent.txt"), "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output and "Traceback" not in missing.output
