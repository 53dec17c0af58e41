"""The experiment dashboard: ``GET /dashboard`` (the page), ``GET /dashboard/data`` (its JSON),
``GET /dashboard/static/<file>`` (its script and style, and plotly.js from the installed
``plotly`` package: nothing comes from another site). Behind the viewer token (README
"Dashboard"); every answer carries a strict Content-Security-Policy."""

from __future__ import annotations

import gzip
import hashlib
import time
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.serving.dashboard.auth import ViewerDep
from gateway.serving.dashboard.view import exposure_log_state, page_data
from gateway.serving.deps import StateDep, StoreDep, WriterDep
from gateway.serving.routes.ops import describe_experiment
from gateway.serving.schemas import Message

router = APIRouter(tags=["dashboard"])

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
# plotly.js (4.1.1 in plotly 7.1.0) adds two <style> elements: an empty one that it fills through
# the CSSOM, and MapLibre's fixed rules. Their hashes allow exactly these, nothing inline else
# (the browser test fails on any violation, e.g. after a plotly upgrade changes them).
PLOTLY_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty element
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",  # MapLibre's stylesheet
)
CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {' '.join(PLOTLY_STYLE_HASHES)}; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
DENIED = {
    401: {"model": Message, "description": "No or a wrong viewer token (with a WWW-Authenticate challenge)"},
    404: {"model": Message, "description": "The dashboard is off: no viewer or admin token is set"},
}


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=8)
def static_file(name: str) -> tuple[bytes, bytes, str]:
    """A static file's bytes, gzipped bytes and ETag (read once)."""
    path = plotly_js() if name == "plotly.min.js" else STATIC / name
    body = path.read_bytes()
    return body, gzip.compress(body, 6, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def static_names() -> set[str]:
    return {"plotly.min.js"} | {p.name for p in STATIC.iterdir() if p.suffix in TYPES}


def _no_store(response: Response) -> Response:
    response.headers.update(HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    "/dashboard", response_class=HTMLResponse, responses=DENIED, summary="The experiment dashboard (HTML)"
)
def dashboard(_: ViewerDep) -> Response:
    body, _gz, _etag = static_file("index.html")
    return _no_store(HTMLResponse(body))


@router.get(
    "/dashboard/data",
    responses=DENIED,
    summary="The dashboard's figures: now (this process) and results (cached)",
)
def dashboard_data(
    request: Request, _: ViewerDep, state: StateDep, store: StoreDep, writer: WriterDep
) -> JSONResponse:
    app = request.app.state
    results = app.dashboard_results
    data = page_data(
        experiment=describe_experiment(state.snapshot, store.version).model_dump(),
        settings=app.settings,
        traffic=app.dashboard_traffic.now(),
        exposure_log=exposure_log_state(writer),
        results=results.get().as_json(time.time(), results.refresh_s),
    )
    return _no_store(JSONResponse(data))


@router.get(
    "/dashboard/static/{name}",
    response_class=Response,
    responses={
        200: {"content": {"text/javascript": {}, "text/css": {}}, "description": "The file"},
        304: {"description": "Not modified (ETag)"},
        **DENIED,
        404: {"model": Message, "description": "No such file, or the dashboard is off"},
    },
    summary="The dashboard's script, style, plotly.js",
)
def dashboard_static(name: str, request: Request, _: ViewerDep) -> Response:
    if name not in static_names():
        raise HTTPException(404, f"no static file {name!r}")
    body, zipped, etag = static_file(name)
    headers = {**HEADERS, "ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            zipped,
            media_type=TYPES[Path(name).suffix],
            headers={**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(body, media_type=TYPES[Path(name).suffix], headers={**headers, "Vary": "Accept-Encoding"})
