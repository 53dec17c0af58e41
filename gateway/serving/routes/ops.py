"""Operations: /health, /ready, /metrics, /experiment and POST /admin/reload."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.serving.deps import AdminDep, MetricsDep, StateDep, StoreDep, WriterDep
from gateway.serving.schemas import ArmOut, ExperimentOut, Message, ReadyOut, ReloadOut
from gateway.serving.state import ReloadError, Snapshot

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut}},
    summary="Models and features loaded",
)
def ready(request: Request, state: StateDep, store: StoreDep, writer: WriterDep) -> JSONResponse:
    stats = writer.stats
    body = ReadyOut(
        ready=True,
        models=dict(state.snapshot.versions),
        feature_store_version=store.version,
        exposure_log={
            "degraded": stats.unhealthy,
            "queued": writer.queue.qsize(),
            "written": stats.written,
            "spilled": stats.spilled,
            "replayed": stats.replayed,
            "last_error": stats.last_error,
            "dropped": stats.dropped,
            "journal_errors": stats.journal_errors,
            "disk_error": stats.disk_error,
        },
        online_store=(
            {"backend": "redis", **request.app.state.redis_breaker.status()}
            if request.app.state.history is not None
            else None
        ),
    )
    return JSONResponse(body.model_dump())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/experiment", response_model=ExperimentOut, summary="The experiment in force")
def experiment(request: Request, state: StateDep, store: StoreDep) -> ExperimentOut:
    return describe_experiment(state.snapshot, store.version)


def describe_experiment(snap: Snapshot, feature_store_version: str) -> ExperimentOut:
    """The experiment of a snapshot: arms, shares, models (also shown by the dashboard)."""
    e = snap.experiment
    paths = {name: str(r.manifest.get("_path", "")) for name, r in snap.rankers.items()}
    shares = e.normalized_weights  # the arms', then the interleaved group's
    shadows = snap.shadows
    return ExperimentOut(
        name=e.name,
        enabled=e.enabled,
        scheme=e.scheme,
        salt=e.salt,
        coverage=e.coverage,
        arms=[
            ArmOut(
                name=a,
                weight=w,
                model_path=paths.get(a, ""),
                model_version=snap.versions[a],
                inference=snap.rankers[a].inference,
                shadow_model_path=str(shadows[a].manifest.get("_path", "")) if a in shadows else None,
                shadow_model_version=shadows[a].version if a in shadows else None,
            )
            for a, w in zip(e.arms, shares, strict=False)
        ],
        interleave_weight=shares[-1] if e.interleaving else 0.0,
        overrides=len(e.overrides),
        loaded_at=snap.loaded_at,
        feature_store_version=feature_store_version,
    )


@router.post(
    "/admin/reload",
    response_model=ReloadOut,
    responses={401: {"model": Message}, 403: {"model": Message}, 422: {"model": Message}},
    summary="Reload config.yaml and models; swap atomically only if all are valid",
)
def reload(request: Request, _: AdminDep, state: StateDep, store: StoreDep, metrics: MetricsDep) -> ReloadOut:
    try:
        snapshot = state.reload(request.app.state.config_path, store)
    except ReloadError as exc:
        metrics.reloads.labels("rejected").inc()
        raise HTTPException(422, f"reload rejected, still serving the previous models: {exc}") from None
    metrics.reloads.labels("ok").inc()
    return ReloadOut(reloaded=True, models=dict(snapshot.versions))
