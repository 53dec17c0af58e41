"""The mood encoder: a typed mood → its similarity with every post, and what it understood.

A mood is read by the lexicon (``mood_lexicon.py``) into parts, each with terms. A term that
names a catalogue topic selects that topic's posts ("sport" and "tech" occur in no post text,
yet they are the catalogue's own words); the other known terms are words of the space's
vocabulary, whose cosine with each post the space computes. The mood's similarity is the sum
of the parts present: the word cosine (scaled so that its best post has 1 when both parts are
present) and the topic indicator (1 for a post of a named topic). Mixed with the model's score
by the ranking path (``serving/recommend.py``), a topic leaves the choice within the topic to
the model (the user's taste); words pick the posts that use them.

A typed part none of whose terms is known is reported as ignored; a mood with no known part is
reported unmatched, and its similarity is zero everywhere (the feed is the one without a mood).

The word space is pluggable (``serving.mood_encoder``): ``tfidf``, the posts' TF-IDF in the
feature store's vocabulary and IDF (``text.py: PostTfidf``), or ``vectors:<dir>``, a
deployer's word-vector model (``word_vectors.py``), into which the posts are embedded at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.features.mood_lexicon import Lexicon
from gateway.features.text import PostTfidf
from gateway.features.word_vectors import WordVectors

TFIDF = "tfidf"
MOOD_CACHE = 256  # distinct (mood, lexicon) results kept per encoder: people repeat moods
VECTORS_PREFIX = "vectors:"


class MoodEncoderError(ValueError):
    """``serving.mood_encoder`` names no usable encoder."""


class WordSpace(Protocol):
    def knows(self, word: str) -> bool: ...

    def similarity(self, terms: list[str]) -> np.ndarray | None:
        """A new array: the terms' cosine with every post; None if no term is known."""


@dataclass(frozen=True)
class MoodMatch:
    similarity: np.ndarray  # (posts,) how well each post matches the mood; zeros when unmatched
    matched: bool
    words: tuple[str, ...]  # typed words, phrases or emoji that steer the feed
    ignored: tuple[str, ...]  # typed words or emoji that matched nothing
    topics: tuple[str, ...] = ()  # topic names the mood reached (directly or via the lexicon)
    terms: tuple[str, ...] = ()  # vocabulary words the mood reached

    def as_json(self) -> dict:
        """The response's ``mood`` field."""
        return {"matched": self.matched, "words": list(self.words), "ignored": list(self.ignored)}


class MoodEncoder:
    def __init__(self, space: WordSpace, topic_names: list[str], topic_codes: np.ndarray) -> None:
        self.space = space
        self.topic_index = {name: i for i, name in enumerate(topic_names)}
        codes = np.asarray(topic_codes)
        self.topic_posts = np.stack([(codes == i).astype(np.float64) for i in range(len(topic_names))])
        self._zeros = np.zeros(len(codes), dtype=np.float32)
        self._zeros.flags.writeable = False
        self.encode = lru_cache(maxsize=MOOD_CACHE)(self._encode)

    def knows(self, term: str) -> bool:
        return term in self.topic_index or self.space.knows(term)

    def _encode(self, text: str, lexicon: Lexicon) -> MoodMatch:
        """``encode`` (cached: the result is shared, its array read-only). Raises
        ``MoodTextError`` (plain message) for a mood that has no words at all."""
        words, ignored, topics, terms = [], [], [], []
        for part in lexicon.read(text):
            known = False
            for term in part.terms:
                if term in self.topic_index:
                    topics.append(term)
                    known = True
                elif self.space.knows(term):
                    terms.append(term)
                    known = True
            (words if known else ignored).append(part.text)
        similarity = self.similarity(topics, terms)
        if similarity is not None:
            similarity.flags.writeable = False
        return MoodMatch(
            self._zeros if similarity is None else similarity,
            similarity is not None,
            tuple(words),
            tuple(ignored),
            tuple(dict.fromkeys(topics)),
            tuple(dict.fromkeys(terms)),
        )

    def similarity(self, topics: list[str], terms: list[str]) -> np.ndarray | None:
        """The words' cosine, plus the topic indicator when the mood also names topics (the
        cosine then scaled so that its best post has 1: the two parts weigh alike). Only the
        standardised similarity reaches the ranking, so its overall scale is free."""
        cosine = self.space.similarity(terms) if terms else None
        if cosine is not None and not cosine.max() > 0:
            cosine = None
        if not topics:
            return cosine
        named = sorted({self.topic_index[t] for t in topics})
        indicator = self.topic_posts[named[0]] if len(named) == 1 else self.topic_posts[named].max(axis=0)
        if cosine is None:
            return indicator.copy()
        cosine *= 1.0 / cosine.max()
        cosine += indicator
        return cosine


def load_mood_encoder(
    spec: str, store_dir: Path, texts: Sequence[str], topic_names: list[str], topic_codes: np.ndarray
) -> MoodEncoder:
    """``tfidf``: the posts' TF-IDF in the store's vocabulary (the build's columns, or the texts
    tokenised now for a store without them); ``vectors:<dir>``: a word-vector model directory,
    into which the posts are embedded now, at start-up."""
    if spec == TFIDF:
        space: WordSpace = PostTfidf.load(store_dir, texts)
    elif spec.startswith(VECTORS_PREFIX) and spec[len(VECTORS_PREFIX) :].strip():
        space = WordVectors.load(spec[len(VECTORS_PREFIX) :].strip()).space(texts)
    else:
        raise MoodEncoderError(f"unknown mood encoder {spec!r}: use {TFIDF} or {VECTORS_PREFIX}<directory>")
    return MoodEncoder(space, topic_names, topic_codes)


def check_mood_settings(spec: str, lexicon_path: str | Path | None) -> None:
    """Raise the lexicon's or the word vectors' error before a gateway starts with them."""
    Lexicon.load(lexicon_path)
    if spec.startswith(VECTORS_PREFIX):
        WordVectors.load(spec[len(VECTORS_PREFIX) :].strip())
