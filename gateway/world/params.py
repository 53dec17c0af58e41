"""Fixed facts of the source data and the effect sizes of the world's truth.

Counts come from ../shared/karpov-dataset-facts.md; effects are log-odds shifts chosen so
that the like rates on views match the facts (the intercept is solved numerically).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gateway.world.vocab import SUBTOPICS

TOPICS: tuple[str, ...] = (
    "business",
    "covid",
    "entertainment",
    "movie",
    "politics",
    "sport",
    "tech",
)
TOPIC_COUNTS = {
    "movie": 3000,
    "covid": 1799,
    "business": 510,
    "sport": 510,
    "politics": 417,
    "tech": 401,
    "entertainment": 386,
}
NEWS_TOPICS = ("business", "entertainment", "politics", "sport", "tech")

SUBTOPIC_NAMES: tuple[tuple[str, str], ...] = tuple(
    (topic, sub) for topic in TOPICS for sub in SUBTOPICS[topic]
)
SUBTOPIC_NAMES_BY_TOPIC = {t: tuple(SUBTOPICS[t]) for t in TOPICS}
LATENT_DIM = 3

COUNTRY_COUNTS = {
    "Russia": 143_035,
    "Ukraine": 8_273,
    "Belarus": 3_293,
    "Kazakhstan": 3_172,
    "Turkey": 1_606,
    "Finland": 1_599,
    "Azerbaijan": 1_542,
    "Estonia": 178,
    "Latvia": 175,
    "Cyprus": 170,
    "Switzerland": 162,
}
TOTAL_CITIES = 3_915
# Real names head each country's list; the long tail gets generated names.
CITY_HEADS = {
    "Russia": [
        "Moscow",
        "Saint Petersburg",
        "Novosibirsk",
        "Yekaterinburg",
        "Kazan",
        "Nizhniy Novgorod",
        "Chelyabinsk",
        "Samara",
        "Omsk",
        "Voronezh",
        "Rostov",
        "Ufa",
        "Krasnoyarsk",
        "Perm",
        "Volgograd",
        "Krasnodar",
        "Saratov",
        "Tyumen",
    ],
    "Ukraine": ["Kyiv", "Kharkiv", "Odesa", "Dnipro", "Lviv", "Zaporizhzhia"],
    "Belarus": ["Minsk", "Gomel", "Mogilev", "Vitebsk", "Grodno", "Brest"],
    "Kazakhstan": ["Almaty", "Nur-Sultan", "Shymkent", "Karagandy", "Aktobe"],
    "Turkey": ["Istanbul", "Ankara", "Izmir", "Bursa", "Antalya"],
    "Finland": ["Helsinki", "Espoo", "Tampere", "Vantaa", "Oulu", "Turku"],
    "Azerbaijan": ["Baku", "Ganja", "Sumqayit", "Mingachevir"],
    "Estonia": ["Tallinn", "Tartu", "Narva"],
    "Latvia": ["Riga", "Daugavpils", "Liepaja"],
    "Cyprus": ["Nicosia", "Limassol", "Larnaca"],
    "Switzerland": ["Zurich", "Geneva", "Basel", "Bern"],
}
# Shares of the country's users for the first cities (Moscow 13.4 % of all users).
CITY_HEAD_SHARES = {"Russia": [0.153, 0.087], "Ukraine": [0.30], "Belarus": [0.35]}

GENDER_1_SHARE = 89_980 / 163_205
OS_ANDROID_SHARE = 105_972 / 163_205
SOURCE_ADS_SHARE = 101_685 / 163_205
AGE_GAMMA_SHAPE, AGE_GAMMA_SCALE, AGE_MIN, AGE_MAX = 1.69, 7.9, 14, 95

FEED_START = datetime(2021, 10, 1)
FEED_DAYS = 90  # 2021-10-01 ... 2021-12-29
FIRST_HOUR, LAST_HOUR = 6, 23
# Relative activity per hour 06..23, peaking 19-21 h.
HOURLY_ACTIVITY = (2.0, 3.0, 4.0, 4.5, 5.0, 5.0, 5.5, 5.5, 5.5, 5.5, 6.0, 6.5, 7.5, 9.0, 9.5, 9.0, 7.0, 5.0)

POST_ID_SPAN = 7_319
FULL_POSTS = 7_023
FULL_USERS = 163_205
USER_ID_FIRST = 200
UNSHOWN_POST_SHARE = 192 / 7_023
DUPLICATE_TEXT_SHARE = 99 / 7_023
# Three clusters of views per post: relative exposure weight and share of shown posts.
EXPOSURE_CLUSTERS = ((1.0, 0.62), (1.85, 0.25), (3.0, 0.13))
REPEAT_VIEW_SHARE = 0.046
SESSION_MEAN_VIEWS = 12
VIEW_GAP_SECONDS = (20, 150)
LIKE_DELAY_SECONDS = (30, 60)


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    posts: int
    mean_views: float  # views per user, log-normal
    views_sigma: float


SCALES = {
    "tiny": Scale("tiny", 1_500, 350, 120.0, 0.55),
    "small": Scale("small", 10_000, FULL_POSTS, 421.0, 0.6),
    "full": Scale("full", FULL_USERS, FULL_POSTS, 421.0, 0.6),
}


def with_posts(scale: Scale, posts: int) -> Scale:
    """The scale with another catalogue size (``recsys data synth --posts N``): users, views
    per user and the rates stay the scale's; topics keep their shares."""
    return replace(scale, name=f"{scale.name}-{posts}-posts", posts=posts)


TARGET_LIKE_RATE = 0.119

# ---- the truth: log-odds effects -------------------------------------------------------
EXP_GROUP_EFFECT = (-0.21, 0.19, 0.19, -0.21, 0.0)
GENDER_EFFECT = (-0.07, 0.06)
COUNTRY_EFFECT = {
    "Russia": 0.0,
    "Ukraine": 0.40,
    "Belarus": 0.42,
    "Kazakhstan": 0.55,
    "Turkey": 0.42,
    "Finland": 0.40,
    "Azerbaijan": 0.45,
    "Estonia": 0.42,
    "Latvia": 0.42,
    "Cyprus": 0.44,
    "Switzerland": 0.44,
}
# Like rate on views per topic (tech lowest, sport 0.122); offsets are solved numerically.
TOPIC_TARGET_RATE = {
    "business": 0.116,
    "covid": 0.119,
    "entertainment": 0.121,
    "movie": 0.121,
    "politics": 0.117,
    "sport": 0.122,
    "tech": 0.102,
}
# Hour-of-day effect (06..23): low at 10-14 h, high at 19-21 h.
HOUR_EFFECT = (
    -0.05,
    -0.05,
    -0.05,
    -0.05,
    -0.11,
    -0.11,
    -0.11,
    -0.11,
    -0.11,
    0.0,
    0.0,
    0.0,
    0.05,
    0.21,
    0.21,
    0.21,
    0.08,
    0.05,
)
# Topic x time-of-day interactions: news in the morning, films in the evening.
MORNING_TOPICS = {"business": 0.15, "politics": 0.15, "covid": 0.10}
EVENING_TOPICS = {"movie": 0.15, "entertainment": 0.12}
DECEMBER_RISE_START = datetime(2021, 12, 18)
DECEMBER_RISE = 0.24  # reached on 2021-12-29 and held after
USER_PROPENSITY_SD = 0.45
USER_DAY_MOOD_SD = 0.30
TOPIC_TASTE_NOISE_SD = 0.30
POST_QUALITY_SD = 0.32
MATCH_SD = 0.65  # sd of the latent user x sub-topic match z_u . w_s
ALREADY_LIKED_EFFECT = -3.0
