"""The learnable ceiling: per-user estimates of the truth's user terms from the past only."""

from __future__ import annotations

import numpy as np

from gateway.judging.ceiling import CeilingRanker
from gateway.judging.evaluation import captured_lift
from gateway.storage import connect
from gateway.world.load import load_truth


def test_estimates_beat_the_prior_and_use_only_the_past(tiny_store, tiny_db):
    truth = load_truth(connect(tiny_db))
    ceiling = CeilingRanker(truth, tiny_store)
    end = int(tiny_store.events["seconds"].max()) + 1
    users = np.arange(0, len(tiny_store.user_ids), 5)
    estimates = np.array([ceiling.estimate(int(u), end) for u in users])
    latent = np.column_stack([truth.user_taste, truth.user_z])[ceiling.user_map[users]]
    error = ((estimates[:, 1:] - latent) ** 2).mean()
    prior_error = ((ceiling.prior_mean[users, 1:] - latent) ** 2).mean()
    assert error < 0.9 * prior_error
    # Before the user's first event there is nothing to learn from: the prior.
    user = int(users[0])
    first = int(tiny_store.events["seconds"][tiny_store.events["user"] == user].min())
    np.testing.assert_allclose(ceiling.estimate(user, first), ceiling.prior_mean[user])
    scores = ceiling.score(tiny_store, np.array([user, user]), np.array([first, end]))
    assert scores.shape == (2, len(tiny_store.post_ids)) and np.isfinite(scores).all()


def test_captured_lift():
    shares = captured_lift({"control": 0.8, "test": 0.9, "popularity": 0.7, "oracle": 1.1, "random": 0.5})
    assert shares == {"control": 0.25, "test": 0.5, "random": -0.5}
    assert captured_lift({"control": 0.8}) == {}
