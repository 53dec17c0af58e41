"""``recsys analyze``: the experiment's analysis; ``recsys analyze validate``: does it keep its promises?"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer

from gateway.cli.common import (
    ConfigOption,
    DbOption,
    FeaturesDirOption,
    UserError,
    console,
    engine_from,
    friendly,
    settings_from,
    store_from,
)
from gateway.cli.render import print_ab_validation, print_analysis, print_interleave_validation, print_shadow

app = typer.Typer(
    help="Analyse the experiment: Hitrate@5 per arm, delta method (the primary test), CUPED, sequential, SRM; power.",
    invoke_without_command=True,
)


@app.callback()
@friendly
def analyze(
    ctx: typer.Context,
    db: DbOption = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment name (else config.yaml's).")] = None,
    window: Annotated[
        str, typer.Option(help="A hit is a like within this time after the request (e.g. 1h, 30min).")
    ] = "1h",
    topic: Annotated[str | None, typer.Option(help="Only requests filtered to this topic.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only requests at or after this (ISO) request time.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Only requests before this (ISO) request time (a phase: --since .. --until)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Also split the result by topic, cold_start or mood.")
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Report the shadow models instead: scored and dropped requests, overlap with the served "
            "top 5, latency, errors (and, in a simulated world, expected Hitrate@5 under the truth).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hitrate@5 per arm from the exposure log and the feed's likes, with the tests."""
    if ctx.invoked_subcommand is not None:
        return
    if shadow:
        report = shadow_report(engine_from(db, config), experiment or settings_from(config).experiment.name)
        if as_json:
            print(json.dumps(report, default=str))
        else:
            print_shadow(report)
        return
    from gateway.analysis.report import analyze_experiment

    result = analyze_experiment(
        settings_from(config),
        engine_from(db, config),
        experiment=experiment,
        window=window,
        topic=topic,
        since=since,
        until=until,
        split_by=by,
    )
    if as_json:
        print(json.dumps(result, default=str))
        return
    print_analysis(result)


def shadow_report(engine, experiment: str) -> dict:
    """The shadow report, with each shadow's expected Hitrate@5 under the truth when the database
    holds a simulated world (judging), else without."""
    from gateway.analysis.shadow import analyze_shadow
    from gateway.judging.shadow import judge_shadow
    from gateway.world.load import NoWorldError

    report = analyze_shadow(engine, experiment=experiment)
    try:
        judged = judge_shadow(engine, experiment=experiment)
    except NoWorldError:
        return report
    for entry in report["shadow"]:
        if (key := (entry["arm"], entry["model_version"])) in judged:
            entry["expected_hitrate@5"] = judged[key]
    return report


@app.command("power")
@friendly
def analyze_power(
    mde: Annotated[
        float | None,
        typer.Option(
            help="Minimum detectable effect: absolute difference in Hitrate@5 (else config.yaml's analysis.power_mde)."
        ),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment name (else config.yaml's).")] = None,
    window: Annotated[str, typer.Option(help="A hit is a like within this time after the request.")] = "1h",
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """Users per arm and days at the observed traffic for the configured power (80 %) at alpha 0.05,
    plain and with CUPED, from the running experiment's variance (or the pre-period before it starts)."""
    from gateway.analysis.planning import power_report
    from gateway.assignment import Experiment

    settings = settings_from(config)
    groups = Experiment.from_settings(settings.experiment)
    if experiment:
        groups = replace(groups, name=experiment)
    report = power_report(
        engine_from(db, config),
        groups,
        mde=settings.analysis.power_mde if mde is None else mde,
        window=window,
        cuped_days=settings.analysis.cuped_days,
        alpha=settings.analysis.alpha,
        target_power=settings.analysis.power,
    )
    if as_json:
        print(json.dumps(report))
        return
    console.print(
        f"to detect {report['mde']:+.4f} absolute Hitrate@5 (baseline {report['baseline']:.4f}) with "
        f"{report['power']:.0%} power at alpha {report['alpha']} ({report['comparisons']} comparison(s) against control), "
        f"from the {report['source']}:\n"
        f"  plain: {report['users_per_arm']['plain']:,} users per arm, {report['days']['plain']} days\n"
        f"  CUPED: {report['users_per_arm']['cuped']:,} users per arm, {report['days']['cuped']} days "
        f"(variance reduction {report['variance_reduction']:.1%})\n"
        f"  at {report['users_per_day']:,.0f} eligible users per day"
    )


@app.command("bench")
@friendly
def analyze_bench(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database to fill (PostgreSQL: the target): its exposures and feed_data tables are REPLACED.",
        ),
    ] = None,
    rows: Annotated[
        int, typer.Option(min=1000, max=50_000_000, help="Exposure rows (requests) to build.")
    ] = 2_500_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build a large synthetic exposure log with COPY, then time `recsys analyze --json` on it (child
    process: wall time and peak memory)."""
    import tempfile
    from pathlib import Path

    from gateway.loadtest.analyze_bench import run_analyze_bench
    from gateway.storage import connect

    if not db:
        raise UserError("give --db URL explicitly: the benchmark replaces its exposures and feed_data tables")
    engine = connect(db, create=True)
    with tempfile.TemporaryDirectory() as workdir:
        report = run_analyze_bench(engine, db, rows=rows, seed=seed, workdir=Path(workdir))
    if as_json:
        print(json.dumps(report.as_json()))
        return
    d = report.result["delta"]
    console.print(
        f"{report.rows:,} exposures from {report.users:,} users, {report.feed_rows:,} feed rows "
        f"({engine.dialect.name}), built in {report.build_seconds:.0f} s\n"
        f"recsys analyze: {report.analyze_seconds:.1f} s ({report.analyze_cpu_seconds:.1f} s CPU in the command; "
        f"load average {report.load_average}), peak memory {report.peak_rss_mb:.0f} MB; "
        f"delta {d.get('absolute')} p = {d['p_value']:.3g}, CUPED variance reduction "
        f"{report.result['cuped'].get('variance_reduction')}"
    )


MODES = ("ab", "interleave")


@app.command("validate")
@friendly
def analyze_validate(
    runs: Annotated[
        int,
        typer.Option(
            min=10,
            max=100_000,
            help="Simulated experiments of each kind (1000: the FPR estimate has SE 0.7 pt; 200 runs give 1.5 pt).",
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed (the request pool and every run).")] = 0,
    users: Annotated[
        int, typer.Option(min=100, help="Users in the request pool (1-6 requests each).")
    ] = 4000,
    mode: Annotated[
        str,
        typer.Option(
            help="ab: the A/B analysis with config.yaml's control and test (A/A false positives plain and "
            "CUPED, peeking every simulated hour fixed-horizon vs sequential, coverage of the truth's effect, "
            "CUPED's width, power vs the calculator); interleave: team-draft interleaving of the same rankers "
            "(A/A false positives, sign, users for 80 % power vs A/B).",
        ),
    ] = "ab",
    power_runs: Annotated[
        int,
        typer.Option(min=10, help="ab: runs at the power calculator's 80 % sample size, plain and CUPED."),
    ] = 400,
    planned_users: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="ab: the sequential test's tuning (planned users, both arms); default the pool's users.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Simulated experiments on the world with the real rankers, judged by the truth: does the analysis keep its promises?"""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    settings, store, engine = settings_from(config), store_from(features_dir, config), engine_from(db, config)
    if mode == "interleave":
        from gateway.judging.interleaving import validate_interleaving_on_world

        result = validate_interleaving_on_world(settings, store, engine, runs=runs, seed=seed, users=users)
    else:
        from gateway.judging.validation import validate_on_world

        result = validate_on_world(
            settings,
            store,
            engine,
            runs=runs,
            seed=seed,
            users=users,
            tuning=planned_users,
            power_runs=power_runs,
        )
    if as_json:
        print(json.dumps(result.as_json()))
    elif mode == "interleave":
        print_interleave_validation(result.as_json())
    else:
        print_ab_validation(result.as_json())
