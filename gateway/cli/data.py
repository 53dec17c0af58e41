"""``recsys data``: build and inspect the synthetic world's source tables."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, DbOption, check_scale, console, engine_from, friendly

app = typer.Typer(help="Build and inspect the synthetic world's source tables.", no_args_is_help=True)


@app.command("synth")
@friendly
def data_synth(
    scale: Annotated[
        str, typer.Option(help="tiny (seconds) | small (10k users) | full (163k users, Postgres).")
    ] = "small",
    seed: Annotated[int, typer.Option(help="World seed: same seed and scale give identical tables.")] = 42,
    db: DbOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing world.")] = False,
    config: ConfigOption = None,
    posts: Annotated[
        int | None,
        typer.Option(
            min=100,
            max=2_000_000,
            help="Catalogue size (else the scale's); users, views and rates stay the scale's.",
        ),
    ] = None,
) -> None:
    """Generate a synthetic world (user_data, post_text_df, feed_data + world_* truth)."""
    from gateway.world.generate import synthesize
    from gateway.world.params import SCALES, with_posts

    check_scale(scale)
    engine = engine_from(db, config, create=True)
    world_scale = SCALES[scale] if posts is None else with_posts(SCALES[scale], posts)
    report = synthesize(engine, world_scale, seed, replace=replace)
    console.print(
        f"world [bold]{report.scale}[/] seed {report.seed}: {report.users:,} users, {report.posts:,} posts, "
        f"{report.feed_rows:,} feed rows in {report.seconds:.1f} s → {engine.url.render_as_string()}"
    )


@app.command("stats")
@friendly
def data_stats(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """Print the world's statistics next to the targets from the source facts."""
    from gateway.world.stats import world_stats

    stats = world_stats(engine_from(db, config))
    if as_json:
        print(
            json.dumps(
                {f"{s.section}.{s.name}": {"value": s.value, "target": s.target} for s in stats}, default=str
            )
        )
        return
    table = Table("section", "statistic", "world", "source target", title="World vs source facts")
    for s in stats:
        table.add_row(s.section, s.name, str(s.value), s.target)
    console.print(table)
