"""``recsys evaluate``: expected Hitrate@5 under the truth for models and baselines.

Requests (user, time) are sampled from logged views of the held-out period, as the source
checker did. For each ranker the top 5 (never a post liked before t) is judged by the
truth: E[hit] = 1 - prod(1 - p_like). ROC-AUC is measured on held-out logged views.

Ranked as served: with ``serving.candidates`` a number, each request's top 5 is chosen among
its retrieved candidates (the same retriever as the gateway's), and the whole catalogue's top
5 is judged beside it (``hitrate@5_all``) with the share of it the candidates contain
(``candidate_recall``). Features are bit-identical for a post whether computed for the
catalogue or for candidates only, so masking the catalogue's scores is ranking the candidates.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from gateway.config import Settings
from gateway.features.dataset import features_for_views, logged_views, time_split
from gateway.features.retrieval import candidate_recall
from gateway.features.store import FeatureStore
from gateway.judging.ceiling import CeilingRanker
from gateway.judging.oracle import OracleRanker
from gateway.progress import track
from gateway.rankers.baselines import PopularityRanker, RandomRanker
from gateway.rankers.libraries import load_arm_rankers
from gateway.rankers.protocol import Ranker
from gateway.ranking import K, mean_ci95, roc_auc, top_k_expected_hit
from gateway.world.load import load_truth

CHUNK = 50


@dataclass
class EvaluationResult:
    requests: int
    hitrate: dict[str, float]
    ci95: dict[str, list[float]]
    auc: dict[str, float]
    versions: dict[str, str] = field(default_factory=dict)
    window: list[str] = field(default_factory=list)
    topic_hitrate: dict[str, float] = field(default_factory=dict)
    topic_ci95: dict[str, list[float]] = field(default_factory=dict)
    candidates: int | None = None  # serving.candidates; None = the whole catalogue
    retrieval_version: str | None = None
    hitrate_all: dict[str, float] = field(default_factory=dict)  # whole catalogue, same requests
    candidate_recall: dict[str, float] = field(default_factory=dict)
    candidate_count: float | None = None  # mean candidates per request

    @property
    def captured_lift(self) -> dict[str, float]:
        """(ranker − popularity) / (oracle − popularity) of every ranker but the two references."""
        return captured_lift(self.hitrate)

    def as_json(self) -> dict:
        two_stage = (
            {
                "candidates": self.candidates,
                "retrieval_version": self.retrieval_version,
                "candidates_per_request": self.candidate_count,
                "hitrate@5_all": self.hitrate_all,
                "candidate_recall": self.candidate_recall,
            }
            if self.candidates is not None
            else {"candidates": "all"}
        )
        return {
            **two_stage,
            "requests": self.requests,
            "hitrate@5": self.hitrate,
            "captured_lift": self.captured_lift,
            "ci95": self.ci95,
            "auc": self.auc,
            "hitrate@5_topic": self.topic_hitrate,
            "ci95_topic": self.topic_ci95,
            "model_versions": self.versions,
            "evaluation_window": self.window,
        }


def captured_lift(hitrate: dict[str, float]) -> dict[str, float]:
    """Each ranker's share of the oracle's lift over popularity (empty without both)."""
    if "oracle" not in hitrate or "popularity" not in hitrate:
        return {}
    gap = hitrate["oracle"] - hitrate["popularity"]
    if gap <= 0:
        return {}
    return {
        name: round((value - hitrate["popularity"]) / gap, 4)
        for name, value in hitrate.items()
        if name not in ("oracle", "popularity")
    }


def sample_requests(
    store: FeatureStore, window: tuple[int, int], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (user, time) pairs drawn from logged views of the window, with the topic of the
    post being viewed (the topic a topic-filtered request asks for)."""
    views = logged_views(store, window, 10 * n, seed)
    pairs, first = np.unique(np.column_stack([views["user"], views["seconds"]]), axis=0, return_index=True)
    pick = np.sort(np.random.default_rng(seed).choice(len(pairs), min(n, len(pairs)), replace=False))
    topics = store.posts["topic"][views["post"][first[pick]]]
    return pairs[pick, 0].astype(np.int64), pairs[pick, 1].astype(np.int64), topics.astype(np.int64)


def evaluate(
    store: FeatureStore,
    models: dict[str, Ranker],
    oracle: OracleRanker,
    *,
    requests: int,
    seed: int,
    evaluation_days: int,
    validation_days: int,
    dump: Path | None = None,
    auc_views: int = 200_000,
    ceiling: CeilingRanker | None = None,
    candidates: int | None = None,
) -> EvaluationResult:
    split = time_split(store, validation_days, evaluation_days)
    users, seconds, topics = sample_requests(store, split.evaluation, requests, seed)
    rankers: dict[str, Ranker] = {
        **models,
        "random": RandomRanker(seed),
        "popularity": PopularityRanker(),
        "oracle": oracle,
        **({"ceiling": ceiling} if ceiling is not None else {}),
    }
    if candidates is not None and store.retrieval is None:
        raise ValueError(
            "serving.candidates needs the feature store's retrieval index: run `recsys features build`"
        )
    hits: dict[str, list[np.ndarray]] = {name: [] for name in rankers}
    hits_all: dict[str, list[np.ndarray]] = {name: [] for name in rankers}
    recall: dict[str, list[np.ndarray]] = {name: [] for name in rankers}
    sizes: list[int] = []
    topic_hits: dict[str, list[np.ndarray]] = {name: [] for name in rankers if name != "random"}
    writer = None
    dump_file = None
    if dump is not None:
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump_file = dump.open("w", newline="")
        writer = csv.writer(dump_file)
        writer.writerow(["request_id", "user_id", "timestamp", "ranker", "rank", "post_id"])
    try:
        for start in track(range(0, len(users), CHUNK), "evaluating", total=-(-len(users) // CHUNK)):
            u, s = users[start : start + CHUNK], seconds[start : start + CHUNK]
            in_topic = store.posts["topic"][None, :] == topics[start : start + CHUNK, None]
            features = store.compute(u, s)
            truth_p = oracle.like_prob(u, s)
            excluded = store.liked_before_each(u, s)
            served = topic_served = None
            if candidates is not None:
                chunk_topics = topics[start : start + CHUNK]
                served, cand = _candidate_mask(store, u, s, None, excluded, candidates)
                topic_served, _ = _candidate_mask(store, u, s, chunk_topics, excluded, candidates)
                sizes.extend(len(c) for c in cand)
            for name, ranker in rankers.items():
                scores = truth_p if name == "oracle" else ranker.score(store, u, s, features)
                if served is not None:
                    full_best, full_hit = top_k_expected_hit(scores, truth_p, K, excluded)
                    hits_all[name].append(full_hit)
                    recall[name].append(candidate_recall(full_best, cand))
                    scores_served = np.where(served, scores, -np.inf)
                else:
                    scores_served = scores
                best, hit = top_k_expected_hit(scores_served, truth_p, K, excluded)
                hits[name].append(hit)
                if name in topic_hits:  # the same ranking, restricted to the request's topic
                    topic_scores = np.where(in_topic, scores, -np.inf)
                    if topic_served is not None:
                        topic_scores = np.where(topic_served, topic_scores, -np.inf)
                    topic_hits[name].append(top_k_expected_hit(topic_scores, truth_p, K, excluded)[1])
                if writer is not None:
                    for row in range(len(u)):
                        stamp = np.datetime64(int(s[row]), "s").astype(str).replace("T", " ")
                        for rank, post in enumerate(best[row]):
                            if post >= 0:
                                writer.writerow(
                                    [
                                        start + row,
                                        int(store.user_ids[u[row]]),
                                        stamp,
                                        name,
                                        rank + 1,
                                        int(store.post_ids[post]),
                                    ]
                                )
    finally:
        if dump_file is not None:
            dump_file.close()
    hitrate, ci95, topic_rate, topic_ci95 = {}, {}, {}, {}
    for name, parts in hits.items():
        mean, lo, hi = mean_ci95(np.concatenate(parts))
        hitrate[name], ci95[name] = round(mean, 5), [round(lo, 5), round(hi, 5)]
    for name, parts in topic_hits.items():
        mean, lo, hi = mean_ci95(np.concatenate(parts))
        topic_rate[name], topic_ci95[name] = round(mean, 5), [round(lo, 5), round(hi, 5)]
    # ROC-AUC on held-out logged views.
    views = logged_views(store, split.evaluation, auc_views, seed + 7)
    view_features = features_for_views(store, views)
    labels = views["target"]
    auc = {name: round(roc_auc(labels, ranker.predict(view_features)), 5) for name, ranker in models.items()}
    auc["popularity"] = round(roc_auc(labels, view_features["post_ctr"]), 5)
    auc["truth"] = round(
        roc_auc(labels, oracle.like_prob(views["user"], views["seconds"], views["post"][:, None])[:, 0]), 5
    )
    versions = {name: ranker.version for name, ranker in models.items()}
    window = [str(np.datetime64(split.evaluation[0], "s")), str(np.datetime64(split.evaluation[1], "s"))]
    result = EvaluationResult(len(users), hitrate, ci95, auc, versions, window, topic_rate, topic_ci95)
    if candidates is not None:
        result.candidates = candidates
        result.retrieval_version = store.retrieval.version
        result.candidate_count = round(float(np.mean(sizes)), 1)
        result.hitrate_all = {n: round(float(np.concatenate(p).mean()), 5) for n, p in hits_all.items()}
        result.candidate_recall = {
            n: round(float(np.nanmean(np.concatenate(p))), 5) for n, p in recall.items()
        }
    return result


def _candidate_mask(
    store: FeatureStore,
    users: np.ndarray,
    seconds: np.ndarray,
    topics: np.ndarray | None,
    excluded: list[np.ndarray],
    n: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(requests, posts) True on each request's retrieved candidates, and the candidate sets."""
    mask = np.zeros((len(users), len(store.post_ids)), dtype=bool)
    sets = []
    for row, (user, second) in enumerate(zip(users, seconds, strict=True)):
        topic = None if topics is None else int(topics[row])
        posts = store.retrieval.candidates(store, int(user), int(second), n, topic, None, excluded[row]).posts
        mask[row, posts] = True
        sets.append(posts)
    return mask, sets


def evaluate_arms(
    settings: Settings,
    store: FeatureStore,
    engine: Engine | Callable[[], Engine],
    *,
    requests: int,
    seed: int,
    dump: Path | None = None,
) -> EvaluationResult:
    """``evaluate`` every arm of ``settings``'s experiment against the world in ``engine`` (or
    the one a callable returns once the models have loaded: a missing model is reported first)."""
    models = load_arm_rankers(settings.experiment.arms, store.manifest["feature_set_version"])
    truth = load_truth(engine() if callable(engine) else engine)
    return evaluate(
        store,
        models,
        OracleRanker(truth, store),
        ceiling=CeilingRanker(truth, store),
        requests=requests,
        seed=seed,
        dump=dump,
        evaluation_days=settings.training.evaluation_days,
        validation_days=settings.training.validation_days,
        candidates=None if settings.serving.candidates == "all" else int(settings.serving.candidates),
    )
