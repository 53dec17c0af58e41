"""The recommendation path: assign, score the whole catalogue with the arm's ranker, exclude
posts liked before t, filter by topic, take the top ``limit``. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.assignment import Assignment, assign
from gateway.features.online import FeatureStore
from gateway.metrics import top_k
from gateway.serving.state import Catalogue, Snapshot


class UnknownUserError(LookupError):
    pass


@dataclass(frozen=True)
class Recommendation:
    assignment: Assignment
    model_version: str
    post_idx: np.ndarray


def recommend(
    snapshot: Snapshot,
    store: FeatureStore,
    catalogue: Catalogue,
    user_id: int,
    seconds: int,
    limit: int,
    topic: str | None = None,
) -> Recommendation:
    user_idx = int(store.user_index([user_id])[0])
    if user_idx < 0:
        raise UnknownUserError(f"user {user_id} not found")
    assignment = assign(snapshot.experiment, user_id)
    ranker = snapshot.rankers[assignment.arm]
    scores = ranker.score(store, np.array([user_idx]), np.array([seconds]))
    excluded = [store.liked_before(user_idx, seconds)]
    if topic is not None:
        code = catalogue.topic_names.index(topic)
        scores = np.where(catalogue.topic_codes == code, scores, -np.inf)
    best = top_k(scores, limit, excluded)[0]
    best = best[best >= 0]
    return Recommendation(assignment, snapshot.versions[assignment.arm], best)
