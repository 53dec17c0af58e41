"""GET /post/recommendations/: the experiment's main endpoint."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response

from gateway.exposure import Exposure
from gateway.serving.deps import CatalogueDep, MetricsDep, StateDep, StoreDep, WriterDep
from gateway.serving.recommend import UnknownUserError, recommend
from gateway.serving.schemas import Message, PostOut, RecommendationResponse

router = APIRouter(tags=["recommendations"])
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_USER_ID = 2**31 - 1


EPOCH = datetime(1970, 1, 1)
MAX_MOOD = 200


# Plain text with at least one letter; no control characters except tab, no U+FFFD.
MOOD_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f\ufffd]*[^\W\d_][^\x00-\x08\x0a-\x1f\x7f\ufffd]*$"
_MOOD = re.compile(MOOD_PATTERN)


def validate_mood(mood: str) -> str:
    """A mood is short human text: not empty, no control characters, at least one letter."""
    text = mood.strip()
    if not text:
        raise HTTPException(422, "mood must not be empty")
    if not _MOOD.match(text):
        raise HTTPException(422, "mood must be plain text with words (no control or undecodable characters)")
    return text


def to_epoch_seconds(when: datetime) -> int:
    """Naive times are taken as UTC (the feed's timestamps are naive)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return int((when - EPOCH).total_seconds())


@router.get(
    "/post/recommendations/",
    response_model=RecommendationResponse,
    responses={
        404: {"model": Message, "description": "Unknown user"},
        422: {"description": "Invalid id, time, limit or topic"},
    },
    summary="Top posts for a user at a time, from the user's experiment arm",
)
def get_recommendations(
    request: Request,
    response: Response,
    state: StateDep,
    store: StoreDep,
    catalogue: CatalogueDep,
    writer: WriterDep,
    metrics: MetricsDep,
    id: Annotated[int, Query(ge=1, le=MAX_USER_ID, description="user_id")],
    time_: Annotated[
        datetime, Query(alias="time", description="Request time, ISO 8601 (e.g. 2021-12-01T14:00:00)")
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="Number of posts")] = 5,
    topic: Annotated[str | None, Query(max_length=32, description="Only posts of this topic")] = None,
    mood: Annotated[
        str | None,
        Query(
            max_length=MAX_MOOD,
            pattern=MOOD_PATTERN,
            description="Free text (≤ 200 chars, at least one letter): re-rank toward posts whose text matches it",
        ),
    ] = None,
    x_request_id: Annotated[str | None, Header(description="Optional caller-chosen request id")] = None,
) -> RecommendationResponse:
    started = time.perf_counter()
    snapshot = state.snapshot  # one reference for the whole request: a reload cannot split it
    if topic is not None and topic not in catalogue.topic_names:
        raise HTTPException(422, f"unknown topic {topic!r}; valid topics: {', '.join(catalogue.topic_names)}")
    mood_text = validate_mood(mood) if mood is not None else None
    mood_vector = request.app.state.mood_encoder.embed(mood_text) if mood_text else None
    seconds = to_epoch_seconds(time_)
    try:
        result = recommend(
            snapshot, store, catalogue, id, seconds, limit, topic, mood_vector, snapshot.mood_weight
        )
    except UnknownUserError as exc:
        metrics.requests.labels("recommendations", "none", "none", "404").inc()
        raise HTTPException(404, str(exc)) from None
    arm, version = result.assignment.arm, result.model_version
    request_id = x_request_id if x_request_id and _REQUEST_ID.match(x_request_id) else uuid.uuid4().hex
    body = RecommendationResponse(
        exp_group=arm,
        recommendations=[
            PostOut(id=int(catalogue.post_ids[i]), text=catalogue.texts[i], topic=catalogue.topics[i])
            for i in result.post_idx
        ],
    )
    latency = time.perf_counter() - started
    writer.submit(
        Exposure(
            request_id=request_id,
            served_at=datetime.now(UTC).replace(tzinfo=None),
            request_time=EPOCH + timedelta(seconds=seconds),
            user_id=id,
            experiment=snapshot.experiment.name,
            arm=arm,
            bucket=float(result.assignment.bucket),
            in_experiment=result.assignment.in_experiment,
            model_version=version,
            post_ids=[int(catalogue.post_ids[i]) for i in result.post_idx],
            latency_ms=round(latency * 1000, 3),
            topic=topic,
            mood=mood_text,
            cold_start=result.cold_start,
        )
    )
    metrics.requests.labels("recommendations", arm, version, "200").inc()
    metrics.latency.labels(arm, version).observe(latency)
    response.headers["X-Request-ID"] = request_id
    response.headers["X-Exp-Group"] = arm
    response.headers["X-Model-Version"] = version
    return body
