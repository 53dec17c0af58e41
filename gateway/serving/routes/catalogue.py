"""Users and posts: GET /user/{id}, /user/{id}/feed, /post/{id}, /post/{id}/feed (similar posts)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.serving.deps import CatalogueDep, StoreDep
from gateway.serving.schemas import FeedAction, Message, PostOut, SimilarPost, UserOut

router = APIRouter(tags=["catalogue"])
MAX_ID = 2**31 - 1
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="user_id")]
PostId = Annotated[int, Path(ge=1, le=MAX_ID, description="post_id")]
Limit = Annotated[int, Query(ge=1, le=100)]
NOT_FOUND = {404: {"model": Message}}


def _user_index(store, user_id: int) -> int:
    idx = store.user_position(user_id)
    if idx < 0:
        raise HTTPException(404, f"user {user_id} not found")
    return idx


def _post_index(store, post_id: int) -> int:
    idx = int(store.post_index([post_id])[0])
    if idx < 0:
        raise HTTPException(404, f"post {post_id} not found")
    return idx


@router.get("/user/{id}", response_model=UserOut, responses=NOT_FOUND, summary="A user's profile")
def get_user(id: UserId, store: StoreDep) -> UserOut:
    idx = _user_index(store, id)
    vocab = store.manifest["vocabularies"]
    u = store.users
    return UserOut(
        user_id=id,
        gender=int(u["gender"][idx]),
        age=int(u["age"][idx]),
        exp_group=int(u["exp_group"][idx]),
        **{name: vocab[name][int(u[name][idx])] for name in ("country", "city", "os", "source")},
    )


@router.get("/post/{id}", response_model=PostOut, responses=NOT_FOUND, summary="A post")
def get_post(id: PostId, store: StoreDep, catalogue: CatalogueDep) -> PostOut:
    idx = _post_index(store, id)
    return PostOut(id=id, text=catalogue.texts[idx], topic=catalogue.topics[idx])


@router.get(
    "/user/{id}/feed",
    response_model=list[FeedAction],
    responses={**NOT_FOUND, 503: {"model": Message}},
    summary="The user's latest feed actions, newest first",
)
def get_user_feed(id: UserId, request: Request, store: StoreDep, limit: Limit = 10) -> list[FeedAction]:
    _user_index(store, id)
    sql = text(
        'SELECT "timestamp", user_id, post_id, action, target FROM feed_data WHERE user_id = :uid ORDER BY "timestamp" DESC LIMIT :limit'
    )
    try:
        with request.app.state.engine.connect() as conn:
            rows = conn.execute(sql, {"uid": id, "limit": limit}).all()
    except SQLAlchemyError:
        raise HTTPException(
            503, "the feed database is unreachable; recommendations are still served"
        ) from None
    return [
        FeedAction(timestamp=str(r[0])[:19], user_id=r[1], post_id=r[2], action=r[3], target=r[4])
        for r in rows
    ]


@router.get(
    "/post/{id}/feed",
    response_model=list[SimilarPost],
    responses=NOT_FOUND,
    summary="Posts most similar to this one in the feature store's text space",
)
def get_similar_posts(
    id: PostId, store: StoreDep, catalogue: CatalogueDep, limit: Limit = 10
) -> list[SimilarPost]:
    idx = _post_index(store, id)
    similarity = store.post_emb @ store.post_emb[idx]
    similarity[idx] = -np.inf
    best = np.argsort(-similarity, kind="stable")[:limit]
    return [
        SimilarPost(
            id=int(catalogue.post_ids[i]),
            text=catalogue.texts[i],
            topic=catalogue.topics[i],
            similarity=round(float(similarity[i]), 6),
        )
        for i in best
    ]
