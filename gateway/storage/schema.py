"""The three source tables, with exactly the source's names and columns."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

from gateway.tables import Tables

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

SOURCE_TABLES = (user_data, post_text_df, feed_data)
