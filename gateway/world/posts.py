"""Synthetic posts: topics, sub-topics, texts in the style of each topic, hidden quality."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from gateway.world import params as P
from gateway.world.vocab import FILLER, HANDLES, HASHTAGS, SUBTOPICS, TOPIC_WORDS

_ALNUM = np.array(list(string.ascii_letters + string.digits))


def topic_counts(n_posts: int) -> dict[str, int]:
    """The source's topic counts, scaled to ``n_posts`` (at least 8 per topic)."""
    if n_posts == P.FULL_POSTS:
        return dict(P.TOPIC_COUNTS)
    raw = {t: max(8, round(c * n_posts / P.FULL_POSTS)) for t, c in P.TOPIC_COUNTS.items()}
    raw["movie"] += n_posts - sum(raw.values())
    return raw


def _words(rng: np.random.Generator, topic: str, sub: str, n: int, sub_share: float) -> list[str]:
    kind = rng.random(n)
    pools = (SUBTOPICS[topic][sub], TOPIC_WORDS[topic], FILLER)
    pool = np.where(kind < sub_share, 0, np.where(kind < sub_share + 0.10, 1, 2))
    # One draw per word with that word's pool size as bound: numpy draws an array of bounds
    # element by element from the same stream, so this equals one ``rng.integers(len(pool))``
    # call per word (the worlds of a seed are unchanged; tests/world compares the two).
    picks = rng.integers(np.array([len(p) for p in pools])[pool]) if n else np.zeros(0, np.int64)
    return [pools[p][i] for p, i in zip(pool.tolist(), picks.tolist(), strict=True)]


def _sentences(words: list[str], rng: np.random.Generator) -> str:
    parts, i = [], 0
    while i < len(words):
        size = int(rng.integers(8, 23))
        chunk = words[i : i + size]
        parts.append(chunk[0].capitalize() + (" " + " ".join(chunk[1:]) if len(chunk) > 1 else "") + ".")
        i += size
    return " ".join(parts)


def _length(rng: np.random.Generator, median: float, sigma: float, low: int, high: int) -> int:
    return int(np.clip(median * np.exp(rng.normal(0, sigma)), low, high))


def make_text(topic: str, sub: str, rng: np.random.Generator) -> str:
    """One post's text in its topic's style: news article, film review or social post."""
    if topic == "covid":
        n_words = int(rng.integers(4, 30))
        body = " ".join(_words(rng, topic, sub, n_words, 0.30))
        tags = [HASHTAGS[i] for i in rng.choice(len(HASHTAGS), rng.integers(1, 4), replace=False)]
        tags.append(SUBTOPICS[topic][sub][rng.integers(len(SUBTOPICS[topic][sub]))])
        text = body + " " + " ".join("#" + t.replace("-", "") for t in tags)
        if rng.random() < 0.4:
            text = "@" + HANDLES[rng.integers(len(HANDLES))] + " " + text
        if rng.random() < 0.5:
            text += " https://t.co/" + "".join(rng.choice(_ALNUM, 10))
        return text[:280] if len(text) >= 30 else text + " stay safe everyone"
    if topic == "movie":
        target = _length(rng, 1_050, 0.35, 500, 2_000)
        sub_share = 0.13
    else:
        target = _length(rng, 1_900, 0.40, 900, 3_500)
        if rng.random() < 0.015:  # rare long reads, up to 25,000 characters
            target = int(rng.uniform(5_000, 25_000))
        sub_share = 0.12
    n_words = max(20, target // 6)
    body = _sentences(_words(rng, topic, sub, n_words, sub_share), rng)
    if topic == "movie":
        return body
    headline = " ".join(w.capitalize() for w in _words(rng, topic, sub, int(rng.integers(5, 11)), 0.35))
    return f"{headline}\n\n{body}"


def generate_posts(n_posts: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``post_text_df`` and ``world_posts`` (sub-topic, quality, exposure weight)."""
    span = P.POST_ID_SPAN if n_posts == P.FULL_POSTS else round(n_posts * P.POST_ID_SPAN / P.FULL_POSTS)
    ids = np.sort(rng.choice(np.arange(1, span + 1), n_posts, replace=False))
    topics = np.concatenate([[t] * c for t, c in topic_counts(n_posts).items()])
    rng.shuffle(topics)
    sub_index = {name: i for i, name in enumerate(P.SUBTOPIC_NAMES)}
    subtopic = np.empty(n_posts, dtype=np.int64)
    for topic in P.TOPICS:
        mask = topics == topic
        names = list(SUBTOPICS[topic])
        sizes = rng.dirichlet(np.full(len(names), 4.0))
        chosen = rng.choice(len(names), size=mask.sum(), p=sizes)
        subtopic[mask] = [sub_index[(topic, names[c])] for c in chosen]
    texts = [make_text(t, P.SUBTOPIC_NAMES[s][1], rng) for t, s in zip(topics, subtopic, strict=True)]
    # A few exact duplicates of another post of the same sub-topic, as in the source.
    n_dup = round(n_posts * P.DUPLICATE_TEXT_SHARE)
    for i in rng.choice(n_posts, n_dup, replace=False):
        same = np.flatnonzero(subtopic == subtopic[i])
        same = same[same != i]
        if len(same):
            texts[i] = texts[int(rng.choice(same))]
    weights, shares = zip(*P.EXPOSURE_CLUSTERS, strict=True)
    cluster = rng.choice(len(weights), size=n_posts, p=np.array(shares) / sum(shares))
    exposure = np.array(weights)[cluster] * rng.uniform(0.97, 1.03, n_posts)
    exposure[rng.random(n_posts) < P.UNSHOWN_POST_SHARE] = 0.0
    posts = pd.DataFrame({"post_id": ids.astype(np.int64), "text": texts, "topic": topics})
    world = pd.DataFrame(
        {
            "post_id": ids.astype(np.int64),
            "subtopic": subtopic,
            "quality": rng.normal(0, P.POST_QUALITY_SD, n_posts),
            "exposure": exposure,
        }
    )
    return posts, world
