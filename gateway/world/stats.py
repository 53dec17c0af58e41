"""``recsys data stats``: the world's statistics next to the source's facts.

Aggregations run in SQL, so the same code summarises a full-scale world in Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gateway.storage import read_frame
from gateway.storage.engine import is_postgres
from gateway.world.load import load_truth


@dataclass
class Stat:
    section: str
    name: str
    value: float | str
    target: str


def _hour(engine: Engine) -> str:
    return (
        'EXTRACT(HOUR FROM "timestamp")'
        if is_postgres(engine)
        else "CAST(strftime('%H', \"timestamp\") AS INTEGER)"
    )


def _rates(engine: Engine, select: str, join: str = "") -> pd.DataFrame:
    sql = (
        f"SELECT {select} AS k, COUNT(*) AS views, SUM(f.target) AS likes FROM feed_data f {join} "
        f"WHERE f.action = 'view' GROUP BY {select}"
    )
    frame = read_frame(engine, sql)
    frame["rate"] = frame["likes"] / frame["views"]
    return frame.set_index("k")


def compute_stats(engine: Engine) -> list[Stat]:
    out: list[Stat] = []
    add = lambda section, name, value, target="": out.append(Stat(section, name, value, target))  # noqa: E731

    users = read_frame(
        engine, "SELECT user_id, gender, age, country, city, exp_group, os, source FROM user_data"
    )
    n = len(users)
    add("users", "users", n, "163,205 (full)")
    add("users", "gender=1 share", round(users["gender"].mean(), 4), "0.551")
    age = users["age"]
    add("users", "age mean / std", f"{age.mean():.1f} / {age.std():.1f}", "27.4 / 10.3")
    q = age.quantile([0.25, 0.5, 0.75]).to_numpy()
    add("users", "age Q1 / median / Q3", f"{q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f}", "19 / 24 / 33")
    add(
        "users",
        "age min / max / mode",
        f"{age.min()} / {age.max()} / {age.mode().iloc[0]}",
        "14 / 95 / 19-21",
    )
    shares = users["country"].value_counts(normalize=True)
    add("users", "Russia share", round(shares.get("Russia", 0.0), 4), "0.8764")
    add("users", "countries", users["country"].nunique(), "11")
    add("users", "distinct cities", users["city"].nunique(), "3,915 (full)")
    add("users", "Moscow share", round((users["city"] == "Moscow").mean(), 4), "0.134")
    add(
        "users",
        "exp_group shares",
        " ".join(f"{v:.3f}" for v in users["exp_group"].value_counts(normalize=True).sort_index()),
        "0.2 each",
    )
    add("users", "Android share", round((users["os"] == "Android").mean(), 4), "0.649")
    add("users", "ads share", round((users["source"] == "ads").mean(), 4), "0.623")

    posts = read_frame(engine, "SELECT post_id, text, topic FROM post_text_df")
    add("posts", "posts", len(posts), "7,023")
    add(
        "posts",
        "topic counts",
        " ".join(f"{t}:{c}" for t, c in posts["topic"].value_counts().items()),
        "movie 3000 covid 1799 business 510 sport 510 politics 417 tech 401 entertainment 386",
    )
    lengths = (
        posts.assign(n=posts["text"].str.len()).groupby("topic")["n"].quantile([0.1, 0.5, 0.9]).unstack()
    )
    for topic, row in lengths.iterrows():
        target = {"covid": "30-280", "movie": "500-2,000"}.get(topic, "900-3,500")
        add(
            "posts",
            f"text length p10/p50/p90 {topic}",
            f"{row[0.1]:.0f} / {row[0.5]:.0f} / {row[0.9]:.0f}",
            target,
        )
    add("posts", "duplicate texts", int(posts["text"].duplicated().sum()), "99 (full)")

    totals = read_frame(
        engine, "SELECT action, COUNT(*) AS n, SUM(target) AS t FROM feed_data GROUP BY action"
    ).set_index("action")
    views, likes = int(totals.loc["view", "n"]), int(totals.loc["like", "n"]) if "like" in totals.index else 0
    add("feed", "rows", views + likes, "76,892,800 (full)")
    add("feed", "like share of rows", round(likes / (views + likes), 4), "0.106")
    add("feed", "like rate on views", round(totals.loc["view", "t"] / views, 4), "0.119")
    add("feed", "likes == views with target 1", bool(likes == totals.loc["view", "t"]), "True")
    span = read_frame(engine, 'SELECT MIN("timestamp") AS lo, MAX("timestamp") AS hi FROM feed_data')
    add("feed", "time range", f"{span['lo'][0]} .. {span['hi'][0]}", "2021-10-01 06:01 .. 2021-12-29 23:51")
    add("feed", "views per user", round(views / n, 1), "421")
    pairs = read_frame(
        engine,
        "SELECT COUNT(*) AS n FROM (SELECT user_id, post_id FROM feed_data WHERE action = 'view' GROUP BY user_id, post_id) x",
    )
    add("feed", "repeated (user, post) views", round(1 - pairs["n"][0] / views, 4), "0.046")
    per_post = read_frame(
        engine, "SELECT post_id, COUNT(*) AS n FROM feed_data WHERE action = 'view' GROUP BY post_id"
    )["n"]
    add("feed", "posts in feed", len(per_post), "6,831 of 7,023")
    qs = per_post.quantile([0, 0.25, 0.5, 0.75, 1.0]).to_numpy()
    ratio = qs / qs[2]
    add(
        "feed",
        "views per post min/Q1/med/Q3/max (÷ median)",
        " / ".join(f"{r:.2f}" for r in ratio),
        "0.93 / 0.98 / 1 / 1.78 / 3.30",
    )

    hours = _rates(engine, _hour(engine))
    add("feed", "active hours", f"{int(hours.index.min())}-{int(hours.index.max())}", "6-23")
    add("feed", "peak hour (views)", int(hours["views"].idxmax()), "19-21")
    add(
        "feed",
        "like rate 10-14 h",
        round(hours.loc[10:14, "likes"].sum() / hours.loc[10:14, "views"].sum(), 4),
        "0.105-0.11",
    )
    add(
        "feed",
        "like rate 19-21 h",
        round(hours.loc[19:21, "likes"].sum() / hours.loc[19:21, "views"].sum(), 4),
        "0.14",
    )
    late = read_frame(
        engine,
        "SELECT COUNT(*) AS v, SUM(target) AS l FROM feed_data WHERE action = 'view' AND \"timestamp\" >= '2021-12-26'",
    )
    add("signals", "like rate 26-29 Dec", round(late["l"][0] / max(late["v"][0], 1), 4), "0.14")
    join_users = "JOIN user_data u ON u.user_id = f.user_id"
    groups = _rates(engine, "u.exp_group", join_users)["rate"]
    add(
        "signals",
        "like rate by exp_group 0..4",
        " ".join(f"{v:.3f}" for v in groups.sort_index()),
        "0.10 0.14 0.14 0.10 ~0.12",
    )
    gender = _rates(engine, "u.gender", join_users)["rate"]
    add(
        "signals",
        "like rate gender 0 / 1",
        f"{gender.get(0, np.nan):.3f} / {gender.get(1, np.nan):.3f}",
        "0.111 / 0.125",
    )
    country = _rates(engine, "u.country", join_users)
    other = country.drop(index="Russia", errors="ignore")
    add(
        "signals",
        "like rate Russia / others",
        f"{country['rate'].get('Russia', np.nan):.3f} / {other['likes'].sum() / other['views'].sum():.3f}",
        "0.107-0.115 / 0.15-0.17",
    )
    add("signals", "like rate Kazakhstan", round(country["rate"].get("Kazakhstan", np.nan), 3), "0.171")
    os_rates = _rates(engine, "u.os", join_users)["rate"]
    add(
        "signals",
        "like rate Android / iOS",
        " / ".join(f"{os_rates.get(k, np.nan):.3f}" for k in ("Android", "iOS")),
        "no difference",
    )
    source = _rates(engine, "u.source", join_users)["rate"]
    add(
        "signals",
        "like rate ads / organic",
        " / ".join(f"{source.get(k, np.nan):.3f}" for k in ("ads", "organic")),
        "no difference",
    )
    topic = _rates(engine, "p.topic", "JOIN post_text_df p ON p.post_id = f.post_id")["rate"]
    add(
        "signals",
        "like rate by topic",
        " ".join(f"{k}:{v:.3f}" for k, v in topic.sort_values().items()),
        "tech lowest 0.102, sport 0.122",
    )
    return out


def like_delay_check(engine: Engine, users: int = 300) -> dict[str, float]:
    """On a sample of users: every like has a view with target 1 30-60 s before it."""
    sql = (
        'SELECT user_id, post_id, action, target, "timestamp" FROM feed_data '
        f"WHERE user_id IN (SELECT user_id FROM user_data ORDER BY user_id LIMIT {int(users)})"
    )
    feed = read_frame(engine, sql, parse_dates=["timestamp"])
    views = feed[(feed["action"] == "view") & (feed["target"] == 1)]
    likes = feed[feed["action"] == "like"]
    merged = likes.merge(views, on=["user_id", "post_id"], suffixes=("_like", "_view"))
    delay = (merged["timestamp_like"] - merged["timestamp_view"]).dt.total_seconds()
    matched = merged[(delay >= 30) & (delay <= 60)].drop_duplicates(["user_id", "post_id", "timestamp_like"])
    return {"likes": len(likes), "matched_share": len(matched) / max(len(likes), 1)}


def world_stats(engine: Engine) -> list[Stat]:
    """``compute_stats`` of the world in ``engine``; NoWorldError when it holds none."""
    load_truth(engine)  # fails with a clear message when there is no world
    return compute_stats(engine)
