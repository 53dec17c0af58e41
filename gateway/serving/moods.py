"""The gateway's mood encoder and lexicon as configured: built at start-up, and loaded on their
own for ``recsys mood explain`` (how a mood is read) and the encoder's microbenchmark."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.config import Settings
from gateway.features.artifacts import current_store_dir
from gateway.features.mood_encoder import MoodEncoder, load_mood_encoder
from gateway.features.mood_lexicon import Lexicon
from gateway.features.store import FeatureStore
from gateway.serving.state import Catalogue

EXPLAIN_NEAREST = 50  # posts whose topics `explain` counts


def configured_encoder(settings: Settings, store_dir: Path, catalogue: Catalogue) -> MoodEncoder:
    return load_mood_encoder(
        settings.serving.mood_encoder,
        store_dir,
        catalogue.texts,
        catalogue.topic_names,
        catalogue.topic_codes,
    )


@dataclass(frozen=True)
class MoodSetup:
    store: FeatureStore
    catalogue: Catalogue
    encoder: MoodEncoder
    lexicon: Lexicon

    @classmethod
    def load(cls, settings: Settings) -> MoodSetup:
        store_dir = current_store_dir(settings.paths.features_dir)
        store = FeatureStore.load(store_dir, keep_log=False)
        catalogue = Catalogue.load(store_dir, store)
        encoder = configured_encoder(settings, store_dir, catalogue)
        return cls(store, catalogue, encoder, Lexicon.load(settings.serving.mood_lexicon))


def explain_mood(settings: Settings, text: str) -> dict:
    """How ``text`` is read: each typed part with its terms (topic, text word, or unknown), and
    the topics of the posts nearest to it."""
    setup = MoodSetup.load(settings)
    encoder, lexicon = setup.encoder, setup.lexicon
    match = encoder.encode(text, lexicon)
    parts = []
    for part in lexicon.read(text):
        kinds = {
            term: "topic"
            if term in encoder.topic_index
            else "word"
            if encoder.space.knows(term)
            else "unknown"
            for term in part.terms
        }
        parts.append({"typed": part.text, "terms": kinds})
    nearest = np.argsort(-match.similarity, kind="stable")[:EXPLAIN_NEAREST] if match.matched else []
    topics = Counter(setup.catalogue.topics[i] for i in nearest)
    return {
        "mood": text,
        "matched": match.matched,
        "parts": parts,
        "encoder": settings.serving.mood_encoder,
        "lexicon": lexicon.source,
        "nearest_topics": {t: round(c / max(len(nearest), 1), 3) for t, c in topics.most_common()},
    }
