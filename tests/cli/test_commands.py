"""The command line: --help everywhere, clear one-line errors with a non-zero exit, no traceback."""

from __future__ import annotations

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gateway.cli import app

runner = CliRunner()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(_commands(get_command(app))))
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "synth", "--scale", "huge", "--db", "sqlite:////tmp/never.db"], "unknown scale"),
        (["data", "stats", "--db", "nonsense"], "bad database URL"),
        (["data", "stats", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect"),
        (["data", "stats", "--db", "sqlite:////tmp/definitely/absent.db"], "recsys data synth"),
        (["features", "build", "--db", "mysql://x@y/z"], "unsupported database scheme"),
    ],
)
def test_bad_input_gives_a_message_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_existing_world_and_bad_pairs_via_cli(tiny_db, tmp_path):
    result = runner.invoke(app, ["data", "synth", "--scale", "tiny", "--db", tiny_db])
    assert result.exit_code == 2 and "--replace" in result.output
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,post_id,timestamp\n1,2,not-a-time\n")
    result = runner.invoke(
        app,
        ["world", "like-prob", "--input", str(pairs), "--output", str(tmp_path / "o.csv"), "--db", tiny_db],
    )
    assert result.exit_code == 2 and "ISO datetime" in result.output
    pairs.write_text("user_id,post_id,timestamp\n123456789,1,2021-11-01 10:00:00\n")
    result = runner.invoke(
        app,
        ["world", "like-prob", "--input", str(pairs), "--output", str(tmp_path / "o.csv"), "--db", tiny_db],
    )
    assert result.exit_code == 2 and "unknown user id" in result.output


def test_like_prob_cli_writes_probabilities(tiny_db, tmp_path):
    import pandas as pd

    from gateway.storage import connect, read_frame

    rows = read_frame(connect(tiny_db), 'SELECT user_id, post_id, "timestamp" FROM feed_data LIMIT 50')
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = runner.invoke(
        app,
        [
            "world",
            "like-prob",
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "out.csv"),
            "--db",
            tiny_db,
        ],
    )
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["user_id", "post_id", "timestamp", "p_like"] and len(out) == 50
    assert out["p_like"].between(0, 1).all()


def test_training_and_evaluation_without_prerequisites_say_what_to_run(tmp_path, tiny_db):
    result = runner.invoke(app, ["train", "control", "--features-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "recsys features build" in result.output


def test_evaluate_without_models_says_what_to_run(tmp_path, tiny_store_dir):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"experiment:\n  arms:\n    - {{name: control, weight: 50, model: {tmp_path / 'c'}}}\n"
        f"    - {{name: test, weight: 50, model: {tmp_path / 't'}}}\n"
    )
    result = runner.invoke(
        app, ["evaluate", "--config", str(config), "--features-dir", str(tiny_store_dir.parent)]
    )
    assert result.exit_code == 2 and "recsys train control" in " ".join(result.output.split())
