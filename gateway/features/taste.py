"""Each user's taste for the catalogue's text clusters, learnt from the interaction log.

A binomial matrix factorisation over users × taste clusters (posts clustered by text within
each topic, ``text.cluster_within_topics``) with side information (RLFM, Agarwal & Chen 2009):
the like of a view has log-odds

    cluster bias + user bias + user's offset for the cluster's topic + user factor · cluster factor,

with a Gaussian prior on the user's terms whose mean is a linear function of the user's
demographics (``demographic_covariates``) and whose precision is learnt. ``fit_taste`` fits the
cluster terms and the prior offline on the training window's counts; ``fold_in`` estimates a
user's terms from that user's views and likes per cluster strictly before a request (MAP under
the prior, Newton's method): the user terms of a request never see an event at or after its
time, and a user without history gets the demographic prior mean. Pure functions over count
matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg.lapack import dgesv
from scipy.special import expit

FOLD_IN_STEPS = 4  # Newton steps from the prior mean (the log-likelihood is concave)
STEP_LENGTHS = (0.0, 0.5, 1.0)  # tried at each Newton step (0: stay)
_TRIAL_LENGTHS = np.asarray(STEP_LENGTHS[1:])[:, None]  # the moving ones, as a column
FACTOR_RIDGE = 1.0  # L2 on the cluster factors during the fit (counts per cluster are large)
MIN_PRIOR_VARIANCE = 1e-3


def demographic_covariates(age: np.ndarray, gender: np.ndarray) -> np.ndarray:
    """(users, 4) covariates of the prior mean: 1, age in decades from 30, its square, gender."""
    decades = (np.asarray(age, dtype=np.float64) - 30.0) / 10.0
    return np.column_stack([np.ones(len(decades)), decades, decades**2, np.asarray(gender, dtype=np.float64)])


@dataclass(frozen=True)
class TasteModel:
    bias: np.ndarray  # (clusters,) log-odds of a like for an average user
    factors: np.ndarray  # (clusters, rank)
    cluster_topic: np.ndarray  # (clusters,) topic of each cluster
    prior_coef: np.ndarray  # (covariates, terms): prior mean = covariates @ prior_coef
    prior_precision: np.ndarray  # (terms,) diagonal of the prior's precision
    covariate_mean: np.ndarray  # (covariates,): the covariates of a user the store does not know

    @property
    def n_topics(self) -> int:
        return int(self.cluster_topic.max()) + 1

    @cached_property
    def design(self) -> np.ndarray:
        """(clusters, terms): a 1 for the user bias, the cluster's topic one-hot for the user's
        topic offsets, then the cluster's factor (built once per model, read-only)."""
        topic = self.cluster_topic.astype(np.int64)
        design = np.column_stack([np.ones(len(self.bias)), np.eye(self.n_topics)[topic], self.factors])
        design.setflags(write=False)
        return design

    @cached_property
    def design_t(self) -> np.ndarray:
        """``design`` transposed, contiguous (a one-user fold-in multiplies by it)."""
        transposed = np.ascontiguousarray(self.design.T)
        transposed.setflags(write=False)
        return transposed

    def prior_mean(self, covariates: np.ndarray | None = None) -> np.ndarray:
        """(users, terms) prior means; (terms,) for the average user without covariates."""
        return (self.covariate_mean if covariates is None else covariates) @ self.prior_coef

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in _ARRAYS}

    @classmethod
    def from_arrays(cls, arrays) -> TasteModel:
        return cls(*(np.asarray(arrays[k], dtype=np.float64) for k in _ARRAYS))


_ARRAYS = ("bias", "factors", "cluster_topic", "prior_coef", "prior_precision", "covariate_mean")


def fold_in(
    model: TasteModel,
    views: np.ndarray,
    likes: np.ndarray,
    covariates: np.ndarray | None = None,
    steps: int = FOLD_IN_STEPS,
    start: np.ndarray | None = None,
    *,
    with_covariance: bool = False,
):
    """(requests, terms) MAP user terms from (requests, clusters) view and like counts and the
    users' (requests, covariates) demographics (None: the average user's); with
    ``with_covariance`` also their Laplace posterior covariances (requests, terms, terms)."""
    views = np.asarray(views, dtype=np.float64)
    likes = np.minimum(np.asarray(likes, dtype=np.float64), views)
    x = model.design
    d = x.shape[1]
    mean = np.broadcast_to(model.prior_mean(covariates), (len(views), d))
    outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), d * d)
    theta = mean.copy() if start is None else start.copy()
    n = len(theta)
    lengths = np.asarray(STEP_LENGTHS)[1:, None, None]
    diagonal = np.arange(d)
    current = _objective(model, x.T, mean, views, likes, theta)
    hessian = np.broadcast_to(np.diag(model.prior_precision), (n, d, d))
    for _ in range(steps):
        p = expit(model.bias + theta @ x.T)
        grad = (likes - views * p) @ x - (theta - mean) * model.prior_precision
        hessian = ((views * p * (1.0 - p)) @ outer).reshape(-1, d, d)
        hessian[:, diagonal, diagonal] += model.prior_precision
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        # Safeguarded Newton: the best of a few step lengths, row by row, never a worse point
        # (the trial points of all lengths scored in one pass).
        scores = _objective(model, x.T, mean, views, likes, theta + lengths * step)  # (lengths, rows)
        candidates = np.vstack([current, scores])
        best = np.argmax(candidates, axis=0)
        theta += np.asarray(STEP_LENGTHS)[best][:, None] * step
        current = candidates[best, np.arange(n)]
    if with_covariance:
        return theta, np.linalg.inv(hessian)
    return theta


def fold_in_one(
    model: TasteModel, views: np.ndarray, likes: np.ndarray, covariates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``fold_in`` of one user with its covariance: (terms,) MAP terms and (terms, terms) Laplace
    covariance. The same Newton steps and step-length choice as ``fold_in``, on 1-d arrays and
    with LAPACK's solver called directly: a serving request folds in one user, where the cost
    of each numpy call, not the arithmetic, is the price (``tests/features/test_taste.py``
    checks the values against ``fold_in``'s)."""
    views = np.asarray(views, dtype=np.float64)
    likes = np.minimum(np.asarray(likes, dtype=np.float64), views)
    x, xt, bias, precision = model.design, model.design_t, model.bias, model.prior_precision
    mean = model.prior_mean(covariates)
    theta = mean.copy()
    current = float(_objective(model, xt, mean, views, likes, theta))
    hessian = np.diag(precision)
    diagonal = slice(None, None, len(theta) + 1)
    for _ in range(FOLD_IN_STEPS):
        p = expit(bias + theta @ xt)
        grad = (likes - views * p) @ x - (theta - mean) * precision
        hessian = (xt * (views * p * (1.0 - p))) @ x
        hessian.flat[diagonal] += precision
        step = _solve(hessian, grad)
        scores = _objective(model, xt, mean, views, likes, theta + _TRIAL_LENGTHS * step)
        best = int(scores.argmax())
        if scores[best] > current:
            theta = theta + STEP_LENGTHS[1 + best] * step
            current = float(scores[best])
    return theta, _solve(hessian, np.eye(len(theta)))



def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.solve`` (LAPACK's gesv) without numpy's checks and conversions around it."""
    _, _, solution, info = dgesv(a, b)
    if info:
        raise np.linalg.LinAlgError("singular matrix")
    return solution


def _objective(model: TasteModel, xt: np.ndarray, mean: np.ndarray, views, likes, theta: np.ndarray) -> np.ndarray:
    """Log-posterior (up to a constant) of each row's user terms (``theta`` may carry leading
    axes of trial points); ``xt`` is the design transposed."""
    eta = model.bias + theta @ xt
    loglik = (likes * eta - views * np.logaddexp(0.0, eta)).sum(axis=-1)
    return loglik - 0.5 * (((theta - mean) ** 2) * model.prior_precision).sum(axis=-1)


def fit_taste(
    views: np.ndarray,
    likes: np.ndarray,
    rank: int,
    seed: int,
    cluster_topic: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
    rounds: int = 12,
) -> TasteModel:
    """Alternate the users' MAP terms (``fold_in``) and the clusters' bias and factors (Newton
    with the users' terms as covariates) on (users, clusters) counts of the training window.

    Empirical Bayes, as in EM: at each round the prior's mean is the regression of the users'
    terms on their covariates and its variances the residual spread (plus the posterior's); the
    mean topic offsets and factors move into the cluster biases, and the factors are rotated and
    scaled so that the users' factors have the identity covariance. Without ``cluster_topic``
    every cluster is of one topic; without ``covariates`` every user has only an intercept."""
    views = np.asarray(views, dtype=np.float64)
    likes = np.minimum(np.asarray(likes, dtype=np.float64), views)
    n_users, n_clusters = views.shape
    cluster_topic = np.zeros(n_clusters) if cluster_topic is None else np.asarray(cluster_topic, dtype=np.float64)
    covariates = np.ones((n_users, 1)) if covariates is None else np.asarray(covariates, dtype=np.float64)
    rng = np.random.default_rng(seed)
    rate = (likes.sum(axis=0) + 1.0) / (views.sum(axis=0) + 2.0)
    bias = np.log(rate / (1.0 - rate))
    factors = rng.normal(0.0, 0.1, (n_clusters, rank))
    n_topics = int(cluster_topic.max()) + 1
    topic = cluster_topic.astype(np.int64)
    offsets, latent = slice(1, 1 + n_topics), slice(1 + n_topics, None)
    d = 1 + n_topics + rank
    coef = np.zeros((covariates.shape[1], d))
    precision = np.r_[4.0, np.full(n_topics, 10.0), np.ones(rank)]
    covariate_mean = covariates.mean(axis=0)
    theta = np.tile(coef[0], (n_users, 1))
    for _ in range(rounds):
        model = TasteModel(bias, factors, cluster_topic, coef, precision, covariate_mean)
        theta, cov = fold_in(model, views, likes, covariates, steps=2, start=theta, with_covariance=True)
        posterior = cov.mean(axis=0)
        # The mean topic offsets and factors move into the clusters' biases.
        shift = theta[:, offsets].mean(axis=0)
        bias = bias + shift[topic] + factors @ theta[:, latent].mean(axis=0)
        theta[:, offsets] -= shift
        u = theta[:, latent] - theta[:, latent].mean(axis=0)
        chol = np.linalg.cholesky(u.T @ u / n_users + posterior[latent, latent])  # u's covariance L L'
        theta[:, latent] = np.linalg.solve(chol, u.T).T  # identity covariance
        factors = factors @ chol
        posterior_var = np.diag(posterior).copy()
        posterior_var[latent] = np.diag(np.linalg.solve(chol, np.linalg.solve(chol, posterior[latent, latent]).T))
        coef, *_ = np.linalg.lstsq(covariates, theta, rcond=None)
        residual = theta - covariates @ coef
        precision = 1.0 / np.maximum(residual.var(axis=0) + posterior_var, MIN_PRIOR_VARIANCE)
        # The clusters' bias and factors, the users' terms as covariates.
        fixed = theta[:, :1] + theta[:, offsets][:, topic]  # (users, clusters)
        z = np.column_stack([np.ones(n_users), theta[:, latent]])
        outer = (z[:, :, None] * z[:, None, :]).reshape(n_users, (rank + 1) ** 2)
        ridge = np.r_[0.0, np.full(rank, FACTOR_RIDGE)]
        for _ in range(2):
            p = expit(fixed + bias + theta[:, latent] @ factors.T)
            beta = np.column_stack([bias, factors])  # (clusters, rank + 1)
            grad = (likes - views * p).T @ z - beta * ridge
            hessian = ((views * p * (1.0 - p)).T @ outer).reshape(n_clusters, rank + 1, rank + 1)
            hessian[:, np.arange(rank + 1), np.arange(rank + 1)] += ridge + 1e-9
            beta = beta + np.linalg.solve(hessian, grad[..., None])[..., 0]
            bias, factors = beta[:, 0], beta[:, 1:]
    return TasteModel(bias, factors, cluster_topic, coef, precision, covariate_mean)


def counts_by_user(
    user: np.ndarray, group: np.ndarray, n_users: int, n_groups: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """(users, groups) event counts."""
    flat = np.asarray(user, dtype=np.int64) * n_groups + np.asarray(group, dtype=np.int64)
    return np.bincount(flat, weights=weight, minlength=n_users * n_groups).reshape(n_users, n_groups)
