"""``recsys demo``: the main job end to end on one database (the embedded default by default),
through the same functions as the commands."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

from gateway.analysis.notebook import execute_notebook
from gateway.analysis.report import analyze_experiment
from gateway.config import Settings
from gateway.exposure import ensure_exposure_table
from gateway.features.build import build_feature_store
from gateway.features.dataset import traffic_window
from gateway.features.store import FeatureStore
from gateway.judging.evaluation import evaluate_arms
from gateway.judging.simulation import simulate_world
from gateway.loadtest.bench import run_bench
from gateway.progress import stderr
from gateway.rankers.compiled import CompileUnavailable
from gateway.rankers.libraries import compile_model_dir
from gateway.serving.main import create_app
from gateway.serving.server import serve_in_thread
from gateway.storage import connect
from gateway.tables import Tables
from gateway.training import train_configured_arm
from gateway.world.generate import synthesize, world_exists
from gateway.world.load import describe_world
from gateway.world.params import SCALES


@dataclass
class DemoReport:
    db_url: str
    world: str
    steps: dict[str, float] = field(default_factory=dict)
    evaluation: dict | None = None
    serving: dict | None = None
    models: dict[str, str] = field(default_factory=dict)
    features: str = ""


def run_demo(
    settings: Settings,
    db_url: str,
    *,
    scale: str,
    seed: int,
    fresh: bool,
    requests: int,
    report_path: Path,
    config_path: Path | None = None,
    bench_requests: int = 1000,
    sim_requests: int = 3000,
    sim_users: int = 1000,
) -> DemoReport:
    engine = connect(db_url, create=True)
    settings = settings.model_copy(deep=True)
    settings.database.url = db_url  # the gateway logs exposures where the world lives
    report = DemoReport(db_url=engine.url.render_as_string(), world="")

    def step(name: str, func):
        stderr.rule(f"[bold]{name}")
        started = time.perf_counter()
        result = func()
        report.steps[name] = round(time.perf_counter() - started, 1)
        return result

    if fresh or not world_exists(engine):
        step("world", lambda: synthesize(engine, SCALES[scale], seed, replace=True))
    report.world = describe_world(engine)
    store_dir = step(
        "features",
        lambda: build_feature_store(
            engine,
            settings.paths.features_dir,
            seed=settings.training.seed,
            holdout_days=settings.training.validation_days + settings.training.evaluation_days,
        ),
    )
    store = FeatureStore.load(store_dir)
    report.features = store.version
    for arm in settings.experiment.arms:
        manifest, model_dir = step(
            f"train {arm.name}", lambda arm=arm: train_configured_arm(settings, arm.name, store)
        )
        report.models[arm.name] = manifest["model_version"]
        step(f"compile {arm.name}", lambda model_dir=model_dir: compile_for_serving(model_dir))
    result = step(
        "evaluate",
        lambda: evaluate_arms(
            settings, store, engine, requests=requests, seed=seed, dump=report_path.with_suffix(".csv")
        ),
    )
    report.evaluation = result.as_json()
    report.serving = step(
        "serve, bench, simulate, analyse",
        lambda: run_gateway_journey(
            settings,
            config_path,
            store,
            engine,
            bench_requests=bench_requests,
            sim_requests=sim_requests,
            sim_users=sim_users,
            seed=seed,
            reports_dir=report_path.parent,
        ),
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.__dict__, indent=1))
    return report


def compile_for_serving(model_dir: Path) -> None:
    """Build the compiled forest the gateway will serve with, as `recsys train` does."""
    try:
        compile_model_dir(model_dir)
    except CompileUnavailable as exc:
        stderr.print(f"warning: {exc}")


def _count_exposures(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {Tables.EXPOSURES}")).scalar_one()


def run_gateway_journey(
    settings: Settings,
    config_path: Path | None,
    store: FeatureStore,
    engine: Engine,
    *,
    bench_requests: int,
    sim_requests: int,
    sim_users: int,
    seed: int,
    reports_dir: Path,
) -> dict:
    """Start the real gateway (uvicorn, in a thread); load it with the bench; run the closed-loop
    simulation; stop it gracefully (the exposure log flushes); analyse the simulated experiment
    and execute the analysts' notebook on it."""
    token = os.environ.setdefault("RECSYS_ADMIN_TOKEN", secrets.token_hex(16))
    ensure_exposure_table(engine)
    before = _count_exposures(engine)  # count only this run's exposures
    with serve_in_thread(create_app(settings, config_path)) as url:
        stderr.print(f"bench: {bench_requests} requests, 4 clients")
        bench = run_bench(
            url,
            store.user_ids,
            traffic_window(store, last_days=7),
            requests=bench_requests,
            concurrency=4,
            seed=1,
        )
        simulation = simulate_world(
            url,
            engine,
            admin_token=token,
            users=sim_users,
            requests=sim_requests,
            days=3,
            seed=seed,
            concurrency=4,
        )
    logged = _count_exposures(engine) - before
    start = simulation.start
    analysis = analyze_experiment(settings, engine, window="1h", since=str(start))
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "analysis.json").write_text(json.dumps(analysis, indent=1, default=str))
    notebook = execute_notebook(
        reports_dir / "analysis.executed.ipynb",
        {
            "db_url": str(engine.url.render_as_string(hide_password=False)),
            "config_path": str(config_path) if config_path else "config.yaml",
            "experiment": settings.experiment.name,
            "window": "1h",
        },
    )
    summary = bench.summary()
    summary["exposures_logged"] = int(logged)
    return {
        "bench": summary,
        "simulation": {
            "requests": simulation.requests,
            "served": simulation.served,
            "failed": simulation.failed,
            "views": simulation.views,
            "likes": simulation.likes,
            "start": str(start),
            "seconds": round(simulation.seconds, 1),
        },
        "analysis": analysis,
        "notebook": str(notebook),
        "requests_sent": summary["requests"] + summary["warmup_requests"] + simulation.served,
        "exposures_logged": int(logged),
    }
