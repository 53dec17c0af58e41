"""The command line: the documented commands exist, --help describes every one, clear one-line
errors with a non-zero exit, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gateway.cli import app

runner = CliRunner()
ROOT = get_command(app)
README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


def _command(path: tuple[str, ...]):
    command = ROOT
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", list(_commands(ROOT)))
def test_every_commands_help_shows_its_summary_options_and_subcommands(path):
    command = _command(path)
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"Usage: root {' '.join(path)}" in " ".join(text.split())
    assert " ".join(command.help.split())[:60] in " ".join(text.split())
    for param in command.params:
        if param.param_type_name == "option":
            assert any(opt in text for opt in param.opts), f"{path}: {param.opts} missing from --help"
        else:
            assert param.name in text, f"{path}: argument {param.name} missing from --help"
    for name in getattr(command, "commands", {}):
        assert name in text


def _documented() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, options) of every `recsys ...` in the README's command table."""
    out = []
    for row in README.read_text().splitlines():
        if not row.startswith("| `recsys "):
            continue
        for usage in re.findall(r"`(recsys [^`]*)`", row.split(" | ")[0]):
            words = usage.split()[1:]
            path = tuple(re.match(r"[a-z][a-z-]*$", w) and w for w in words)
            path = path[: path.index(None)] if None in path else path
            out.append((path, re.findall(r"--[a-z][a-z-]*", usage)))
    return out


@pytest.mark.parametrize(("path", "options"), _documented(), ids=lambda v: " ".join(v) if v else "-")
def test_every_documented_command_and_option_exists(path, options):
    command = _command(path)
    declared = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert set(options) <= declared, f"recsys {' '.join(path)}: {set(options) - declared} not declared"


def test_the_readme_documents_every_command():
    documented = {path for path, _ in _documented()}
    runnable = {
        path
        for path in _commands(ROOT)
        if not hasattr(_command(path), "commands") or _command(path).invoke_without_command
    }
    assert runnable <= documented


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "synth", "--scale", "huge", "--db", "sqlite:////tmp/never.db"], "unknown scale"),
        (["data", "stats", "--db", "nonsense"], "bad database URL"),
        (["data", "stats", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect"),
        (["data", "stats", "--db", "sqlite:////tmp/definitely/absent.db"], "recsys data synth"),
        (["features", "build", "--db", "mysql://x@y/z"], "unsupported database scheme"),
        (["analyze", "validate", "--mode", "bogus"], "unknown mode 'bogus'"),
        (["evaluate", "--candidates", "many"], "--candidates must be all or an integer"),
        (["bench", "--scale-store", "/tmp/absent-store-dir"], "not a feature-store version folder"),
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
