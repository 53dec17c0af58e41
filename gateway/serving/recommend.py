"""The recommendation path: assign, score the whole catalogue with the arm's ranker, exclude
posts liked before t, re-rank by mood, filter by topic, take the top ``limit``. No I/O here.

An interleaved request (``assignment.INTERLEAVED``) computes the features once, scores them
with the first two arms' rankers, takes each one's top ``limit`` the same way (exclusion,
mood, topic) and merges them by team draft (``gateway.interleaving``), seeded by the request id.

Mood blend (documented in config.yaml): ``(1 - w) * z(base) + w * z(cosine(mood, post))``,
where ``base`` is the model's log-odds (or, for cold start, log1p of the post's likes before
the request's day), ``z`` standardises over the catalogue and ``w = serving.mood_weight``;
``mood`` is the mood's cosine with every post (``features.mood_encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logit

from gateway.assignment import INTERLEAVED, Assignment, assign
from gateway.features.store import FeatureStore
from gateway.interleaving import interleave
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
    teams: list[str] | None = None  # interleaved: the arm whose team picked each position
    model_versions: dict[str, str] | None = None  # interleaved: each team's model version
    features: dict | None = None  # the request's features and liked-before exclusion, for a shadow
    excluded: list[np.ndarray] | None = None


def interleaved_version(versions: dict[str, str], a: str, b: str) -> str:
    """The ``model_version`` an interleaved request is logged and labelled with."""
    return f"{INTERLEAVED}:{versions[a]}+{versions[b]}"


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
    request_id: str = "",
) -> Recommendation:
    user_idx = int(store.user_index([user_id])[0])
    assignment = assign(snapshot.experiment, user_id)
    features = None
    if user_idx >= 0 and assignment.arm == INTERLEAVED:
        return _interleaved(
            snapshot,
            store,
            catalogue,
            assignment,
            user_idx,
            seconds,
            limit,
            topic,
            mood,
            mood_weight,
            request_id,
        )
    if user_idx < 0:
        if topic is None and mood is None:
            raise UnknownUserError(f"user {user_id} not found; send topic and/or mood for a cold-start feed")
        base = np.log1p(store.popularity_before(np.array([seconds]))[0].astype(np.float64))
        excluded: list[np.ndarray] = [np.array([], dtype=np.int64)]
        version, cold = COLD_START_VERSION, True
    else:
        ranker = snapshot.rankers[assignment.arm]
        features = store.compute(np.array([user_idx]), np.array([seconds]))
        base = log_odds(ranker.score(store, np.array([user_idx]), np.array([seconds]), features)[0])
        excluded = [store.liked_before(user_idx, seconds)]
        version, cold = snapshot.versions[assignment.arm], False
    best = ranked(base, store, catalogue, excluded, limit, topic, mood, mood_weight)
    return Recommendation(assignment, version, best, cold, features=features, excluded=excluded)


def log_odds(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, 1e-9, 1 - 1e-9))


def ranked(
    base: np.ndarray,
    store: FeatureStore,
    catalogue: Catalogue,
    excluded: list[np.ndarray],
    limit: int,
    topic: str | None,
    mood: np.ndarray | None,
    mood_weight: float,
) -> np.ndarray:
    """The top ``limit`` post indices for a base score: mood blend, topic filter, exclusion."""
    scores = base if mood is None else mood_blend(base, mood, mood_weight)
    if topic is not None:
        scores = np.where(catalogue.topic_codes == catalogue.topic_names.index(topic), scores, -np.inf)
    best = top_k(scores[None, :], limit, excluded)[0]
    return best[best >= 0]


def _interleaved(
    snapshot: Snapshot,
    store: FeatureStore,
    catalogue: Catalogue,
    assignment: Assignment,
    user_idx: int,
    seconds: int,
    limit: int,
    topic: str | None,
    mood: np.ndarray | None,
    mood_weight: float,
    request_id: str,
) -> Recommendation:
    """Both teams' top ``limit`` from one feature computation, merged by team draft."""
    a, b = snapshot.experiment.arms[:2]
    users, times = np.array([user_idx]), np.array([seconds])
    features = store.compute(users, times)
    excluded = [store.liked_before(user_idx, seconds)]
    lists = [
        ranked(
            log_odds(snapshot.rankers[arm].score(store, users, times, features)[0]),
            store,
            catalogue,
            excluded,
            limit,
            topic,
            mood,
            mood_weight,
        ).tolist()
        for arm in (a, b)
    ]
    merged = interleave(lists[0], lists[1], limit, request_id)
    return Recommendation(
        assignment,
        interleaved_version(snapshot.versions, a, b),
        np.asarray(merged.items, dtype=np.int64),
        teams=[(a, b)[team] for team in merged.teams],
        model_versions={a: snapshot.versions[a], b: snapshot.versions[b]},
    )
