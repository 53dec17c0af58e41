"""The learnable ceiling (judging only): the truth's own formula with every user-level latent
term replaced by its estimate from that user's logged history before the request.

The oracle knows each user's propensity, topic tastes and latent taste vector ``z``; no model
can. Here they are estimated per request, as a Bayesian would who knew the truth's form and its
priors but only the user's past: a MAP logistic regression on the user's views whose outcome is
known at the request time (views at least a minute before it: a like follows its view by
30-60 s), with the post and time terms known, and the truth's priors on the user terms: the
user's constant (demographics + propensity) N(the users' mean, their variance); topic tastes
and ``z`` jointly normal around their regression on age and gender, with the residual
covariance (both fitted on the world's users). The user-day mood is left out of the fit (noise
around the user's terms; a ranking within a request does not depend on it).

Ranking by this estimate tells how much of the oracle's lift the logged data supports: an arm far
below it lacks features, an arm near it lacks data.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from gateway.features.store import FeatureStore
from gateway.judging.oracle import OracleRanker
from gateway.world.truth import Truth, time_effects

NEWTON_STEPS = 12
RESOLVED_SECONDS = 60  # a view's like comes 30-60 s later: older views have a known outcome


class CeilingRanker(OracleRanker):
    """The oracle's id mapping and truth; scores from the estimated user terms instead."""

    name = "ceiling"
    version = "ceiling-1"

    def __init__(self, truth: Truth, store: FeatureStore) -> None:
        super().__init__(truth, store)
        events = store.events
        order = np.lexsort((events["seconds"], events["user"]))
        self.events = {k: np.asarray(events[k])[order] for k in ("user", "post", "seconds", "like", "target")}
        self.starts = np.searchsorted(self.events["user"], np.arange(len(store.user_ids) + 1))
        # The priors: the users' constant, and tastes + z around their demographic regression.
        users = self.user_map
        base = truth.user_base[users]
        demo = np.column_stack(
            [
                np.ones(len(users)),
                (store.users["age"].astype(np.float64) - 27.0) / 10.0,
                store.users["gender"].astype(np.float64),
            ]
        )
        latent = np.column_stack([truth.user_taste[users], truth.user_z[users]])
        loading, *_ = np.linalg.lstsq(demo, latent, rcond=None)
        residual = latent - demo @ loading
        self.prior_mean = np.column_stack([np.full(len(users), base.mean()), demo @ loading])
        size = 1 + latent.shape[1]
        self.prior_precision = np.zeros((size, size))
        self.prior_precision[0, 0] = 1.0 / base.var()
        self.prior_precision[1:, 1:] = np.linalg.inv(np.atleast_2d(np.cov(residual.T)))
        topics = truth.post_topic[self.post_map]
        n_topics = truth.user_taste.shape[1]
        # Per post: the design of the user terms, and the known post terms.
        self.design = np.column_stack(
            [
                np.ones(len(topics)),
                np.eye(n_topics)[topics],
                truth.subtopic_w[truth.post_subtopic[self.post_map]],
            ]
        )
        self.post_known = truth.topic_effect[topics] + truth.post_quality[self.post_map]
        self.topics = topics

    def estimate(self, user_idx: int, seconds: int) -> np.ndarray:
        """MAP user terms (constant, topic tastes, z) of one user from the views before t."""
        ev = self.events
        lo, hi = self.starts[user_idx], self.starts[user_idx + 1]
        t_ev, like, post = ev["seconds"][lo:hi], ev["like"][lo:hi], ev["post"][lo:hi]
        seen = (~like) & (t_ev < seconds - RESOLVED_SECONDS)
        first_like: dict[int, int] = {}
        for p, t in zip(post[like].tolist(), t_ev[like].tolist(), strict=True):
            first_like.setdefault(p, t)
        v_post, v_time = post[seen], t_ev[seen]
        liked_earlier = np.array(
            [first_like.get(p, 1 << 62) < t for p, t in zip(v_post.tolist(), v_time.tolist(), strict=True)],
            dtype=bool,
        )
        offset = self._offset(v_post, v_time) + self.truth.liked_effect * liked_earlier
        x = self.design[v_post]
        y = ev["target"][lo:hi][seen].astype(np.float64)
        mean, precision = self.prior_mean[user_idx], self.prior_precision
        theta = mean.copy()
        for _ in range(NEWTON_STEPS):
            p = expit(offset + x @ theta)
            grad = x.T @ (y - p) - precision @ (theta - mean)
            hessian = (x * (p * (1 - p))[:, None]).T @ x + precision
            theta = theta + np.linalg.solve(hessian, grad)
        return theta

    def _offset(self, post: np.ndarray, seconds) -> np.ndarray:
        """The known terms: intercept, time, topic, topic × hour, post quality."""
        hours, _, time_effect = time_effects(np.asarray(seconds), self.truth.hour_effect, self.truth.rise)
        return (
            self.truth.intercept
            + time_effect
            + self.post_known[post]
            + self.truth.topic_hour[self.topics[post], hours]
        )

    def score(self, store, user_idx, seconds, features=None) -> np.ndarray:
        """(requests, posts) log-odds under the estimated user terms (the mood left out)."""
        posts = np.arange(len(self.post_map))
        rows = []
        for u, t in zip(np.asarray(user_idx).tolist(), np.asarray(seconds).tolist(), strict=True):
            theta = self.estimate(u, t)
            rows.append(self._offset(posts, np.full(len(posts), t)) + self.design @ theta)
        return np.vstack(rows)
