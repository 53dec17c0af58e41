"""The FastAPI application: ``create_app`` builds it, the lifespan loads everything heavy.

Start-up loads the feature store (online lookup, in memory), the catalogue, and every arm's
model (and shadow model), validated; the exposure writer starts and replays any spill left by
earlier runs, and so does the shadow scorer's log. Shutdown stops taking requests (uvicorn),
then finishes the queued shadow work (bounded) and flushes both logs.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from gateway.config import Settings, load_settings
from gateway.exposure import (
    ExposureSink,
    ExposureWriter,
    ShadowExposure,
    SqlExposureSink,
    SqlShadowSink,
)
from gateway.features.artifacts import current_store_dir
from gateway.features.redis_history import RedisHistory
from gateway.features.store import FeatureStore
from gateway.serving.admission import Admission, AdmissionControl, Deadline
from gateway.serving.breaker import Breaker
from gateway.serving.dashboard.cache import ResultsCache
from gateway.serving.dashboard.live import Traffic
from gateway.serving.fallback import PopularityFallback
from gateway.serving.limits import BodySizeLimit
from gateway.serving.moods import configured_encoder
from gateway.serving.prometheus import Metrics
from gateway.serving.protocol import CoalescingHttpToolsProtocol, FrontDoor
from gateway.serving.routes import catalogue, dashboard, events, ops, recommendations
from gateway.serving.shadow import CountRequests, Idle, ShadowScorer
from gateway.serving.state import Catalogue, ReloadError, ServingState, build_snapshot, compile_in_background
from gateway.storage.engine import make_engine

log = logging.getLogger("gateway.serving")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


EXPOSURE_FILES = ("exposures-*.jsonl", "journal-*.jsonl")
SHADOW_FILES = ("shadow-*.jsonl",)


def _claim_orphan_spills(
    spill_dir: Path, own: Path, writer: ExposureWriter, patterns: tuple[str, ...] = EXPOSURE_FILES
) -> int:
    """Requeue spill files and crash journals left by earlier processes (each claimed by an
    atomic rename; inserts are idempotent on request_id, so a replay never duplicates)."""
    count = 0
    pid = os.getpid()
    for path in sorted(p for pattern in patterns for p in spill_dir.glob(pattern)):
        owner = int(path.stem.split("-")[1]) if path.stem.split("-")[1].isdigit() else -1
        if path == own or owner == pid or _pid_alive(owner):
            continue  # a live worker's files are its own business
        claimed = path.with_name(f"{path.name}.claimed-{pid}")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another worker took it
        for line in claimed.read_text().splitlines():
            try:
                exposure = writer.record.from_json(line)
            except (ValueError, TypeError, KeyError):
                continue  # a line torn by a crash: its response was never sent
            writer.submit(exposure)
            count += 1
        writer.flush()
        claimed.unlink()
    return count


def create_app(
    settings: Settings | None = None,
    config_path: str | Path | None = None,
    exposure_sink: ExposureSink | None = None,
    *,
    freeze_gc: bool = False,
) -> FastAPI:
    """The gateway. ``freeze_gc`` (a serving process of its own, ``recsys serve``): once
    everything is loaded, the objects alive are moved out of the garbage collector's reach
    (``gc.freeze``): a full collection would otherwise walk the whole feature store, a pause of
    the whole process long enough to miss the request deadline (README "Overload")."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        cfg = settings or load_settings(config_path)
        app.state.settings = cfg
        # The dashboard's results follow config.yaml as reloads do (read when a refresh starts).
        app.state.dashboard_results = ResultsCache(
            (lambda: load_settings(config_path)) if settings is None else (lambda: cfg)
        )
        store_dir = current_store_dir(cfg.paths.features_dir)
        store = FeatureStore.load(store_dir, keep_log=False)
        app.state.store = store
        app.state.catalogue = Catalogue.load(store_dir, store)
        app.state.mood_encoder = configured_encoder(cfg, store_dir, app.state.catalogue)
        app.state.fallback = PopularityFallback(store, app.state.catalogue.topic_codes)
        admission = Admission(cfg.serving.admission)
        app.state.deadline = Deadline(cfg.serving.deadline_ms, admission)
        _watch_admission(app.state.metrics, admission, cfg)
        app.state.serving = ServingState(build_snapshot(config_path, store, cfg))
        compile_in_background(app.state.serving.snapshot)
        app.state.config_path = config_path
        app.state.history = (
            RedisHistory.connect(
                cfg.serving.redis_url,
                store,
                cfg.serving.redis_prefix,
                local_fallback=cfg.serving.redis_local_fallback,
            )
            if cfg.serving.online_store == "redis"
            else None
        )
        app.state.redis_breaker = Breaker(cfg.serving.redis_breaker_cooldown_s)
        if app.state.history is not None:
            app.state.metrics.watch(
                "recsys_online_store_breaker_open",
                "1 while requests skip Redis after a failure (its circuit breaker is open or probing)",
                lambda: int(app.state.redis_breaker.state != "closed"),
            )
        app.state.engine = make_engine(cfg.database.url)
        sink = exposure_sink or SqlExposureSink(app.state.engine)
        spill = Path(cfg.paths.spill_dir) / f"exposures-{os.getpid()}.jsonl"
        writer = ExposureWriter(sink, spill).start()
        app.state.writer = writer
        recovered = _claim_orphan_spills(Path(cfg.paths.spill_dir), spill, writer)
        if recovered:
            log.info("replayed %d exposures left by an earlier run", recovered)
        app.state.metrics.watch_exposures(writer)
        app.state.shadow = _start_shadow(app, cfg, exposure_sink)
        _install_sighup(app, store)
        app.state.admission = admission  # from here on requests are bounded
        # ... at the protocol (``recsys serve``), before the ASGI app: shed answers are cheaper
        app.state.front_door = FrontDoor(
            admission,
            functools.partial(recommendations.shed_answer, app.state, admission),
            functools.partial(recommendations.express_answer, app.state),
        )
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            app.state.deadline.close()
            app.state.shadow.close()
            writer.close()
            app.state.engine.dispose()
            if app.state.history is not None:
                app.state.history.close()

    app = FastAPI(
        title="Recsys A/B gateway",
        version="1.0",
        description="Assigns each user to an arm, serves that arm's ranking of the feed, logs every exposure.",
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    app.state.dashboard_traffic = Traffic(app.state.metrics.registry)
    app.state.idle = Idle()  # requests in flight: the shadow scorer works in the gaps
    app.add_middleware(BodySizeLimit)
    app.add_middleware(CountRequests, idle=app.state.idle)
    app.add_middleware(AdmissionControl, shed=recommendations.shed)  # outermost: shed before anything

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body"))
            problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        body = recommendations.internal_error(app.state, request.url.path)
        return Response(body, status_code=500, media_type="application/json")

    app.include_router(recommendations.router)
    app.include_router(catalogue.router)
    app.include_router(ops.router)
    app.include_router(events.router)
    app.include_router(dashboard.router)
    app.openapi = lambda: _openapi(app)
    return app


def _watch_admission(metrics: Metrics, admission: Admission, cfg: Settings) -> None:
    metrics.watch("recsys_in_flight", "Recommendation requests being worked on", lambda: admission.in_flight)
    metrics.watch(
        "recsys_admission_waiting",
        "Recommendation requests waiting for a slot (shed if none frees within shed_delay_ms)",
        lambda: admission.waiting,
    )
    metrics.watch(
        "recsys_late_rankers",
        "Rankers still running past their deadline (they hold a slot)",
        lambda: admission.late,
    )
    metrics.watch(
        "recsys_admission_limit",
        "Bound on in-flight recommendation requests (0 = none)",
        lambda: admission.limit,
    )
    metrics.watch(
        "recsys_deadline_seconds", "Request deadline (0 = none)", lambda: cfg.serving.deadline_ms / 1000
    )


def _start_shadow(app: FastAPI, cfg: Settings, sink: ExposureSink | None) -> ShadowScorer:
    """The shadow scorer and its log (also when no arm has a shadow yet: a reload may add one)."""
    spill_dir = Path(cfg.paths.spill_dir)
    spill = spill_dir / f"shadow-{os.getpid()}.jsonl"
    writer = ExposureWriter(
        sink or SqlShadowSink(app.state.engine),
        spill,
        journal=False,
        record=ShadowExposure,
        name="shadow-writer",
    ).start()
    _claim_orphan_spills(spill_dir, spill, writer, SHADOW_FILES)
    return ShadowScorer(
        writer,
        app.state.metrics.registry,
        max_queue=cfg.serving.shadow_queue,
        nice=cfg.serving.shadow_nice,
        idle=app.state.idle,
    ).start()


def _openapi(app: FastAPI) -> dict:
    """The generated schema, made to tell the truth: 422 bodies are ``{"detail": message}``
    (our validation handler), and ``topic`` takes the catalogue's topics only."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["HTTPValidationError"] = {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
    }
    topics = getattr(getattr(app.state, "catalogue", None), "topic_names", None)
    if topics:
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("name") == "topic":
                        parameter["schema"] = {
                            "anyOf": [{"type": "string", "enum": list(topics)}, {"type": "null"}],
                            "title": "Topic",
                        }
    app.openapi_schema = schema
    return schema


def _install_sighup(app: FastAPI, store: FeatureStore) -> None:
    """SIGHUP reloads config and models, like POST /admin/reload (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame) -> None:
        def work() -> None:
            try:
                app.state.serving.reload(app.state.config_path, store)
                app.state.metrics.reloads.labels("ok").inc()
                log.warning("SIGHUP: reloaded %s", app.state.serving.snapshot.versions)
            except ReloadError as exc:
                app.state.metrics.reloads.labels("rejected").inc()
                log.error("SIGHUP: reload rejected, still serving the previous models: %s", exc)

        threading.Thread(target=work, name="sighup-reload", daemon=True).start()

    with contextlib.suppress(ValueError, OSError):  # not on the main thread / platform
        signal.signal(signal.SIGHUP, handler)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` with several workers: config from RECSYS_CONFIG."""
    return create_app(config_path=os.environ.get("RECSYS_CONFIG"), freeze_gc=True)


def run(config_path: Path, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve with uvicorn until stopped: ``workers`` processes, each building the app from
    ``config_path`` (passed on as RECSYS_CONFIG)."""
    import uvicorn

    os.environ["RECSYS_CONFIG"] = str(config_path)
    uvicorn.run(
        "gateway.serving.main:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        http=CoalescingHttpToolsProtocol,
    )
