"""Each user's taste for the catalogue's text clusters, learnt from the interaction log.

A binomial matrix factorisation over users × taste clusters (posts clustered by text within
each topic, ``text.cluster_within_topics``): the like of a view has log-odds

    cluster bias + user bias + user factor · cluster factor,

with a Gaussian prior on the user's terms. ``fit_taste`` fits the cluster terms offline on the
training window's counts; ``fold_in`` estimates a user's terms from that user's views and likes
per cluster strictly before a request (MAP under the same prior, Newton's method): the user
factor of a request never sees an event at or after its time, and a user without history gets
the prior (score 0 everywhere). Pure functions over count matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

FOLD_IN_STEPS = 4  # Newton steps from the prior mean (the log-likelihood is concave)
STEP_LENGTHS = (0.0, 0.5, 1.0)  # tried at each Newton step (0: stay)
FACTOR_RIDGE = 1.0  # L2 on the cluster factors during the fit (counts per cluster are large)


@dataclass(frozen=True)
class TasteModel:
    bias: np.ndarray  # (clusters,) log-odds of a like for an average user
    factors: np.ndarray  # (clusters, rank)
    prior_mean: np.ndarray  # (rank + 1,): the user bias, then the user factor
    prior_precision: np.ndarray  # (rank + 1,) diagonal of the prior's precision

    @property
    def design(self) -> np.ndarray:
        """(clusters, rank + 1): a 1 for the user bias, then the cluster's factor."""
        return np.column_stack([np.ones(len(self.bias)), self.factors])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "bias": self.bias,
            "factors": self.factors,
            "prior_mean": self.prior_mean,
            "prior_precision": self.prior_precision,
        }

    @classmethod
    def from_arrays(cls, arrays) -> TasteModel:
        return cls(
            *(
                np.asarray(arrays[k], dtype=np.float64)
                for k in ("bias", "factors", "prior_mean", "prior_precision")
            )
        )


def fold_in(
    model: TasteModel,
    views: np.ndarray,
    likes: np.ndarray,
    steps: int = FOLD_IN_STEPS,
    start: np.ndarray | None = None,
    *,
    with_covariance: bool = False,
):
    """(requests, rank + 1) MAP user terms from (requests, clusters) view and like counts;
    with ``with_covariance`` also their Laplace posterior covariances (requests, d, d)."""
    views = np.asarray(views, dtype=np.float64)
    likes = np.minimum(np.asarray(likes, dtype=np.float64), views)
    x = model.design
    d = x.shape[1]
    outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), d * d)
    theta = np.tile(model.prior_mean, (len(views), 1)) if start is None else start.copy()
    n = len(theta)
    lengths = np.asarray(STEP_LENGTHS)[1:, None, None]
    diagonal = np.arange(d)
    current = _objective(model, x, views, likes, theta)
    for _ in range(steps):
        p = expit(model.bias + theta @ x.T)
        grad = (likes - views * p) @ x - (theta - model.prior_mean) * model.prior_precision
        hessian = ((views * p * (1.0 - p)) @ outer).reshape(-1, d, d)
        hessian[:, diagonal, diagonal] += model.prior_precision
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        # Safeguarded Newton: the best of a few step lengths, row by row, never a worse point
        # (the trial points of all lengths scored in one pass).
        scores = _objective(model, x, views, likes, theta + lengths * step)  # (lengths, rows)
        candidates = np.vstack([current, scores])
        best = np.argmax(candidates, axis=0)
        theta += np.asarray(STEP_LENGTHS)[best][:, None] * step
        current = candidates[best, np.arange(n)]
    if with_covariance:
        return theta, np.linalg.inv(hessian)
    return theta


def _objective(model: TasteModel, x: np.ndarray, views, likes, theta: np.ndarray) -> np.ndarray:
    """Log-posterior (up to a constant) of each row's user terms (``theta`` may carry leading
    axes of trial points)."""
    eta = model.bias + theta @ x.T
    loglik = (likes * eta - views * np.logaddexp(0.0, eta)).sum(axis=-1)
    return loglik - 0.5 * (((theta - model.prior_mean) ** 2) * model.prior_precision).sum(axis=-1)


def fit_taste(
    views: np.ndarray, likes: np.ndarray, rank: int, seed: int, rounds: int = 12, bias_sd: float = 0.5
) -> TasteModel:
    """Alternate the users' MAP terms (``fold_in``) and the clusters' bias and factors (Newton
    with the users' terms as covariates) on (users, clusters) counts of the training window.

    Empirical Bayes, as in EM: at each round the user bias prior takes the users' mean and
    spread, and the factors are centred (their mean moves into the cluster biases), rotated and
    scaled so that the users' factors (estimates plus posterior covariance) have the identity
    covariance that ``fold_in``'s prior assumes."""
    views = np.asarray(views, dtype=np.float64)
    likes = np.minimum(np.asarray(likes, dtype=np.float64), views)
    n_users, n_clusters = views.shape
    rng = np.random.default_rng(seed)
    rate = (likes.sum(axis=0) + 1.0) / (views.sum(axis=0) + 2.0)
    bias = np.log(rate / (1.0 - rate))
    factors = rng.normal(0.0, 0.1, (n_clusters, rank))
    prior_mean = np.zeros(rank + 1)
    prior_precision = np.r_[1.0 / bias_sd**2, np.ones(rank)]
    theta = np.tile(prior_mean, (n_users, 1))
    d = rank + 1
    for _ in range(rounds):
        model = TasteModel(bias, factors, prior_mean, prior_precision)
        theta, cov = fold_in(model, views, likes, steps=2, start=theta, with_covariance=True)
        posterior = cov.mean(axis=0)
        u = theta[:, 1:] - theta[:, 1:].mean(axis=0)
        chol = np.linalg.cholesky(u.T @ u / n_users + posterior[1:, 1:])  # u's covariance L L'
        bias = bias + factors @ theta[:, 1:].mean(axis=0)  # the mean taste moves into the clusters
        theta[:, 1:] = np.linalg.solve(chol, u.T).T  # identity covariance: the prior of fold_in
        factors = factors @ chol
        prior_mean = np.r_[theta[:, 0].mean(), np.zeros(rank)]
        prior_precision = np.r_[1.0 / max(theta[:, 0].var() + posterior[0, 0], 1e-3), np.ones(rank)]
        z = np.column_stack([np.ones(n_users), theta[:, 1:]])  # covariates of the cluster terms
        outer = (z[:, :, None] * z[:, None, :]).reshape(n_users, d * d)
        for _ in range(2):
            p = expit(theta[:, :1] + bias + theta[:, 1:] @ factors.T)
            beta = np.column_stack([bias, factors])  # (clusters, d)
            ridge = np.r_[0.0, np.full(rank, FACTOR_RIDGE)]
            grad = (likes - views * p).T @ z - beta * ridge
            hessian = ((views * p * (1.0 - p)).T @ outer).reshape(n_clusters, d, d)
            hessian[:, np.arange(d), np.arange(d)] += ridge + 1e-9
            beta = beta + np.linalg.solve(hessian, grad[..., None])[..., 0]
            bias, factors = beta[:, 0], beta[:, 1:]
    return TasteModel(bias, factors, prior_mean, prior_precision)


def counts_by_user(
    user: np.ndarray, group: np.ndarray, n_users: int, n_groups: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """(users, groups) event counts."""
    flat = np.asarray(user, dtype=np.int64) * n_groups + np.asarray(group, dtype=np.int64)
    return np.bincount(flat, weights=weight, minlength=n_users * n_groups).reshape(n_users, n_groups)
