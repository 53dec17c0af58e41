"""``recsys demo``: the main job end to end on one database (the embedded default by default)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import Settings
from gateway.progress import stderr
from gateway.storage import connect, read_frame


@dataclass
class PipelineReport:
    db_url: str
    world: str
    steps: dict[str, float] = field(default_factory=dict)
    evaluation: dict | None = None
    serving: dict | None = None
    models: dict[str, str] = field(default_factory=dict)
    features: str = ""


def run_pipeline(
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
) -> PipelineReport:
    from gateway.features.build import build_feature_store
    from gateway.features.store import FeatureStore
    from gateway.judging.evaluation import evaluate
    from gateway.judging.oracle import OracleRanker
    from gateway.rankers.model_dir import load_ranker
    from gateway.training import train_arm
    from gateway.world.generate import synthesize, world_exists
    from gateway.world.load import load_truth
    from gateway.world.params import SCALES

    engine = connect(db_url, create=True)
    settings = settings.model_copy(deep=True)
    settings.database.url = db_url  # the gateway logs exposures where the world lives
    report = PipelineReport(db_url=engine.url.render_as_string(), world="")

    def step(name: str, func):
        stderr.rule(f"[bold]{name}")
        started = time.perf_counter()
        result = func()
        report.steps[name] = round(time.perf_counter() - started, 1)
        return result

    if fresh or not world_exists(engine):
        step("world", lambda: synthesize(engine, SCALES[scale], seed, replace=True))
    params = read_frame(engine, "SELECT key, value FROM world_params")
    values = dict(zip(params["key"], params["value"], strict=True))
    world_scale = json.loads(values["scale"]) if "scale" in values else "?"
    report.world = f"scale {world_scale}, seed {json.loads(values['seed'])}"
    store_dir = step(
        "features",
        lambda: build_feature_store(engine, settings.paths.features_dir, seed=settings.training.seed),
    )
    store = FeatureStore.load(store_dir)
    report.features = store.version
    for arm in settings.experiment.arms:
        manifest = step(
            f"train {arm.name}",
            lambda arm=arm: train_arm(
                arm.name,
                store,
                arm.model,
                seed=settings.training.seed,
                max_rows=settings.training.max_train_rows,
                validation_days=settings.training.validation_days,
                evaluation_days=settings.training.evaluation_days,
            ),
        )
        report.models[arm.name] = manifest["model_version"]
        step(
            f"compile {arm.name}", lambda arm=arm, kind=manifest["kind"]: compile_for_serving(arm.model, kind)
        )
    models = {
        arm.name: load_ranker(arm.model, store.manifest["feature_set_version"])
        for arm in settings.experiment.arms
    }
    oracle = OracleRanker(load_truth(engine), store)
    result = step(
        "evaluate",
        lambda: evaluate(
            store,
            models,
            oracle,
            requests=requests,
            seed=seed,
            dump=report_path.with_suffix(".csv"),
            evaluation_days=settings.training.evaluation_days,
            validation_days=settings.training.validation_days,
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


def compile_for_serving(model_dir: Path, kind: str) -> None:
    """Build the compiled forest the gateway will serve with (as `recsys train` does)."""
    from gateway.rankers.compiled import CompileUnavailable, load_compiled
    from gateway.rankers.model_dir import MODEL_FILES

    try:
        load_compiled(Path(model_dir) / MODEL_FILES[kind], compile_if_missing=True)
    except CompileUnavailable as exc:
        stderr.print(f"warning: {model_dir} will be served by its library ({exc})")


def run_gateway_journey(
    settings: Settings,
    config_path: Path | None,
    store,
    engine,
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
    import os
    import secrets
    import socket
    import threading

    import uvicorn
    from sqlalchemy import text

    from gateway.analysis.notebook import execute_notebook
    from gateway.analysis.report import analyze
    from gateway.exposure import exposure_metadata, exposures
    from gateway.judging.simulation import default_start, simulate
    from gateway.loadtest.bench import run_bench
    from gateway.serving.main import create_app
    from gateway.world.load import load_truth

    token = os.environ.setdefault("RECSYS_ADMIN_TOKEN", secrets.token_hex(16))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    exposure_metadata.create_all(engine, tables=[exposures])
    with engine.connect() as conn:  # count only this run's exposures
        before = conn.execute(text("SELECT COUNT(*) FROM exposures")).scalar_one()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, config_path), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
    if not server.started:
        raise RuntimeError("the gateway did not start")
    try:
        day0, days = store.manifest["day0"], store.manifest["days"]
        stderr.print(f"bench: {bench_requests} requests, 4 clients")
        bench = run_bench(
            url,
            store.user_ids,
            (day0 + (days - 7) * 86400, day0 + days * 86400),
            requests=bench_requests,
            concurrency=4,
            seed=1,
        )
        start = default_start(engine)
        simulation = simulate(
            url,
            engine,
            load_truth(engine),
            admin_token=token,
            users=sim_users,
            requests=sim_requests,
            start=start,
            days=3,
            seed=seed,
            concurrency=4,
        )
    finally:
        server.should_exit = True
        thread.join(60)
    with engine.connect() as conn:
        logged = conn.execute(text("SELECT COUNT(*) FROM exposures")).scalar_one() - before
    weights = {a.name: a.weight for a in settings.experiment.arms}
    names = list(weights)
    analysis = analyze(
        engine,
        experiment=settings.experiment.name,
        window="1h",
        weights=weights,
        control=names[0],
        treatment=names[1],
        since=str(start),
    )
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
