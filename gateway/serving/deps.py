"""Dependencies as ``Annotated`` aliases: one short parameter per need."""

from __future__ import annotations

import hmac
import os
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from gateway.exposure import ExposureWriter
from gateway.features.store import FeatureStore
from gateway.serving.prometheus import Metrics
from gateway.serving.state import Catalogue, ServingState

ADMIN_TOKEN_ENV = "RECSYS_ADMIN_TOKEN"


async def get_state(request: Request) -> ServingState:
    return request.app.state.serving


async def get_store(request: Request) -> FeatureStore:
    return request.app.state.store


async def get_catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


async def get_writer(request: Request) -> ExposureWriter:
    return request.app.state.writer


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def require_admin(
    authorization: Annotated[str | None, Header(description="Bearer <RECSYS_ADMIN_TOKEN>")] = None,
) -> None:
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        raise HTTPException(403, f"admin endpoints are disabled: set {ADMIN_TOKEN_ENV} on the server")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


StateDep = Annotated[ServingState, Depends(get_state)]
StoreDep = Annotated[FeatureStore, Depends(get_store)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
WriterDep = Annotated[ExposureWriter, Depends(get_writer)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdminDep = Annotated[None, Depends(require_admin)]
