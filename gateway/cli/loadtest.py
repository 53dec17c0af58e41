"""``recsys bench`` and ``recsys soak``: load tests against a running gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, FeaturesDirOption, UserError, console, friendly, store_from


@friendly
def bench_command(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Requests to send.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Concurrent clients.")] = 4,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Posts per request.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for users and times.")] = 0,
    mood: Annotated[str | None, typer.Option(help="Send this mood with every request.")] = None,
    compare_mood: Annotated[
        str | None,
        typer.Option(
            "--compare-mood",
            help="Run twice in this invocation, without and with this mood, and print the latency difference.",
        ),
    ] = None,
    compare_naive: Annotated[
        bool,
        typer.Option(
            "--compare-naive",
            help="Also start the naive reference service (pandas frame per request) and run the same "
            "requests against it in this invocation; print the speed-up ratios.",
        ),
    ] = False,
    compare_shadow: Annotated[
        bool,
        typer.Option(
            "--compare-shadow",
            help="Start two gateways from --config, with and without its arms' shadow models, and send "
            "both the same requests in alternating blocks; print the latency ratios and the shadow work done "
            "(--url is not used).",
        ),
    ] = False,
    compare_dashboard: Annotated[
        bool,
        typer.Option(
            "--compare-dashboard",
            help="Start a gateway from --config with the dashboard on (results recomputed when older than "
            "5 s) and send the same requests in alternating blocks without and with a viewer polling "
            "/dashboard/data every second; print the latency ratios (--url is not used).",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Workers of each gateway --compare-shadow/--compare-dashboard starts."
        ),
    ] = 2,
    overload: Annotated[
        bool,
        typer.Option(
            "--overload",
            help="Start a gateway from --config with --workers and drive it with wrk at 4, then 64 connections "
            "(--seconds each): p99 of all responses, goodput, statuses, shed answers, against the overload targets "
            "(--url is not used).",
        ),
    ] = False,
    seconds: Annotated[float, typer.Option(min=2, max=600, help="--overload: seconds per wrk phase.")] = 20.0,
    compare_unbounded: Annotated[
        bool,
        typer.Option(
            "--compare-unbounded",
            help="--overload: also run 64 connections against a gateway with admission control and deadline off.",
        ),
    ] = False,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="--overload: another config (repeatable) whose gateway gets the same phases in the same run.",
        ),
    ] = None,
    rounds: Annotated[
        int, typer.Option(min=1, max=20, help="--overload: rounds of phases, each gateway in turn per round.")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
    scale_store: Annotated[
        list[Path] | None,
        typer.Option(
            "--scale-store",
            help="Feature-store version folders (one per catalogue size): time the serving path in "
            "process per arm with --candidates and with all, print the scale table (--url is not used).",
        ),
    ] = None,
    candidates: Annotated[
        int | None,
        typer.Option(min=10, max=100_000, help="With --scale-store: the candidates to compare with all."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="With --scale-store: write the scale plot (PNG) here.")
    ] = None,
) -> None:
    """Load-test a running gateway: p50/p95/p99 latency and throughput, overall and per arm (and per
    group: interleaved requests are their own). With --scale-store: the serving path's cost per
    catalogue size, two stages against the whole catalogue. With --overload: shedding under wrk."""
    if overload:
        _bench_overload(
            store_from(features_dir, config),
            config,
            workers,
            seconds,
            seed,
            compare_unbounded,
            against or [],
            rounds,
            as_json,
        )
        return
    if scale_store:
        _scale(scale_store, config, candidates, requests, seed, plot, as_json)
        return
    if sum(map(bool, (compare_shadow, compare_dashboard, compare_mood, compare_naive))) > 1:
        raise UserError("use one of --compare-shadow, --compare-dashboard, --compare-mood, --compare-naive")
    if compare_dashboard or compare_shadow:
        if compare_dashboard:
            from gateway.loadtest.dashboard_bench import compare_dashboard as run_compare

            what, detail = "the page refreshing", "dashboard"
        else:
            from gateway.loadtest.shadow_bench import compare_shadow as run_compare

            what, detail = "shadow", "shadow_work"
        runs, extra = run_compare(
            store_from(features_dir, config),
            config or Path("config.yaml"),
            requests=requests,
            concurrency=concurrency,
            workers=workers,
            seed=seed,
            limit=limit,
        )
        _print_bench(runs, extra, requests, concurrency, url, as_json)
        if not as_json:
            verdict = "[green]met[/]" if extra["passed"] else "[red]NOT met[/]"
            console.print(
                f"with ÷ without {what} (same requests, same run): {extra['with_over_without']}; "
                f"{detail.replace('_', ' ')}: {extra[detail]}; bar p99 +{extra['bar_p99_increase']:.0%}: {verdict}"
            )
        return
    from gateway.loadtest.bench import bench

    runs, extra = bench(
        store_from(features_dir, config),
        url,
        requests=requests,
        concurrency=concurrency,
        seed=seed,
        limit=limit,
        mood=mood,
        compare_mood=compare_mood,
        compare_naive=compare_naive,
        config=config,
    )
    _print_bench(runs, extra, requests, concurrency, url, as_json)
    if as_json:
        return
    if compare_mood:
        console.print(f"mood overhead (with − without, same run): {extra['mood_overhead_ms']}")
    if compare_naive:
        console.print(f"gateway vs naive reference (× faster, same requests, same run): {extra['speedup']}")


def _bench_overload(
    store, config, workers, seconds, seed, compare_unbounded, against, rounds, as_json
) -> None:
    from gateway.loadtest.overload import bench_overload

    result = bench_overload(
        store,
        config or Path("config.yaml"),
        workers=workers,
        seconds=seconds,
        seed=seed,
        compare_unbounded=compare_unbounded,
        against=against,
        rounds=rounds,
    )
    if as_json:
        print(json.dumps(result))
        return
    low, high = result["load_average"]
    table = Table(
        "phase",
        "requests",
        "p50 ms",
        "p99 ms (all)",
        "throughput rps",
        "goodput rps",
        "shed",
        "statuses",
        title=f"overload: --workers {result['workers']}, wrk {result['seconds']:g} s per phase, "
        f"{result['rounds']} round(s), one run, load average {low:.1f}–{high:.1f}",
    )
    for name, run in result["runs"].items():
        table.add_row(
            name,
            f"{run['requests']:,}",
            f"{run['p50_ms']:.1f}",
            f"{run['p99_ms']:.1f}",
            str(run["throughput_rps"]),
            str(run["goodput_rps"]),
            f"{run['shed']:,}",
            json.dumps(run["statuses"]),
        )
    console.print(table)
    for config, checks in result["targets"].items():
        for name, check in checks.items():
            verdict = "[green]met[/]" if check["met"] else "[red]NOT met[/]"
            console.print(f"{config}: {name}: {check['value']} — {verdict}")


def _scale(
    stores: list[Path], config: Path | None, candidates: int | None, requests: int, seed: int, plot, as_json
) -> None:
    from gateway.config import load_settings
    from gateway.loadtest.scale import plot_scale, scale_bench

    for store in stores:
        if not (store / "manifest.json").exists():
            raise UserError(f"{store} is not a feature-store version folder (no manifest.json)")
    config = config or Path("config.yaml")
    configured = load_settings(config).serving.candidates
    n = candidates or (500 if configured == "all" else int(configured))
    results = scale_bench(stores, config, [n, None], requests, seed)
    if plot is not None:
        plot_scale(results, plot)
    if as_json:
        print(json.dumps(results))
        return
    table = Table(
        "posts",
        "candidates",
        "arm",
        "p50 ms",
        "p99 ms",
        "CPU p50 ms",
        "RSS GB (anon / file)",
        "load s",
        title="serving path by catalogue size",
    )
    for r in results:
        for label, setting in r["settings"].items():
            for arm, st in setting["arms"].items():
                shown = (
                    label
                    if setting["candidates_per_request"] is None
                    else f"{label} ({setting['candidates_per_request']})"
                )
                table.add_row(
                    f"{r['posts']:,}",
                    shown,
                    arm,
                    str(st["p50_ms"]),
                    str(st["p99_ms"]),
                    str(setting["cpu"][arm]["p50_ms"]),
                    f"{r['rss_gb']} ({r['memory_gb']['anon_gb']} / {r['memory_gb']['file_gb']})",
                    str(r["load_seconds"]),
                )
    console.print(table)
    if plot is not None:
        console.print(f"plot → {plot}")


def _print_bench(runs: dict, extra: dict, requests: int, concurrency: int, url: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**runs, **extra} if extra else runs[""]))
        return
    for label, summary in runs.items():
        table = Table(
            "arm",
            "requests",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "throughput rps",
            title=f"{label or url}: {requests} requests, concurrency {concurrency}",
        )
        for name, st in [("all", summary["overall"]), *summary["arms"].items()]:
            if st.get("count"):
                table.add_row(
                    name,
                    str(st["count"]),
                    str(st["p50_ms"]),
                    str(st["p95_ms"]),
                    str(st["p99_ms"]),
                    str(st["throughput_rps"]),
                )
        console.print(table)
        console.print(f"errors: {summary['errors']}, statuses: {summary['statuses']}")


@friendly
def soak_command(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    rate: Annotated[float, typer.Option(min=1, max=5000, help="Requests per second (open loop).")] = 100.0,
    minutes: Annotated[float, typer.Option(min=0.05, max=24 * 60, help="Duration in minutes.")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0, max=600, help="Unmeasured warm-up in seconds.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for users and times.")] = 0,
    p99_ms: Annotated[
        float, typer.Option("--p99-ms", min=0.1, help="Latency objective: p99 of all scheduled requests, ms.")
    ] = 50.0,
    error_budget: Annotated[
        float, typer.Option(min=0, max=1, help="Largest share of errors (statuses other than 200 and 503).")
    ] = 0.001,
    shed_budget: Annotated[
        float, typer.Option(min=0, max=1, help="Largest share of shed answers (fallback lists and 503s).")
    ] = 0.01,
    grace: Annotated[
        float,
        typer.Option(min=0, max=60, help="Seconds after the run an answer may still arrive; later = missed."),
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Hold a fixed request rate for minutes; report the achieved rate, missed requests, p99 against
    its objective, errors, shed answers, memory growth and p99 drift (exit 1 naming each bar that fails)."""
    from rich.progress import Progress

    from gateway.loadtest.soak import Objectives, soak
    from gateway.progress import stderr

    store = store_from(features_dir, config)
    with Progress(console=stderr) as progress:
        task = progress.add_task(f"soak {rate:g} req/s for {minutes:g} min", total=int(rate * minutes * 60))
        result = soak(
            store,
            url,
            rate=rate,
            minutes=minutes,
            warmup=warmup,
            seed=seed,
            grace=grace,
            progress=lambda n: progress.advance(task, n),
        )
    verdict = result.verdict(Objectives(p99_ms=p99_ms, error_budget=error_budget, shed_budget=shed_budget))
    if as_json:
        print(json.dumps(verdict))
    else:
        table = Table("minute", "requests", "p50 ms", "p99 ms", title=f"soak {url}: {rate:g} req/s")
        for m in verdict["minutes"]:
            table.add_row(str(m["minute"]), str(m["requests"]), str(m["p50_ms"]), str(m["p99_ms"]))
        console.print(table)
        p99 = f"{verdict['p99_ms']} ms" if verdict["p99_ms"] is not None else "beyond the run"
        console.print(
            f"requests {verdict['requests']:,}: answered {verdict['answered']:,} ({verdict['achieved_rps']} req/s), "
            f"missed {verdict['missed']:,}, errors {verdict['errors']}, shed {verdict['shed']}, "
            f"late starts {verdict['late_starts']}; p99 {p99}; RSS of {verdict['workers_seen']} worker(s) "
            f"{verdict['rss_mb_start']} → {verdict['rss_mb_end']} MB (worst worker {verdict['rss_growth_pct']:+.2f} %); "
            f"p99 worst/first minute {verdict['p99_ratio']}"
        )
        for failure in verdict["failures"]:
            console.print(f"[red]✗ {failure}[/]")
        console.print("[green]PASSED[/]" if verdict["passed"] else "[red]FAILED[/]")
    if not verdict["passed"]:
        raise typer.Exit(1)
