"""Table and column names of the source schema and the exposure log, spelled once.

The world's truth tables are named in ``gateway.world.schema``: nothing outside the world and
the judging code needs their names.
"""

from typing import Final


class Tables:
    USERS: Final = "user_data"
    POSTS: Final = "post_text_df"
    FEED: Final = "feed_data"
    SOURCE: Final = ("user_data", "post_text_df", "feed_data")
    EXPOSURES: Final = "exposures"
    SHADOW_EXPOSURES: Final = "shadow_exposures"


USER_COLUMNS: Final = ("user_id", "gender", "age", "country", "city", "exp_group", "os", "source")
POST_COLUMNS: Final = ("post_id", "text", "topic")
FEED_COLUMNS: Final = ("timestamp", "user_id", "post_id", "action", "target")
