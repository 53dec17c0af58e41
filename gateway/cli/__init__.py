"""``recsys``: one command line for every job. A command parses its arguments, calls one function
of the layer it belongs to, and renders the result; one module per command group."""

from __future__ import annotations

import sys

import typer

from gateway.cli import analyze, data, demo, evaluate, features, loadtest, mood, serve, simulate, train, world
from gateway.cli.common import err

app = typer.Typer(
    help="A/B experiment gateway for a news-feed recommender.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.command("compile")(train.compile_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("serve")(serve.serve)
app.command("bench")(loadtest.bench_command)
app.command("soak")(loadtest.soak_command)
app.command("simulate")(simulate.simulate_command)
app.command("demo")(demo.demo)
app.add_typer(data.app, name="data")
app.add_typer(world.app, name="world")
app.add_typer(features.app, name="features")
app.add_typer(features.online_app, name="online")
app.add_typer(train.app, name="train")
app.add_typer(analyze.app, name="analyze")
app.add_typer(mood.app, name="mood")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
