"""The recommendation path: assign, retrieve candidates (``serving.candidates``; ``all`` = the
whole catalogue), score them with the arm's ranker, exclude posts liked before t, re-rank by
mood, filter by topic, take the top ``limit``. No I/O here.

Two stages: the candidate set comes from the feature store's retriever
(``features/retrieval.py``), the same for every arm; only the candidates' features are
computed and scored. With ``all`` the path is exactly the single-stage one.

An interleaved request (``assignment.INTERLEAVED``) computes the features once, scores them
with the first two arms' rankers over one shared candidate set, takes each one's top ``limit``
the same way (exclusion, mood, topic) and merges them by team draft (``gateway.interleaving``), seeded by the request id.

Mood blend (documented in config.yaml): ``(1 - w) * z(base) + w * z(cosine(mood, post))``,
where ``base`` is the model's log-odds (or, for cold start, log1p of the post's likes before
the request's day), ``z`` standardises over the catalogue (the base score: over the candidates
in two-stage serving) and ``w = serving.mood_weight``;
``mood`` is the mood's cosine with every post (``features.mood_encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logit

from gateway.assignment import INTERLEAVED, Assignment, assign
from gateway.features.retrieval import Candidates
from gateway.features.store import FeatureStore
from gateway.interleaving import interleave
from gateway.ranking import found_in_sorted, top_k
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
    candidates: np.ndarray | None = None  # the retrieved post indices the features are for (None: all)
    retrieval_version: str | None = None


def interleaved_version(versions: dict[str, str], a: str, b: str) -> str:
    """The ``model_version`` an interleaved request is logged and labelled with."""
    return f"{INTERLEAVED}:{versions[a]}+{versions[b]}"


def _z(values: np.ndarray) -> np.ndarray:
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


def mood_blend(
    base: np.ndarray, similarity: np.ndarray, weight: float, among: np.ndarray | None = None
) -> np.ndarray:
    """Blend a ranking score with the mood similarity on a common (standardised) scale.

    With ``among`` (candidate post indices), ``base`` scores those posts only and the mood's
    similarity is standardised over the whole catalogue as in single-stage serving: candidates
    are chosen partly *for* the mood, so its spread among them would understate it."""
    similarity = np.asarray(similarity, dtype=np.float64)
    mood_z = _z(similarity) if among is None else _z_of(similarity[among], similarity)
    return (1.0 - weight) * _z(np.asarray(base, dtype=np.float64)) + weight * mood_z


def _z_of(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    sd = reference.std()
    return (values - reference.mean()) / sd if sd > 0 else np.zeros_like(values)


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
    user_idx = store.user_position(user_id)
    assignment = assign(snapshot.experiment, user_id)
    if user_idx < 0 and topic is None and mood is None:
        raise UnknownUserError(f"user {user_id} not found; send topic and/or mood for a cold-start feed")
    excluded = [store.liked_before(user_idx, seconds) if user_idx >= 0 else np.array([], dtype=np.int64)]
    cand = retrieve(snapshot, store, catalogue, user_idx, seconds, topic, mood, excluded[0])
    posts = cand.posts if cand is not None else None
    history = cand.history if cand is not None else None
    taste = cand.taste if cand is not None else None
    retrieval_version = store.retrieval.version if cand is not None and store.retrieval else None
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
            excluded,
            posts,
            retrieval_version,
            history,
            taste,
        )
    features = None
    if user_idx < 0:
        likes = store.popularity_before(np.array([seconds]))[0]
        base = np.log1p((likes if posts is None else likes[posts]).astype(np.float64))
        version, cold = COLD_START_VERSION, True
    else:
        ranker = snapshot.rankers[assignment.arm]
        features, scores = score_request(ranker, store, user_idx, seconds, posts, history=history, taste=taste)
        base = log_odds(scores)
        version, cold = snapshot.versions[assignment.arm], False
    best = ranked(base, store, catalogue, excluded, limit, topic, mood, mood_weight, posts)
    return Recommendation(
        assignment,
        version,
        best,
        cold,
        features=features,
        excluded=excluded,
        candidates=posts,
        retrieval_version=retrieval_version,
    )


def retrieve(
    snapshot: Snapshot,
    store: FeatureStore,
    catalogue: Catalogue,
    user_idx: int,
    seconds: int,
    topic: str | None,
    mood: np.ndarray | None,
    excluded: np.ndarray,
) -> Candidates | None:
    """The request's candidate set; None when the snapshot ranks the whole catalogue."""
    if snapshot.candidates is None or store.retrieval is None:
        return None
    topic_code = catalogue.topic_names.index(topic) if topic is not None else None
    return store.retrieval.candidates(
        store, user_idx, seconds, snapshot.candidates, topic_code, mood, excluded
    )


def score_request(
    ranker,
    store: FeatureStore,
    user_idx: int,
    seconds: int,
    posts: np.ndarray | None,
    features=None,
    history: dict | None = None,
    taste=None,
) -> tuple[dict, np.ndarray]:
    """The request's features (computed unless given) and the ranker's scores: over the whole
    catalogue (``posts`` None) or over the candidate posts only (the same values for them);
    ``history`` and ``taste`` are the store's history and taste terms of the request, when
    retrieval has read them."""
    users, times = np.array([user_idx]), np.array([seconds])
    if posts is None:
        features = features if features is not None else store.compute(users, times)
        return features, ranker.score(store, users, times, features)[0]
    if features is None:
        features = store.compute(users, times, np.zeros(len(posts), dtype=np.int64), posts, history, taste)
    return features, np.asarray(ranker.predict(features), dtype=np.float64)


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
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """The top ``limit`` post indices for a base score: mood blend, topic filter, exclusion.

    ``base`` scores the whole catalogue, or, with ``candidates`` (sorted post indices), those
    posts in that order; ties go to the lower post index either way."""
    if candidates is None:
        scores = base if mood is None else mood_blend(base, mood, mood_weight)
        if topic is not None:
            scores = np.where(catalogue.topic_codes == catalogue.topic_names.index(topic), scores, -np.inf)
        best = top_k(scores[None, :], limit, excluded)[0]
        return best[best >= 0]
    scores = base if mood is None else mood_blend(base, mood, mood_weight, among=candidates)
    if topic is not None:
        in_topic = catalogue.topic_codes[candidates] == catalogue.topic_names.index(topic)
        scores = np.where(in_topic, scores, -np.inf)
    local_excluded = [found_in_sorted(candidates, items) for items in excluded]
    best = top_k(np.asarray(scores)[None, :], limit, local_excluded)[0]
    return candidates[best[best >= 0]]


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
    excluded: list[np.ndarray],
    posts: np.ndarray | None,
    retrieval_version: str | None,
    history: dict | None,
    taste=None,
) -> Recommendation:
    """Both teams' top ``limit`` over one shared candidate set and one feature computation,
    merged by team draft."""
    a, b = snapshot.experiment.arms[:2]
    features, lists = None, []
    for arm in (a, b):
        features, scores = score_request(
            snapshot.rankers[arm], store, user_idx, seconds, posts, features, history, taste
        )
        lists.append(
            ranked(
                log_odds(scores), store, catalogue, excluded, limit, topic, mood, mood_weight, posts
            ).tolist()
        )
    merged = interleave(lists[0], lists[1], limit, request_id)
    return Recommendation(
        assignment,
        interleaved_version(snapshot.versions, a, b),
        np.asarray(merged.items, dtype=np.int64),
        teams=[(a, b)[team] for team in merged.teams],
        model_versions={a: snapshot.versions[a], b: snapshot.versions[b]},
        candidates=posts,
        retrieval_version=retrieval_version,
    )
