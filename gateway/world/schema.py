"""The world's truth tables (judging only; nothing outside the world and the judges names them)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

from gateway.world.params import LATENT_DIM, TOPICS

WORLD_USERS: Final = "world_users"
WORLD_POSTS: Final = "world_posts"
WORLD_PARAMS: Final = "world_params"

world_metadata = MetaData()

world_users = Table(
    WORLD_USERS,
    world_metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("propensity", Float, nullable=False),
    *[Column(f"taste_{topic}", Float, nullable=False) for topic in TOPICS],
    *[Column(f"z_{k}", Float, nullable=False) for k in range(LATENT_DIM)],
)

world_posts = Table(
    WORLD_POSTS,
    world_metadata,
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("subtopic", Integer, nullable=False),
    Column("quality", Float, nullable=False),
    Column("exposure", Float, nullable=False),
)

world_params = Table(
    WORLD_PARAMS,
    world_metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

WORLD_TABLES = (world_users, world_posts, world_params)
