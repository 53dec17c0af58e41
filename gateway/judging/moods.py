"""``recsys mood measure``: where moods steer the feed, judged with the world's sub-topics.

For one user and a sample of users at one time, the gateway is asked over HTTP, as a client
would ask, for the top 5 with each mood. Reported per mood: the share of each topic in the
top 5, the share of requests the gateway said it understood (``mood.matched``), and the most
common sub-topic in the top 5 with its share (the truth's sub-topics: judging only). Without a
URL the gateway runs in this process with an in-memory exposure log, so measuring leaves no
rows in the experiment's table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import Engine

from gateway.storage import read_frame
from gateway.world.load import post_subtopics

DEFAULT_MOODS = (
    "",
    "football",
    "⚽",
    "tennis",
    "sport",
    "horror",
    "sad",
    "want to laugh",
    "excited",
    "bored",
    "xyzzy plugh",
)
LIMIT = 5


@dataclass
class MoodRow:
    mood: str
    requests: int
    statuses: dict[str, int]
    matched: float | None  # share of 200s whose response said matched; None if never said
    topic_share: dict[str, float]
    top_subtopic: str
    top_subtopic_share: float
    user_topics: list[str] = field(default_factory=list)  # the single user's top 5 (or its status)


@contextmanager
def gateway_url(url: str | None, config: Path | None) -> Iterator[str]:
    """``url`` as given, or this branch's gateway in a thread with an in-memory exposure log."""
    if url:
        yield url.rstrip("/")
        return
    from gateway.exposure import MemoryExposureSink
    from gateway.serving.main import create_app
    from gateway.serving.server import serve_in_thread

    with serve_in_thread(create_app(config_path=config, exposure_sink=MemoryExposureSink())) as local:
        yield local


def sample_users(engine: Engine, n: int, seed: int) -> list[int]:
    ids = read_frame(engine, "SELECT user_id FROM user_data ORDER BY user_id")["user_id"].to_numpy()
    return sorted(int(u) for u in np.random.default_rng(seed).choice(ids, min(n, len(ids)), replace=False))


def measure_moods(
    engine: Engine,
    *,
    url: str | None = None,
    config: Path | None = None,
    moods: tuple[str, ...] = DEFAULT_MOODS,
    user: int = 200,
    users: int = 200,
    when: str = "2021-12-20T20:00:00",
    seed: int = 0,
) -> list[MoodRow]:
    """One row per mood ("" = no mood) for ``user`` and for ``users`` sampled users."""
    sample = sample_users(engine, users, seed)
    subtopic = post_subtopics(engine)
    rows = []
    with gateway_url(url, config) as base, httpx.Client(base_url=base, timeout=30) as client:

        def ask(uid: int, mood: str) -> httpx.Response:
            params = {"id": uid, "time": when, "limit": LIMIT, **({"mood": mood} if mood else {})}
            return client.get("/post/recommendations/", params=params)

        for mood in moods:
            statuses: Counter[str] = Counter()
            topics: Counter[str] = Counter()
            subs: Counter[str] = Counter()
            said = understood = served = 0
            for uid in sample:
                r = ask(uid, mood)
                statuses[str(r.status_code)] += 1
                if r.status_code != 200:
                    continue
                body = r.json()
                served += 1
                topics.update(p["topic"] for p in body["recommendations"])
                subs.update(subtopic.get(p["id"], "?") for p in body["recommendations"])
                if "mood" in body:
                    said += 1
                    understood += bool(body["mood"]["matched"])
            one = ask(user, mood)
            user_topics = (
                [p["topic"] for p in one.json()["recommendations"]]
                if one.status_code == 200
                else [f"{one.status_code}: {one.json().get('detail')}"]
            )
            shown = sum(topics.values())
            top_sub, top_count = subs.most_common(1)[0] if subs else ("-", 0)
            rows.append(
                MoodRow(
                    mood=mood,
                    requests=len(sample),
                    statuses=dict(statuses),
                    matched=understood / said if said else None,
                    topic_share={t: round(c / shown, 3) for t, c in sorted(topics.items())} if shown else {},
                    top_subtopic=top_sub,
                    top_subtopic_share=round(top_count / shown, 3) if shown else 0.0,
                    user_topics=user_topics,
                )
            )
    return rows


def as_json(rows: list[MoodRow]) -> list[dict]:
    return [asdict(r) for r in rows]
