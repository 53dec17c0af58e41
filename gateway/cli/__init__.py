"""``recsys``: one command line for every job. Commands stay thin: the work lives in modules."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.config import ConfigError, load_settings, resolve_db_url
from gateway.storage import StorageError, connect

app = typer.Typer(
    help="A/B experiment gateway for a news-feed recommender.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Build and inspect the synthetic world's source tables.", no_args_is_help=True)
world_app = typer.Typer(help="The world's ground truth (for judging only).", no_args_is_help=True)
features_app = typer.Typer(help="The shared feature store (offline build).", no_args_is_help=True)
train_app = typer.Typer(help="Train an arm's ranker.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(world_app, name="world")
app.add_typer(features_app, name="features")
online_app = typer.Typer(help="The online store's shared history in Redis (optional).", no_args_is_help=True)
app.add_typer(online_app, name="online")
app.add_typer(train_app, name="train")
analyze_app = typer.Typer(
    help="Analyse the experiment: Hitrate@5 per arm, delta-method CI, Welch, SRM.",
    invoke_without_command=True,
)
app.add_typer(analyze_app, name="analyze")

console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (else env RECSYS_DB_URL, else config.yaml).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="config.yaml to use (else env RECSYS_CONFIG).")
]


class UserError(Exception):
    """An error caused by input or state the user can fix; printed without a traceback."""


def _known_errors() -> tuple[type[BaseException], ...]:
    from gateway.world.generate import WorldExistsError
    from gateway.world.load import NoWorldError
    from gateway.world.pairs import PairsFileError
    from gateway.world.truth import UnknownIdError

    errors: list[type[BaseException]] = [
        UserError,
        StorageError,
        ConfigError,
        WorldExistsError,
        NoWorldError,
        PairsFileError,
        UnknownIdError,
    ]
    from gateway.analysis.report import AnalysisError
    from gateway.features.build import FeatureStoreError
    from gateway.judging.simulation import SimulationError
    from gateway.loadtest.bench import BenchError
    from gateway.rankers.model_dir import ModelError

    return (*errors, FeatureStoreError, ModelError, BenchError, AnalysisError, SimulationError)


def friendly(func):
    """Turn known errors into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _known_errors() as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def _engine(db: str | None, config: Path | None = None, *, create: bool = False):
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    return connect(resolve_db_url(db, settings), create=create)


# ---- data ---------------------------------------------------------------------------------
@data_app.command("synth")
@friendly
def data_synth(
    scale: Annotated[
        str, typer.Option(help="tiny (seconds) | small (10k users) | full (163k users, Postgres).")
    ] = "small",
    seed: Annotated[int, typer.Option(help="World seed: same seed and scale give identical tables.")] = 42,
    db: DbOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing world.")] = False,
    config: ConfigOption = None,
) -> None:
    """Generate a synthetic world (user_data, post_text_df, feed_data + world_* truth)."""
    from gateway.world.generate import synthesize
    from gateway.world.params import SCALES

    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    engine = _engine(db, config, create=True)
    report = synthesize(engine, SCALES[scale], seed, replace=replace)
    console.print(
        f"world [bold]{report.scale}[/] seed {report.seed}: {report.users:,} users, {report.posts:,} posts, "
        f"{report.feed_rows:,} feed rows in {report.seconds:.1f} s → {engine.url.render_as_string()}"
    )


@data_app.command("stats")
@friendly
def data_stats(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """Print the world's statistics next to the targets from the source facts."""
    from gateway.world.load import load_truth
    from gateway.world.stats import compute_stats

    engine = _engine(db, config)
    load_truth(engine)  # fails with a clear message when there is no world
    stats = compute_stats(engine)
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


# ---- world --------------------------------------------------------------------------------
@world_app.command("like-prob")
@friendly
def world_like_prob(
    input: Annotated[Path, typer.Option("--input", help="CSV with header user_id,post_id,timestamp.")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write: the same rows plus p_like.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Append the true like probability to (user, post, time) rows."""
    from gateway.world.pairs import like_probabilities, read_pairs

    pairs = read_pairs(input)
    engine = _engine(db, config)
    pairs["p_like"] = like_probabilities(engine, pairs)
    pairs.to_csv(output, index=False, date_format="%Y-%m-%d %H:%M:%S")
    err.print(f"{len(pairs):,} rows → {output}")


# ---- features, training, evaluation -------------------------------------------------------
def _settings(config: Path | None):
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def _store(features_dir: Path | None, config: Path | None):
    from gateway.features.build import current_store_dir
    from gateway.features.store import FeatureStore

    settings = _settings(config)
    return FeatureStore.load(current_store_dir(features_dir or settings.paths.features_dir))


FeaturesDirOption = Annotated[
    Path | None,
    typer.Option("--features-dir", help="Feature store folder (else config.yaml paths.features_dir)."),
]


@features_app.command("build")
@friendly
def features_build(
    db: DbOption = None, features_dir: FeaturesDirOption = None, config: ConfigOption = None
) -> None:
    """Build the versioned feature-store artifacts from the three source tables."""
    from gateway.features.build import build_feature_store

    settings = _settings(config)
    engine = _engine(db, config)
    path = build_feature_store(
        engine, features_dir or settings.paths.features_dir, seed=settings.training.seed
    )
    console.print(f"feature store → {path}")


def _train(
    arm: str,
    features_dir: Path | None,
    out: Path | None,
    seed: int | None,
    max_rows: int | None,
    config: Path | None,
) -> None:
    from gateway.training import train_arm

    settings = _settings(config)
    store = _store(features_dir, config)
    default_dir = next((a.model for a in settings.experiment.arms if a.name == arm), Path("models") / arm)
    manifest = train_arm(
        arm,
        store,
        out or default_dir,
        seed=settings.training.seed if seed is None else seed,
        max_rows=max_rows or settings.training.max_train_rows,
        validation_days=settings.training.validation_days,
        evaluation_days=settings.training.evaluation_days,
    )
    m = manifest["metrics"]
    console.print(
        f"{arm}: {manifest['model_version']} validation AUC {m['validation_auc']:.4f}, "
        f"logged Hitrate@5 {m['validation_hitrate@5_logged']:.4f} in {manifest['training_seconds']:.0f} s → {out or default_dir}"
    )
    try:
        _compile(out or default_dir)
    except UserError as exc:  # the model is trained and usable; serving falls back to the library
        err.print(f"warning: {exc}")


def _compile(model_dir: Path) -> None:
    """Compile a model folder's forest for serving and check it scores like its library."""
    import time

    import numpy as np

    from gateway.rankers.compiled import CompileUnavailable, load_compiled, max_difference
    from gateway.rankers.model_dir import load_ranker

    ranker = load_ranker(model_dir)
    started = time.perf_counter()
    with console.status(f"compiling {model_dir} to native code…"):
        try:
            forest = load_compiled(ranker.model_file, compile_if_missing=True)
        except CompileUnavailable as exc:
            raise UserError(
                f"{model_dir}: cannot be compiled ({exc}); it will be served by {ranker.library}"
            ) from None
    rng = np.random.default_rng(0)
    rows = {name: rng.normal(size=2000).astype(np.float32) for name in ranker.features}
    diff = max_difference(forest.predict(ranker.compiled_input(rows)), ranker.native_predict(rows))
    console.print(
        f"compiled {forest.path} in {time.perf_counter() - started:.1f} s; "
        f"max |score − {ranker.library}| on 2,000 random rows {diff:.2g}"
    )


@app.command("compile")
@friendly
def compile_command(
    model_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Model folders (else every arm in config.yaml)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Compile arms to native code for serving (cached beside the model; `train` does it too)."""
    for model_dir in model_dirs or [a.model for a in _settings(config).experiment.arms]:
        _compile(model_dir)


SeedOption = Annotated[int | None, typer.Option(help="Training seed (else config.yaml training.seed).")]
MaxRowsOption = Annotated[int | None, typer.Option("--max-rows", help="Cap on sampled training views.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Model folder (else the arm's path in config.yaml).")
]


def _train_command(arm: str, doc: str):
    def command(
        features_dir: FeaturesDirOption = None,
        out: OutOption = None,
        seed: SeedOption = None,
        max_rows: MaxRowsOption = None,
        config: ConfigOption = None,
    ) -> None:
        _train(arm, features_dir, out, seed, max_rows, config)

    command.__doc__ = doc
    command.__name__ = f"train_{arm}"
    train_app.command(arm)(friendly(command))


_train_command("control", "Train the control arm: LightGBM on the shared features.")
_train_command(
    "test", "Train the test arm: CatBoost on all shared features (text embedding, clusters, profile)."
)


@online_app.command("push")
@friendly
def online_push(
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis URL (else config.yaml serving.redis_url).")
    ] = None,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Materialise the feature store's event history into Redis, one key per user, for
    gateways with `serving.online_store: redis` (replicas then share online events)."""
    import numpy as np
    from rich.progress import Progress

    from gateway.features.redis_history import OnlineStoreError, RedisHistory
    from gateway.progress import stderr

    settings = _settings(config)
    store = _store(features_dir, config)
    url = redis_url or settings.serving.redis_url
    try:
        history = RedisHistory.connect(url, store, settings.serving.redis_prefix, require_pushed=False)
    except OnlineStoreError as exc:
        raise UserError(str(exc)) from None
    users = len(np.unique(store.events["user"]))
    with Progress(console=stderr) as progress:
        task = progress.add_task(f"pushing {store.version} to {url}", total=users)
        result = history.push(lambda n: progress.advance(task, n))
    console.print(
        f"{result['users']:,} users, {result['events']:,} events, {result['bytes'] / 1e6:.1f} MB "
        f"in {result['seconds']} s → {url} ({history.namespace})"
    )


@app.command("evaluate")
@friendly
def evaluate_command(
    db: DbOption = None,
    requests: Annotated[
        int, typer.Option(min=10, max=100_000, help="Requests sampled from the held-out period.")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    dump: Annotated[
        Path | None,
        typer.Option(
            "--dump", help="CSV of every top-5 list: request_id,user_id,timestamp,ranker,rank,post_id."
        ),
    ] = None,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Expected Hitrate@5 under the truth: control, test, random, popularity, oracle."""
    from gateway.judging.evaluation import evaluate
    from gateway.judging.oracle import OracleRanker
    from gateway.rankers.model_dir import load_ranker
    from gateway.world.load import load_truth

    settings = _settings(config)
    store = _store(features_dir, config)
    models = {
        arm.name: load_ranker(arm.model, store.manifest["feature_set_version"])
        for arm in settings.experiment.arms
    }
    truth = load_truth(_engine(db, config))
    result = evaluate(
        store,
        models,
        OracleRanker(truth, store),
        requests=requests,
        seed=seed,
        dump=dump,
        evaluation_days=settings.training.evaluation_days,
        validation_days=settings.training.validation_days,
    )
    if as_json:
        print(json.dumps(result.as_json()))
        return
    table = Table(
        "ranker",
        "Hitrate@5 (expected)",
        "95 % CI",
        "ROC-AUC",
        title=f"{result.requests} requests, {result.window[0]} .. {result.window[1]}",
    )
    for name, value in result.hitrate.items():
        lo, hi = result.ci95[name]
        auc = result.auc.get(name)
        table.add_row(name, f"{value:.4f}", f"[{lo:.4f}, {hi:.4f}]", "" if auc is None else f"{auc:.4f}")
    console.print(table)
    console.print(f"truth ROC-AUC on the same held-out views: {result.auc['truth']:.4f}")
    console.print(
        "topic-filtered requests (the topic of the post being viewed): "
        + ", ".join(f"{name} {value:.4f}" for name, value in result.topic_hitrate.items())
    )


@app.command("serve")
@friendly
def serve(
    config: Annotated[
        Path, typer.Option("--config", help="config.yaml with the experiment and model paths.")
    ] = Path("config.yaml"),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (each loads the store and models).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the HTTP gateway (FastAPI + uvicorn). SIGHUP or POST /admin/reload swaps models."""
    import os

    import uvicorn

    from gateway.features.build import current_store_dir
    from gateway.rankers.model_dir import read_manifest

    settings = _settings(config)
    store_dir = current_store_dir(settings.paths.features_dir)  # fail early, with a message, if missing
    for arm in settings.experiment.arms:
        read_manifest(arm.model)
    if settings.serving.online_store == "redis":
        from gateway.features.redis_history import OnlineStoreError, open_client

        version = json.loads((store_dir / "manifest.json").read_text())["version"]
        try:
            open_client(settings.serving.redis_url, settings.serving.redis_prefix, version).close()
        except OnlineStoreError as exc:
            raise UserError(str(exc)) from None
    if workers > 1 and settings.serving.online_store == "memory":
        err.print(
            "warning: with several workers and serving.online_store: memory, POST /events reaches one "
            "worker only; use online_store: redis to share online events (README: Scaling)"
        )
    os.environ["RECSYS_CONFIG"] = str(config)
    err.print(f"serving {settings.experiment.name} on http://{host}:{port} ({workers} worker(s))")
    uvicorn.run(
        "gateway.serving.main:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )


def _traffic_window(store) -> tuple[int, int]:
    """Request times for load tests: from 06:00 of the feed's first day to its end."""
    day0, days = store.manifest["day0"], store.manifest["days"]
    return day0 + 6 * 3600, day0 + days * 86400


@app.command("bench")
@friendly
def bench(
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
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Load-test a running gateway: p50/p95/p99 latency and throughput, overall and per arm."""
    from gateway.loadtest.bench import naive_service, run_bench, speedup

    if compare_mood and compare_naive:
        raise UserError("use --compare-mood or --compare-naive, not both")
    store = _store(features_dir, config)

    def once(target: str, with_mood: str | None) -> dict:
        result = run_bench(
            target,
            store.user_ids,
            _traffic_window(store),
            requests=requests,
            concurrency=concurrency,
            seed=seed,
            limit=limit,
            mood=with_mood,
        )
        summary = result.summary()
        if result.requests and result.errors == result.requests:
            raise UserError(
                f"every request failed against {target}: is it running? statuses {summary['statuses']}"
            )
        return summary

    if compare_mood:
        runs = {"without mood": once(url, None), "with mood": once(url, compare_mood)}
        plain, moody = runs["without mood"]["overall"], runs["with mood"]["overall"]
        extra = {
            "mood_overhead_ms": {
                k: round(moody[k] - plain[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
            }
        }
    elif compare_naive:
        runs = {"gateway": once(url, mood)}
        with naive_service(config) as naive_url:
            runs["naive"] = once(naive_url, mood)
        extra = {"speedup": speedup(runs["gateway"]["overall"], runs["naive"]["overall"])}
    else:
        runs, extra = {"": once(url, mood)}, {}
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
    if compare_mood:
        console.print(f"mood overhead (with − without, same run): {extra['mood_overhead_ms']}")
    if compare_naive:
        console.print(f"gateway vs naive reference (× faster, same requests, same run): {extra['speedup']}")


@app.command("soak")
@friendly
def soak_command(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    rate: Annotated[float, typer.Option(min=1, max=5000, help="Requests per second (open loop).")] = 100.0,
    minutes: Annotated[float, typer.Option(min=0.1, max=24 * 60, help="Duration in minutes.")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0, max=600, help="Unmeasured warm-up in seconds.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for users and times.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Hold a fixed request rate for minutes; report errors, memory growth and p99 drift (exit 1 if a bar fails)."""
    import httpx
    from rich.progress import Progress

    from gateway.loadtest.soak import RSS_METRIC, read_rss_mb, run_soak
    from gateway.progress import stderr

    store = _store(features_dir, config)
    with httpx.Client() as client:
        if read_rss_mb(client, url) is None:
            raise UserError(f"no {RSS_METRIC} at {url}/metrics: is the gateway (this version) running?")
    seconds = minutes * 60
    with Progress(console=stderr) as progress:
        task = progress.add_task(f"soak {rate:g} req/s for {minutes:g} min", total=int(rate * seconds))
        result = run_soak(
            url,
            store.user_ids,
            _traffic_window(store),
            rate=rate,
            seconds=seconds,
            seed=seed,
            warmup=warmup,
            progress=lambda n: progress.advance(task, n),
        )
    verdict = result.verdict()
    if as_json:
        print(json.dumps(verdict))
    else:
        table = Table("minute", "requests", "p50 ms", "p99 ms", title=f"soak {url}: {rate:g} req/s")
        for m in verdict["minutes"]:
            table.add_row(str(m["minute"]), str(m["requests"]), str(m["p50_ms"]), str(m["p99_ms"]))
        console.print(table)
        console.print(
            f"requests {verdict['requests']:,} ({verdict['achieved_rps']} req/s), errors {verdict['errors']}, "
            f"late starts {verdict['late_starts']}; RSS of {verdict['workers_seen']} worker(s) "
            f"{verdict['rss_mb_start']} → {verdict['rss_mb_end']} MB (worst worker {verdict['rss_growth_pct']:+.2f} %); "
            f"p99 worst/first minute {verdict['p99_ratio']}"
        )
        console.print("[green]PASSED[/]" if verdict["passed"] else "[red]FAILED[/]")
    if not verdict["passed"]:
        raise typer.Exit(1)


@app.command("simulate")
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

    from gateway.judging.simulation import default_start, simulate
    from gateway.world.load import load_truth

    token = os.environ.get("RECSYS_ADMIN_TOKEN")
    if not token:
        raise UserError(
            "set RECSYS_ADMIN_TOKEN to the gateway's admin token: the simulator sends events to POST /events"
        )
    engine = _engine(db, config)
    truth = load_truth(engine)
    try:
        first_day = pd.Timestamp(start) if start else default_start(engine)
    except ValueError as exc:
        raise UserError(f"bad --start {start!r}: use an ISO date such as 2021-12-30") from exc
    report = simulate(
        url,
        engine,
        truth,
        admin_token=token,
        users=users,
        requests=requests,
        start=first_day,
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


def print_analysis(result: dict) -> None:
    srm = result["srm"]
    if srm["flag"]:
        console.print(
            f"[bold red]WARNING: sample-ratio mismatch (p = {srm['p_value']:.2e}): users per arm {srm['users']} vs "
            f"expected { ({k: round(v) for k, v in srm['expected'].items()}) }. Do not trust the result below.[/]"
        )
    table = Table(
        "arm",
        "users",
        "requests",
        "hits",
        "Hitrate@5",
        "model versions",
        title=f"experiment {result['experiment']}, window {result['window']}",
    )
    for arm, a in result["arms"].items():
        table.add_row(
            arm,
            str(a["users"]),
            str(a["requests"]),
            str(a["hits"]),
            f"{a['hitrate']:.4f}",
            ", ".join(a["model_versions"]),
        )
    console.print(table)
    d = result["delta"]
    if "absolute" in d:
        console.print(
            f"test − control: {d['absolute']:+.4f} [{d['ci95_absolute'][0]:+.4f}, {d['ci95_absolute'][1]:+.4f}] absolute, "
            f"{d['relative']:+.2%} [{d['ci95_relative'][0]:+.2%}, {d['ci95_relative'][1]:+.2%}] relative; "
            f"p = {d['p_value']:.4f} (delta method, per-user sums); Welch on per-user rates p = {result['welch']['p_value']:.4f}"
        )
    else:
        console.print(d.get("message", ""))
    console.print(
        f"SRM: p = {srm['p_value']:.4f}; excluded (not in experiment): {result['excluded_not_in_experiment']} requests"
    )
    for key, group in result.get("by", {}).get("groups", {}).items():
        summary = ", ".join(
            f"{arm} {a['requests']} requests Hitrate@5 {a['hitrate']:.4f}" for arm, a in group["arms"].items()
        )
        d = group["delta"]
        diff = f"; test − control {d['absolute']:+.4f} (p = {d['p_value']:.3f})" if "absolute" in d else ""
        console.print(f"  [{result['by']['field']} = {key}] {summary}{diff}")
    for split in result.get("by_model_version", []):
        console.print(
            f"  {split['arm']} {split['model_version']}: {split['requests']} requests, Hitrate@5 {split['hitrate']:.4f} ({split['first_request']} .. {split['last_request']})"
        )


@analyze_app.callback()
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
    by: Annotated[
        str | None, typer.Option("--by", help="Also split the result by topic, cold_start or mood.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hitrate@5 per arm from the exposure log and the feed's likes, with the tests."""
    if ctx.invoked_subcommand is not None:
        return
    from gateway.analysis.report import analyze as run_analysis

    settings = _settings(config)
    weights = {a.name: a.weight for a in settings.experiment.arms}
    names = list(weights)
    result = run_analysis(
        _engine(db, config),
        experiment=experiment or settings.experiment.name,
        window=window,
        weights=weights,
        control=names[0],
        treatment=names[1],
        topic=topic,
        since=since,
        split_by=by,
    )
    if as_json:
        print(json.dumps(result, default=str))
        return
    print_analysis(result)


@analyze_app.command("validate")
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
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    users: Annotated[
        int, typer.Option(min=100, help="Users in the request pool (1-6 requests each).")
    ] = 4000,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Repeated A/A (false-positive rate) and A/B with a known effect (interval coverage), in process."""
    from gateway.judging.oracle import OracleRanker
    from gateway.judging.validation import validate
    from gateway.training import time_split
    from gateway.world.load import load_truth

    settings = _settings(config)
    store = _store(features_dir, config)
    oracle = OracleRanker(load_truth(_engine(db, config)), store)
    window = time_split(
        store, settings.training.validation_days, settings.training.evaluation_days
    ).evaluation
    result = validate(store, oracle, window, runs=runs, seed=seed, users=users)
    if as_json:
        print(json.dumps(result.as_json()))
        return
    console.print(
        f"{result.runs} runs each, {result.users:,} users, {result.requests:,} requests per run\n"
        f"A/A (popularity vs popularity): false-positive rate at alpha 0.05 = {result.aa_false_positive_rate:.3f} "
        f"(95 % CI {result.aa_ci95[0]:.3f}-{result.aa_ci95[1]:.3f}; must be 0.03-0.07)\n"
        f"A/B (popularity vs oracle, true effect {result.ab_true_effect:+.4f}): 95 % interval coverage = "
        f"{result.ab_coverage:.3f} (95 % CI {result.ab_coverage_ci95[0]:.3f}-{result.ab_coverage_ci95[1]:.3f}); "
        f"power {result.ab_power:.3f}"
    )


@app.command("demo")
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
    from gateway.demo import run_pipeline
    from gateway.world.params import SCALES

    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    settings = _settings(config)
    report_path = settings.paths.reports_dir / "demo.json"
    report = run_pipeline(
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
    table = Table(
        "ranker",
        "Hitrate@5",
        "95 % CI",
        "ROC-AUC",
        title=f"{evaluation.get('requests')} held-out requests ({report.world})",
    )
    for name, value in evaluation.get("hitrate@5", {}).items():
        lo, hi = evaluation["ci95"][name]
        auc = evaluation["auc"].get(name)
        table.add_row(name, f"{value:.4f}", f"[{lo:.4f}, {hi:.4f}]", "" if auc is None else f"{auc:.4f}")
    console.print(table)
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
