"""Taste factors: the fit recovers planted tastes, fold-in is the prior without history and
follows the user's likes, taste clusters never mix topics."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from gateway.features.taste import TasteModel, counts_by_user, fit_taste, fold_in, fold_in_one
from gateway.features.text import cluster_within_topics


def _planted(seed: int = 0, users: int = 1500, clusters: int = 12, rank: int = 2, views: int = 300):
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, (users, rank))
    v = rng.normal(0, 0.6, (clusters, rank))
    bias = rng.normal(-2, 0.3, clusters)
    n = rng.multinomial(views, np.full(clusters, 1 / clusters), size=users).astype(float)
    likes = rng.binomial(n.astype(int), expit(bias + u @ v.T)).astype(float)
    return u @ v.T, n, likes


def _within_user_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b, strict=True)]))


def test_fit_recovers_planted_tastes():
    truth, views, likes = _planted()
    model = fit_taste(views, likes, rank=2, seed=1)
    theta = fold_in(model, views, likes)
    estimate = theta[:, 1:] @ model.design[:, 1:].T
    assert _within_user_corr(truth, estimate) > 0.8
    # a rank-0 guess (the user's raw like rates) is clearly worse than the factor model
    raw = (likes + 1) / (views + 2)
    assert _within_user_corr(truth, estimate) > _within_user_corr(truth, raw) + 0.05


def test_fold_in_without_history_is_the_prior_and_follows_likes():
    _, views, likes = _planted(seed=2, users=600)
    model = fit_taste(views, likes, rank=2, seed=3)
    empty = np.zeros((1, views.shape[1]))
    np.testing.assert_allclose(fold_in(model, empty, empty)[0], model.prior_mean())
    # Ten views in every cluster; likes in cluster 0 only vs none: cluster 0's score goes up.
    n = np.full((2, views.shape[1]), 10.0)
    liked = np.zeros_like(n)
    liked[0, 0] = 8.0
    theta = fold_in(model, n, liked)
    scores = theta[:, 1:] @ model.design[:, 1:].T
    assert scores[0, 0] > scores[1, 0] + 0.1
    assert TasteModel.from_arrays(model.arrays()).factors.shape == model.factors.shape


def test_counts_by_user():
    counts = counts_by_user(np.array([0, 0, 2]), np.array([1, 1, 0]), 3, 2)
    np.testing.assert_array_equal(counts, [[0, 2], [0, 0], [1, 0]])


def test_taste_clusters_stay_within_topics():
    rng = np.random.default_rng(4)
    words = {
        0: ["goal", "match", "tennis", "serve", "race", "lap"],
        1: ["film", "horror", "laugh", "love", "kiss", "ghost"],
    }
    topics = np.array([0] * 30 + [1] * 30)
    texts = [" ".join(rng.choice(words[t], 8)) for t in topics]
    labels = cluster_within_topics(texts, topics, per_topic=3, dims=4, seed=0)
    assert set(labels[topics == 0]) <= {0, 1, 2} and set(labels[topics == 1]) <= {3, 4, 5}
    assert len(set(labels[topics == 0])) == 3


def _planted_with_side_information(seed: int = 5, users: int = 2000, per_topic: int = 4, topics: int = 3):
    """Likes from a per-user topic offset (shifted by a covariate) and a rank-1 factor."""
    rng = np.random.default_rng(seed)
    clusters = per_topic * topics
    cluster_topic = np.repeat(np.arange(topics), per_topic)
    covariate = rng.choice([0.0, 1.0], users)
    covariates = np.column_stack([np.ones(users), covariate])
    offset = rng.normal(0, 0.4, (users, topics)) + np.outer(covariate, [0.8, 0.0, -0.8])
    u, v = rng.normal(0, 1, users), rng.normal(0, 0.5, clusters)
    taste = offset[:, cluster_topic] + np.outer(u, v)
    n = rng.multinomial(200, np.full(clusters, 1 / clusters), size=users).astype(float)
    likes = rng.binomial(n.astype(int), expit(-2.0 + taste)).astype(float)
    return taste, n, likes, cluster_topic, covariates


def test_topic_offsets_and_the_demographic_prior_are_learnt():
    taste, views, likes, cluster_topic, covariates = _planted_with_side_information()
    model = fit_taste(views, likes, rank=1, seed=1, cluster_topic=cluster_topic, covariates=covariates)
    assert model.design.shape == (len(cluster_topic), 1 + 3 + 1)
    theta = fold_in(model, views, likes, covariates)
    with_offsets = _within_user_corr(taste, theta[:, 1:] @ model.design[:, 1:].T)
    plain = fit_taste(views, likes, rank=1, seed=1)
    without = _within_user_corr(taste, fold_in(plain, views, likes)[:, 1:] @ plain.design[:, 1:].T)
    assert with_offsets > without + 0.05
    # Users without history get their group's prior: the covariate's users like topic 0 more
    # than topic 2, the others less (scores are relative to the average user).
    empty = np.zeros((2, len(cluster_topic)))
    prior = fold_in(model, empty, empty, covariates=np.array([[1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(prior, model.prior_mean(np.array([[1.0, 0.0], [1.0, 1.0]])))
    score = prior[:, 1:] @ model.design[:, 1:].T
    first, last = cluster_topic == 0, cluster_topic == 2
    gap = score[:, first].mean(axis=1) - score[:, last].mean(axis=1)
    assert 1.0 < gap[1] - gap[0] < 2.2  # planted: 1.6
    assert gap[0] < 0.0 < gap[1]


def test_the_one_user_fold_in_equals_the_batch_fold_in():
    taste, views, likes, cluster_topic, covariates = _planted_with_side_information(users=300)
    model = fit_taste(views, likes, rank=1, seed=1, cluster_topic=cluster_topic, covariates=covariates)
    views, likes = views.copy(), likes.copy()
    views[:20], likes[:20] = 0.0, 0.0  # users without history: the prior
    theta, cov = fold_in(model, views, likes, covariates, with_covariance=True)
    for user in range(len(views)):
        one, one_cov = fold_in_one(model, views[user], likes[user], covariates[user])
        np.testing.assert_allclose(one, theta[user], rtol=0, atol=1e-7)
        np.testing.assert_allclose(one_cov, cov[user], rtol=0, atol=1e-7)
    np.testing.assert_allclose(fold_in_one(model, views[0], likes[0])[0], model.prior_mean())
