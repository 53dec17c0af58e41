"""``recsys mood ...``: how moods are read, where they steer the feed, what they cost, and
importing a deployer's word vectors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, DbOption, console, engine_from, err, friendly, settings_from

app = typer.Typer(help="Moods: how they are read, where they steer, what they cost.", no_args_is_help=True)


@app.command("explain")
@friendly
def explain_command(
    text: Annotated[
        str, typer.Argument(help="A mood as a person would type it, e.g. '⚽' or 'want to laugh'.")
    ],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show how a mood is read: each typed part, the terms the lexicon gives it, which of them the
    encoder knows (topic name or text word), and the topics of the nearest posts."""
    from gateway.serving.moods import explain_mood

    result = explain_mood(settings_from(config), text)
    if as_json:
        console.print_json(json.dumps(result, ensure_ascii=False))
        return
    table = Table(title=f"mood {text!r}: {'matched' if result['matched'] else 'NOT matched'}")
    for column in ("typed", "terms known (topic / word)", "terms unknown"):
        table.add_column(column)
    for part in result["parts"]:
        known = [f"{t} ({k})" for t, k in part["terms"].items() if k != "unknown"]
        unknown = [t for t, k in part["terms"].items() if k == "unknown"]
        table.add_row(part["typed"], ", ".join(known) or "-", ", ".join(unknown) or "-")
    console.print(table)
    console.print(f"encoder {result['encoder']}, lexicon {result['lexicon']}")
    shares = ", ".join(f"{t} {s:.2f}" for t, s in result["nearest_topics"].items())
    console.print(f"topics of the nearest posts: {shares or '- (no mood signal)'}")


@app.command("measure")
@friendly
def measure_command(
    url: Annotated[
        str | None,
        typer.Option(
            help="A running gateway (its exposure log records the requests); default: start one in process."
        ),
    ] = None,
    mood: Annotated[
        list[str] | None,
        typer.Option("--mood", help="Moods to measure (repeatable); default: the README's set."),
    ] = None,
    user: Annotated[int, typer.Option(help="The single user to show.")] = 200,
    users: Annotated[int, typer.Option(min=1, max=100_000, help="Sampled users per mood.")] = 200,
    time: Annotated[str, typer.Option("--time", help="Request time, ISO 8601.")] = "2021-12-20T20:00:00",
    seed: Annotated[int, typer.Option(help="Seed of the user sample.")] = 0,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Top-5 topic shares per mood for a user sample (and the most common sub-topic, from the
    world's truth: judging only), plus one user's five topics."""
    from gateway.judging.moods import DEFAULT_MOODS, measure_moods
    from gateway.judging.moods import as_json as rows_json

    rows = measure_moods(
        engine_from(db, config),
        url=url,
        config=config,
        moods=tuple(mood) if mood else DEFAULT_MOODS,
        user=user,
        users=users,
        when=time,
        seed=seed,
    )
    if as_json:
        console.print_json(json.dumps(rows_json(rows), ensure_ascii=False))
        return
    topics = sorted({t for r in rows for t in r.topic_share})
    table = Table(title=f"top-5 topic shares, {users} users at {time} (seed {seed})")
    for column in ("mood", "matched", *topics, "top sub-topic", f"user {user}"):
        table.add_column(column)
    for r in rows:
        status = "" if set(r.statuses) == {"200"} else " " + json.dumps(r.statuses)
        table.add_row(
            (r.mood or "(none)") + status,
            "-" if r.matched is None else f"{r.matched:.2f}",
            *(f"{r.topic_share.get(t, 0):.2f}" for t in topics),
            f"{r.top_subtopic} {r.top_subtopic_share:.2f}",
            ", ".join(f"{n} {t}" for t, n in Counter(r.user_topics).most_common()),
        )
    console.print(table)


@app.command("bench")
@friendly
def bench_command(
    mood: Annotated[list[str] | None, typer.Option("--mood", help="Moods to time (repeatable).")] = None,
    number: Annotated[int, typer.Option(min=1, help="Calls per round.")] = 2000,
    repeat: Annotated[int, typer.Option(min=1, help="Rounds; the best is reported.")] = 5,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Microbenchmark of the per-request mood path: the encoder before this work and now (first
    time and repeated), side by side in one run, µs per mood."""
    from gateway.loadtest.mood_bench import DEFAULT_MOODS, bench_moods

    rows = bench_moods(settings_from(config), tuple(mood) if mood else DEFAULT_MOODS, number, repeat)
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title=f"µs per mood (best of {repeat} × {number} calls)")
    for column in ("mood", "before", "after (first time)", "after (repeated)"):
        table.add_column(column)
    for r in rows:
        label = r["mood"] if len(r["mood"]) <= 30 else r["mood"][:27] + "..."
        table.add_row(label, str(r["before_us"]), str(r["after_first_us"]), str(r["after_repeated_us"]))
    console.print(table)


@app.command("import-vectors")
@friendly
def import_vectors_command(
    source: Annotated[
        Path, typer.Argument(help="GloVe / word2vec / fastText text file: `word v1 v2 ...` per line.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write (config.json + vectors.npz).")],
    limit: Annotated[
        int | None, typer.Option(min=1, help="Keep only the first N words (files list frequent words first).")
    ] = None,
) -> None:
    """Convert word vectors into the directory `serving.mood_encoder: vectors:<dir>` reads."""
    from gateway.features.word_vectors import import_text_vectors

    vectors = import_text_vectors(source, out, limit)
    err.print(f"{len(vectors.words):,} words × {vectors.vectors.shape[1]} dims → {out}")
