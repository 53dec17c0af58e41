"""``recsys simulate``: closed-loop traffic through a running gateway; the world's users react."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import ConfigOption, DbOption, UserError, console, engine_from, friendly


@friendly
def simulate_command(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    db: DbOption = None,
    users: Annotated[int, typer.Option(min=1, help="Active users sampled from the world.")] = 2000,
    requests: Annotated[int, typer.Option(min=1, max=10_000_000, help="Requests to send.")] = 5000,
    start: Annotated[
        str | None, typer.Option(help="First simulated day, ISO date (default: the day after the feed ends).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=365, help="Simulated days.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed: the run is deterministic for a seed.")] = 0,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Concurrent clients (each owns a set of users).")
    ] = 4,
    max_seconds: Annotated[float, typer.Option(min=1, help="Stop sending after this many seconds.")] = 3600,
    config: ConfigOption = None,
) -> None:
    """Drive the running gateway and let the world's users react (rows into feed_data)."""
    import os

    import pandas as pd

    from gateway.judging.simulation import simulate_world

    token = os.environ.get("RECSYS_ADMIN_TOKEN")
    if not token:
        raise UserError(
            "set RECSYS_ADMIN_TOKEN to the gateway's admin token: the simulator sends events to POST /events"
        )
    try:
        first_day = pd.Timestamp(start) if start else None
    except ValueError as exc:
        raise UserError(f"bad --start {start!r}: use an ISO date such as 2021-12-30") from exc
    report = simulate_world(
        url,
        engine_from(db, config),
        start=first_day,
        admin_token=token,
        users=users,
        requests=requests,
        days=days,
        seed=seed,
        concurrency=concurrency,
        max_seconds=max_seconds,
    )
    console.print(
        f"{report.served:,}/{report.requests:,} requests served ({report.failed} failed) in {report.seconds:.1f} s; "
        f"{report.views:,} views, {report.likes:,} likes written to feed_data; per arm: "
        + ", ".join(
            f"{a} {n} requests, {report.hits.get(a, 0) / max(n, 1):.3f} liked one of the 5"
            for a, n in sorted(report.arms.items())
        )
    )
    if report.stopped_early:
        console.print("[yellow]stopped early: --max-seconds reached[/]")
    if report.failed:
        raise UserError(f"{report.failed} requests failed, e.g. {report.errors[:2]}")
