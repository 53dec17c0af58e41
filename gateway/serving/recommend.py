"""The recommendation path: assign, score the whole catalogue with the arm's ranker, exclude
posts liked before t, re-rank by mood, filter by topic, take the top ``limit``. No I/O here.

Mood blend (documented in config.yaml): ``(1 - w) * z(base) + w * z(cosine(mood, post))``,
where ``base`` is the model's log-odds (or, for cold start, log1p of the post's likes before
the request's day), ``z`` standardises over the catalogue and ``w = serving.mood_weight``;
``mood`` is the mood's cosine with every post (``features.mood_encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logit

from gateway.assignment import Assignment, assign
from gateway.features.store import FeatureStore
from gateway.ranking import top_k
from gateway.serving.state import Catalogue, Snapshot

COLD_START_VERSION = "cold-start-popularity-1"


class UnknownUserError(LookupError):
    pass


@dataclass(frozen=True)
class Recommendation:
    assignment: Assignment
    model_version: str
    post_idx: np.ndarray
    cold_start: bool = False


def _z(values: np.ndarray) -> np.ndarray:
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


def mood_blend(base: np.ndarray, similarity: np.ndarray, weight: float) -> np.ndarray:
    """Blend a ranking score with the mood similarity on a common (standardised) scale."""
    return (1.0 - weight) * _z(np.asarray(base, dtype=np.float64)) + weight * _z(
        np.asarray(similarity, dtype=np.float64)
    )


def recommend(
    snapshot: Snapshot,
    store: FeatureStore,
    catalogue: Catalogue,
    user_id: int,
    seconds: int,
    limit: int,
    topic: str | None = None,
    mood: np.ndarray | None = None,
    mood_weight: float = 0.5,
) -> Recommendation:
    user_idx = int(store.user_index([user_id])[0])
    assignment = assign(snapshot.experiment, user_id)
    if user_idx < 0:
        if topic is None and mood is None:
            raise UnknownUserError(f"user {user_id} not found; send topic and/or mood for a cold-start feed")
        base = np.log1p(store.popularity_before(np.array([seconds]))[0].astype(np.float64))
        excluded: list[np.ndarray] = [np.array([], dtype=np.int64)]
        version, cold = COLD_START_VERSION, True
    else:
        ranker = snapshot.rankers[assignment.arm]
        p = ranker.score(store, np.array([user_idx]), np.array([seconds]))[0]
        base = logit(np.clip(p, 1e-9, 1 - 1e-9))
        excluded = [store.liked_before(user_idx, seconds)]
        version, cold = snapshot.versions[assignment.arm], False
    scores = base if mood is None else mood_blend(base, mood, mood_weight)
    if topic is not None:
        scores = np.where(catalogue.topic_codes == catalogue.topic_names.index(topic), scores, -np.inf)
    best = top_k(scores[None, :], limit, excluded)[0]
    return Recommendation(assignment, version, best[best >= 0], cold)
