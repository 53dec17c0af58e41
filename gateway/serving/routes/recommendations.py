"""GET /post/recommendations/: the experiment's main endpoint."""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs, parse_qsl

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from gateway.assignment import assign
from gateway.exposure import Exposure, ExposureWriter
from gateway.features.mood_encoder import MoodEncoder, MoodMatch
from gateway.features.mood_lexicon import Lexicon
from gateway.features.mood_text import MOOD_PATTERN, MoodTextError
from gateway.features.redis_history import RedisHistory
from gateway.features.store import FeatureStore
from gateway.serving.admission import ARRIVED, Admission
from gateway.serving.breaker import Breaker
from gateway.serving.fallback import FALLBACK_VERSION
from gateway.serving.prometheus import Metrics
from gateway.serving.recommend import Recommendation, UnknownUserError, recommend
from gateway.serving.schemas import Message, RecommendationResponse
from gateway.serving.shadow import ShadowJob

router = APIRouter(tags=["recommendations"])
log = logging.getLogger("gateway.serving")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_USER_ID = 2**31 - 1


EPOCH = datetime(1970, 1, 1)
MAX_MOOD = 200
MAX_LIMIT = 100
MAX_TOPIC = 32  # characters
SERVED_BY = "X-Recsys-Served-By"  # response header: model, fallback:shed or fallback:deadline


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex``, without its system call per request
    (Python's generator, seeded per process from the OS; request ids need to be unique, not
    unpredictable)."""
    return f"{random.getrandbits(128):032x}"


def read_mood(encoder: MoodEncoder, mood: str, lexicon: Lexicon) -> MoodMatch:
    """The mood's similarity with every post and what was understood; 422 (plain message) for
    a mood without any letter or emoji, or with a control character."""
    try:
        return encoder.encode(mood, lexicon)
    except MoodTextError as exc:
        raise HTTPException(422, str(exc)) from None


def user_view(
    history: RedisHistory, store: FeatureStore, user_id: int, metrics: Metrics, breaker: Breaker
) -> FeatureStore:
    """The store with this user's history read from Redis. On a Redis failure (counted in the
    metrics), and while the breaker stays open after one: the local history (offline log +
    events this process received) when the process keeps one (``serving.redis_local_fallback``),
    else 503."""
    user_idx = store.user_position(user_id)
    if user_idx < 0:
        return store  # cold start needs no history
    if breaker.allow():
        try:
            view = history.view(user_idx)
        except RedisError as exc:
            breaker.failure(exc)
            metrics.online_store_errors.inc()
        else:
            breaker.success()
            return view
    else:
        metrics.online_store_skipped.inc()
    if not history.local_fallback:  # no local copy: serving would ignore the user's likes
        raise HTTPException(503, "online store unavailable; retry shortly")
    return store


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
        422: {"model": Message, "description": "Invalid id, time, limit, topic, or a mood without words"},
        503: {"model": Message, "description": "Redis online store unavailable (without a local copy)"},
    },
    summary="Top posts for a user at a time, from the user's experiment arm",
)
async def get_recommendations(
    request: Request,
    id: Annotated[int, Query(ge=1, le=MAX_USER_ID, description="user_id")],
    time_: Annotated[
        datetime, Query(alias="time", description="Request time, ISO 8601 (e.g. 2021-12-01T14:00:00)")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Number of posts")] = 5,
    topic: Annotated[str | None, Query(max_length=MAX_TOPIC, description="Only posts of this topic")] = None,
    mood: Annotated[
        str | None,
        Query(
            max_length=MAX_MOOD,
            # Documented, not validated by FastAPI (its message would quote the expression): the
            # encoder checks exactly this rule and says what is wrong in words.
            json_schema_extra={"pattern": MOOD_PATTERN},
            description=(
                "Words or emoji (≤ 200 chars), e.g. football, want to laugh, ⚽: re-rank toward posts that "
                "match it (emoji count as their Unicode names; feelings reach content through the mood "
                "lexicon). The response's `mood` says what was understood. Without any letter or emoji, "
                "or with a control character: 422 with a plain message"
            ),
        ),
    ] = None,
    x_request_id: Annotated[str | None, Header(description="Optional caller-chosen request id")] = None,
) -> Response:
    # The app's objects are read from its state, not through dependencies: this is the hot path.
    status, headers, body = await answer(
        request.app.state, id, time_, limit, topic, mood, x_request_id, request.scope.get(ARRIVED)
    )
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def answer(
    app_state,
    id: int,
    when: datetime,
    limit: int,
    topic: str | None,
    mood: str | None,
    x_request_id: str | None,
    arrived: float | None,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and JSON body of a recommendation request whose parameters are valid;
    HTTPException for an unknown user, topic or a mood without words (and 503 from Redis).
    Shared by the FastAPI route and the server's express lane (``express_answer``)."""
    started = time.perf_counter()
    state, store, catalogue = app_state.serving, app_state.store, app_state.catalogue
    writer: ExposureWriter = app_state.writer
    metrics: Metrics = app_state.metrics
    snapshot = state.snapshot  # one reference for the whole request: a reload cannot split it
    if topic is not None and topic not in catalogue.topic_names:
        raise HTTPException(422, f"unknown topic {topic!r}; valid topics: {', '.join(catalogue.topic_names)}")
    seconds = to_epoch_seconds(when)
    request_id = x_request_id if x_request_id and _REQUEST_ID.match(x_request_id) else new_request_id()

    def work() -> tuple[MoodMatch | None, FeatureStore, Recommendation]:
        """Everything that takes time or waits (the mood, Redis, the model), on the ranker's thread."""
        moody = read_mood(app_state.mood_encoder, mood, snapshot.mood_lexicon) if mood is not None else None
        view = store
        if app_state.history is not None:
            view = user_view(app_state.history, store, id, metrics, app_state.redis_breaker)
        similarity = moody.similarity if moody else None
        result = recommend(
            snapshot, view, catalogue, id, seconds, limit, topic, similarity, snapshot.mood_weight, request_id
        )
        return moody, view, result

    try:
        done = await app_state.deadline.run(work, started if arrived is None else arrived)
    except UnknownUserError as exc:
        metrics.requests.labels("recommendations", "none", "none", "404").inc()
        raise HTTPException(404, str(exc)) from None
    if done is None:  # the ranker missed the deadline: never a late answer
        body, headers, status = fallback_answer(
            app_state, id, seconds, limit, topic, request_id, "deadline", started
        )
        return status, headers, body
    moody, store, result = done
    mood_similarity = moody.similarity if moody else None
    arm, version = result.assignment.arm, result.model_version
    shadow = snapshot.shadows.get(arm) if result.features is not None else None
    body, post_ids = render(
        catalogue, arm, result.post_idx, "model", {"mood": moody.as_json()} if moody else {}
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
            post_ids=post_ids,
            latency_ms=round(latency * 1000, 3),
            topic=topic,
            mood=mood.strip() if moody else None,
            cold_start=result.cold_start,
            mood_matched=moody.matched if moody else None,
            teams=result.teams,
            model_versions=result.model_versions,
            shadow_version=shadow.version if shadow is not None else None,
            candidates=None if result.candidates is None else len(result.candidates),
            retrieval_version=result.retrieval_version,
        )
    )
    if shadow is not None:  # after the response is produced; dropped (and counted) when the queue is full
        job = (request_id, arm, shadow, store, catalogue, result, id, seconds, limit, topic, mood_similarity)
        app_state.shadow.submit(ShadowJob.of(*job, snapshot.mood_weight))
    metrics.requests.labels("recommendations", arm, version, "200").inc()
    metrics.latency.labels(arm, version).observe(latency)
    headers = {"X-Request-ID": request_id, "X-Exp-Group": arm, "X-Model-Version": version, SERVED_BY: "model"}
    return 200, headers, body


# The express lane: what the server's protocol answers without the ASGI app (``recsys serve``).
# Only requests in this plain form take it; anything else (other spellings FastAPI would accept,
# out-of-range values, a body) goes to the FastAPI route, whose answer is the reference.
_PLAIN_ID = re.compile(r"[1-9][0-9]{0,9}")
_PLAIN_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
_PLAIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?")
_EXPRESS_KEYS = frozenset({"id", "time", "limit", "topic", "mood"})


def express_query(query_string: bytes) -> tuple[int, datetime, int, str | None, str | None] | None:
    """``id``, ``time``, ``limit``, ``topic`` and ``mood`` of a request in the plain form the
    express lane answers; None for anything else."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return None
    query = dict(pairs)
    if len(query) != len(pairs) or not query.keys() <= _EXPRESS_KEYS:
        return None  # a repeated or an unknown parameter: FastAPI's rules decide
    raw_id, raw_time, raw_limit = query.get("id", ""), query.get("time", ""), query.get("limit", "5")
    if not (_PLAIN_ID.fullmatch(raw_id) and _PLAIN_TIME.fullmatch(raw_time) and _PLAIN_LIMIT.fullmatch(raw_limit)):
        return None
    user_id, limit = int(raw_id), int(raw_limit)
    topic, mood = query.get("topic"), query.get("mood")
    if user_id > MAX_USER_ID or limit > MAX_LIMIT or (topic is not None and len(topic) > MAX_TOPIC):
        return None
    if mood is not None and len(mood) > MAX_MOOD:
        return None
    try:
        when = _TIME.validate_python(raw_time)
    except ValidationError:
        return None
    return user_id, when, limit, topic, mood


async def express_answer(app_state, scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """The answer to an admitted ``GET /post/recommendations/`` in the plain form, computed by
    ``answer`` as the route computes it, without the ASGI stack (its middleware's work done
    here: the shadow scorer's in-flight count, the app's error answers); None: not plain, the
    route answers it."""
    query = express_query(scope["query_string"])
    if query is None:
        return None
    request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
    app_state.idle.enter()
    try:
        status, headers, body = await answer(
            app_state, *query, None if request_id is None else request_id.decode("latin-1"), scope.get(ARRIVED)
        )
    except HTTPException as exc:
        status, headers, body = exc.status_code, dict(exc.headers or {}), orjson.dumps({"detail": exc.detail})
    except Exception:  # noqa: BLE001 - the app's own 500 (logged and counted), as on the route
        status, headers, body = 500, {}, internal_error(app_state, scope["path"])
    finally:
        app_state.idle.leave()
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return status, [*raw, *_json_headers(body)], body


def internal_error(app_state, path: str) -> bytes:
    """Log the exception being handled, count it, and return the 500's body."""
    log.exception("unhandled error on %s", path)
    app_state.metrics.errors.labels(path, "unknown", "unknown", "500").inc()
    return orjson.dumps({"detail": "internal error; it has been logged"})


def render(
    catalogue, arm: str, post_idx, served_by: str, extra: dict | None = None
) -> tuple[bytes, list[int]]:
    """The response body and the served post ids. Serialised here with orjson: returning a
    Response skips FastAPI's re-validation of the response model (the schema is still
    documented and the tests check bodies against it)."""
    post_ids = [int(catalogue.post_ids[i]) for i in post_idx]
    items = [
        {"id": pid, "text": catalogue.texts[i], "topic": catalogue.topics[i]}
        for pid, i in zip(post_ids, post_idx, strict=True)
    ]
    body = {"exp_group": arm, "recommendations": items, **(extra or {}), "served_by": served_by}
    return orjson.dumps(body), post_ids


_TIME = TypeAdapter(datetime)  # the route's own parsing of ``time``


def fallback_answer(
    app_state,
    user_id: int,
    seconds: int,
    limit: int,
    topic: str | None,
    request_id: str,
    reason: str,
    started: float,
) -> tuple[bytes, dict[str, str], int]:
    """Body, headers and status of the popularity fallback (``reason``: shed or deadline), its
    exposure logged with ``in_experiment = false``; 404 for an unknown user without a topic."""
    snapshot, store, catalogue = app_state.serving.snapshot, app_state.store, app_state.catalogue
    metrics: Metrics = app_state.metrics
    user_idx = store.user_position(user_id)
    if user_idx < 0 and topic is None:
        metrics.requests.labels("recommendations", "none", "none", "404").inc()
        detail = f"user {user_id} not found; send topic and/or mood for a cold-start feed"
        return orjson.dumps({"detail": detail}), {SERVED_BY: f"fallback:{reason}"}, 404
    topic_code = catalogue.topic_names.index(topic) if topic is not None else None
    post_idx = app_state.fallback.top(user_idx, seconds, limit, topic_code)
    assignment = assign(snapshot.experiment, user_id)
    served_by = f"fallback:{reason}"
    body, post_ids = render(catalogue, assignment.arm, post_idx, served_by)
    latency = time.perf_counter() - started
    app_state.writer.submit(
        Exposure(
            request_id=request_id,
            served_at=datetime.now(UTC).replace(tzinfo=None),
            request_time=EPOCH + timedelta(seconds=seconds),
            user_id=user_id,
            experiment=snapshot.experiment.name,
            arm=assignment.arm,
            bucket=float(assignment.bucket),
            in_experiment=False,  # not the arm's model: never part of the comparison
            model_version=FALLBACK_VERSION,
            post_ids=post_ids,
            latency_ms=round(latency * 1000, 3),
            topic=topic,
            cold_start=user_idx < 0,
            served_by=reason,
        ),
        journal=False,  # outside the experiment: not worth a system call each (README "Overload")
    )
    metrics.requests.labels("recommendations", assignment.arm, FALLBACK_VERSION, "200").inc()
    metrics.fallbacks.labels(reason).inc()
    headers = {
        "X-Request-ID": request_id,
        "X-Exp-Group": assignment.arm,
        "X-Model-Version": FALLBACK_VERSION,
        SERVED_BY: served_by,
    }
    return body, headers, 200


def shed_query(query_string: bytes, topics: list[str]) -> tuple[int, int, int, str | None]:
    """``id``, ``time`` (epoch seconds), ``limit`` and ``topic`` of a shed request, checked like
    the route checks them (mood is not used by the fallback); ValueError with a message."""
    query = {k: v[-1] for k, v in parse_qs(query_string.decode("latin-1")).items()}
    try:
        user_id = int(query["id"])
        when = _TIME.validate_python(query["time"])
        limit = int(query.get("limit", 5))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]}: Field required") from None
    except ValidationError:
        raise ValueError("time: Input should be a valid datetime") from None
    if not 1 <= user_id <= MAX_USER_ID or not 1 <= limit <= MAX_LIMIT:
        raise ValueError("id or limit out of range")
    topic = query.get("topic")
    if topic is not None and topic not in topics:
        raise ValueError(f"unknown topic {topic!r}; valid topics: {', '.join(topics)}")
    return user_id, to_epoch_seconds(when), limit, topic


@functools.lru_cache(maxsize=8)
def overloaded(retry_after: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 503 of ``overflow: "503"``, serialised once."""
    body = orjson.dumps({"detail": f"overloaded; retry after {retry_after} s"})
    headers = [(b"retry-after", str(retry_after).encode()), (SERVED_BY.lower().encode(), b"shed")]
    return 503, [*headers, *_json_headers(body)], body


def _json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


def shed_answer(app_state, admission: Admission, scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers (content type and length included) and body for a request admission
    control turned away (it has waited ``shed_delay_ms`` for a slot in vain): the fallback list,
    or 503 with Retry-After, per ``serving.admission.overflow``. Synchronous, on the event loop:
    the server's protocol answers with it before the request reaches the ASGI app."""
    started = time.perf_counter()
    app_state.metrics.shed.labels(admission.overflow).inc()
    if admission.overflow == "503":
        app_state.metrics.requests.labels("recommendations", "none", "none", "503").inc()
        return overloaded(admission.retry_after)
    raw_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
    request_id = raw_id if _REQUEST_ID.match(raw_id) else new_request_id()
    try:
        query = shed_query(scope["query_string"], app_state.catalogue.topic_names)
    except ValueError as exc:
        body, headers, status = orjson.dumps({"detail": str(exc)}), {SERVED_BY: "fallback:shed"}, 422
    else:
        body, headers, status = fallback_answer(app_state, *query, request_id, "shed", started)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return status, [*raw_headers, *_json_headers(body)], body


async def shed(scope, send, admission: Admission) -> None:
    """``shed_answer`` sent through ASGI (servers other than ``recsys serve``'s protocol)."""
    status, headers, body = shed_answer(scope["app"].state, admission, scope)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
