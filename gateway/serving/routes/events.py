"""POST /events: feed new views and likes to the online store (the stream's entry point).

The simulator (and, in production, a stream consumer) sends what users did; later requests
see those events point in time. The database write of the same events is the sender's job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from gateway.serving.deps import AdminDep, StoreDep
from gateway.serving.routes.recommendations import to_epoch_seconds
from gateway.serving.schemas import Message

router = APIRouter(tags=["events"])
MAX_ID = 2**31 - 1


class EventIn(BaseModel):
    user_id: Annotated[int, Field(ge=1, le=MAX_ID)]
    post_id: Annotated[int, Field(ge=1, le=MAX_ID)]
    action: Literal["view", "like"]
    timestamp: datetime


class EventsIn(BaseModel):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=10_000)]


class EventsOut(BaseModel):
    accepted: int
    online_events: int


@router.post(
    "/events",
    response_model=EventsOut,
    responses={
        400: {"model": Message, "description": "Body is not JSON"},
        401: {"model": Message},
        403: {"model": Message},
        404: {"model": Message},
        413: {"model": Message, "description": "Body larger than 2 MiB"},
        503: {"model": Message, "description": "The shared online store (Redis) is unavailable"},
    },
    summary="Append views/likes to the online store (admin token)",
)
def post_events(request: Request, body: EventsIn, _: AdminDep, store: StoreDep) -> EventsOut:
    users = store.user_index([e.user_id for e in body.events])
    posts = store.post_index([e.post_id for e in body.events])
    if (users < 0).any() or (posts < 0).any():
        bad_users = sorted({e.user_id for e, u in zip(body.events, users, strict=True) if u < 0})[:5]
        bad_posts = sorted({e.post_id for e, p in zip(body.events, posts, strict=True) if p < 0})[:5]
        raise HTTPException(404, f"unknown user ids {bad_users} / post ids {bad_posts}: nothing was accepted")
    seconds = np.array([to_epoch_seconds(e.timestamp) for e in body.events], dtype=np.int64)
    like = np.array([e.action == "like" for e in body.events])
    history = request.app.state.history
    if history is not None:  # shared with every replica; 503 if it cannot take them
        try:
            history.append(users, posts, seconds, like)
        except RedisError as exc:
            raise HTTPException(503, f"online store unavailable, nothing was accepted: {exc}") from None
    if history is None or history.local_fallback:  # the local copy stays complete
        total = store.append_events(users, posts, seconds, like)
    else:
        total = len(body.events)
    return EventsOut(accepted=len(body.events), online_events=total)
