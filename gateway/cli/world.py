"""``recsys world``: the world's ground truth (for judging only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import ConfigOption, DbOption, engine_from, err, friendly

app = typer.Typer(help="The world's ground truth (for judging only).", no_args_is_help=True)


@app.command("like-prob")
@friendly
def world_like_prob(
    input: Annotated[Path, typer.Option("--input", help="CSV with header user_id,post_id,timestamp.")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write: the same rows plus p_like.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Append the true like probability to (user, post, time) rows."""
    from gateway.world.pairs import read_pairs, write_like_probabilities

    pairs = read_pairs(input)
    write_like_probabilities(engine_from(db, config), pairs, output)
    err.print(f"{len(pairs):,} rows → {output}")
