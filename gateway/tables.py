"""Table and column names: the source schema, spelled once."""

from typing import Final


class Tables:
    USERS: Final = "user_data"
    POSTS: Final = "post_text_df"
    FEED: Final = "feed_data"
    WORLD_USERS: Final = "world_users"
    WORLD_POSTS: Final = "world_posts"
    WORLD_PARAMS: Final = "world_params"
    SOURCE: Final = ("user_data", "post_text_df", "feed_data")
    WORLD: Final = ("world_users", "world_posts", "world_params")


class Cols:
    USER_ID: Final = "user_id"
    GENDER: Final = "gender"
    AGE: Final = "age"
    COUNTRY: Final = "country"
    CITY: Final = "city"
    EXP_GROUP: Final = "exp_group"
    OS: Final = "os"
    SOURCE: Final = "source"
    POST_ID: Final = "post_id"
    TEXT: Final = "text"
    TOPIC: Final = "topic"
    TIMESTAMP: Final = "timestamp"
    ACTION: Final = "action"
    TARGET: Final = "target"


USER_COLUMNS: Final = ("user_id", "gender", "age", "country", "city", "exp_group", "os", "source")
POST_COLUMNS: Final = ("post_id", "text", "topic")
FEED_COLUMNS: Final = ("timestamp", "user_id", "post_id", "action", "target")

VIEW: Final = "view"
LIKE: Final = "like"
