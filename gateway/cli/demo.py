"""``recsys demo``: the main job end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import ConfigOption, DbOption, check_scale, console, friendly, settings_from
from gateway.cli.render import print_analysis, print_evaluation


@friendly
def demo(
    db: DbOption = None,
    scale: Annotated[str, typer.Option(help="World scale when one must be built.")] = "small",
    seed: Annotated[int, typer.Option(help="World seed when one must be built.")] = 42,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Rebuild the world even if the database has one.")
    ] = False,
    requests: Annotated[int, typer.Option(min=10, help="Evaluation requests.")] = 2000,
    bench_requests: Annotated[
        int, typer.Option(min=10, help="Bench requests sent through the live gateway.")
    ] = 1000,
    sim_requests: Annotated[
        int, typer.Option(min=10, help="Simulated (closed-loop) requests through the gateway.")
    ] = 3000,
    sim_users: Annotated[int, typer.Option(min=10, help="Users taking part in the simulation.")] = 1000,
    config: ConfigOption = None,
) -> None:
    """The main job end to end: world → features → train both arms → evaluate (embedded DB by default)."""
    from gateway.config import resolve_db_url
    from gateway.demo import run_demo

    check_scale(scale)
    settings = settings_from(config)
    report_path = settings.paths.reports_dir / "demo.json"
    report = run_demo(
        settings,
        resolve_db_url(db, settings),
        scale=scale,
        seed=seed,
        fresh=fresh,
        requests=requests,
        report_path=report_path,
        config_path=config,
        bench_requests=bench_requests,
        sim_requests=sim_requests,
        sim_users=sim_users,
    )
    evaluation = report.evaluation or {}
    print_evaluation(evaluation, title=f"{evaluation.get('requests')} held-out requests ({report.world})")
    if report.serving:
        bench, sim = report.serving["bench"], report.serving["simulation"]
        arms = ", ".join(f"{a}: {v['count']}" for a, v in bench["arms"].items())
        console.print(
            f"gateway bench: {bench['requests']} requests, {bench['errors']} errors, p50 {bench['overall'].get('p50_ms')} ms, "
            f"p99 {bench['overall'].get('p99_ms')} ms, {bench['overall'].get('throughput_rps')} req/s ({arms})"
        )
        console.print(
            f"simulation from {sim['start']}: {sim['served']}/{sim['requests']} requests served, {sim['views']:,} views and "
            f"{sim['likes']:,} likes written back; exposures logged {report.serving['exposures_logged']} "
            f"of {report.serving['requests_sent']} requests sent"
        )
        print_analysis(report.serving["analysis"])
        console.print(
            f"analysis → {report_path.parent / 'analysis.json'}; notebook → {report.serving['notebook']}"
        )
    console.print("step times (s): " + ", ".join(f"{k} {v}" for k, v in report.steps.items()))
    console.print(
        f"database {report.db_url}; features {report.features}; models {', '.join(report.models.values())}"
    )
    console.print(f"report → {report_path} (top-5 lists → {report_path.with_suffix('.csv')})")
