"""The three source tables (exact names and columns) and the world's ground-truth tables."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text

from gateway.tables import Tables
from gateway.world.params import LATENT_DIM, TOPICS

metadata = MetaData()

user_data = Table(
    Tables.USERS,
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("gender", Integer, nullable=False),
    Column("age", Integer, nullable=False),
    Column("country", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("exp_group", Integer, nullable=False),
    Column("os", Text, nullable=False),
    Column("source", Text, nullable=False),
)

post_text_df = Table(
    Tables.POSTS,
    metadata,
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("topic", Text, nullable=False),
)

# No primary key, as in the source: a (user, post) pair may repeat.
feed_data = Table(
    Tables.FEED,
    metadata,
    Column("timestamp", DateTime, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("post_id", Integer, nullable=False),
    Column("action", String(8), nullable=False),
    Column("target", Integer, nullable=False),
)

world_users = Table(
    Tables.WORLD_USERS,
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("propensity", Float, nullable=False),
    *[Column(f"taste_{topic}", Float, nullable=False) for topic in TOPICS],
    *[Column(f"z_{k}", Float, nullable=False) for k in range(LATENT_DIM)],
)

world_posts = Table(
    Tables.WORLD_POSTS,
    metadata,
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("subtopic", Integer, nullable=False),
    Column("quality", Float, nullable=False),
    Column("exposure", Float, nullable=False),
)

world_params = Table(
    Tables.WORLD_PARAMS,
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

SOURCE_TABLES = (user_data, post_text_df, feed_data)
WORLD_TABLES = (world_users, world_posts, world_params)
