"""Per-arm sufficient statistics, in the manner of GrowthBook's gbstats (``models/statistics.py``).

Pure: numbers in, numbers out; numpy only, no pandas, no I/O. The unit of randomisation is
the user. Hitrate@5 per request is a **ratio metric** — sum of hits / sum of requests over
users — whose variance comes from the delta method on per-user sums, which respects the
correlation of requests from one user.

Every statistic here exposes the same small interface, which the tests in ``effects.py``,
``frequentist.py`` and ``sequential.py`` use without knowing the type:

* ``n``, ``mean`` (the estimand; CUPED-adjusted where that applies) and ``unadjusted_mean``;
* ``moments``: the per-unit means the estimand is a function of, and ``covariance_matrix``:
  their per-unit (ddof = 1) covariance;
* ``gradient`` and ``unadjusted_gradient``: the derivative of ``mean`` and of
  ``unadjusted_mean`` with respect to ``moments`` (the delta method's linearisation);
* ``variance``: the per-unit variance of the estimand, ``gradient' Λ gradient``.

**Zero variance.** A variance computed from sums is a difference of large terms, so a variance
that is mathematically zero (every user at the same hit rate) comes out as ±1e-17, and a
positive one would give a standard error near zero and a false winner. Every ``variance``
is therefore returned as exactly ``0.0`` unless it is clearly positive: above
``CANCELLATION_TOLERANCE`` times the size of the terms it was computed from. gbstats only
tests ``variance <= 0``; this differs only for a variance within rounding of zero, where
float sums cannot tell its sign anyway.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

import numpy as np

CANCELLATION_TOLERANCE = 1e-10
"""A variance at most this fraction of the magnitude of its terms is rounding noise: zero."""

THETA_ZERO = 1e-8
"""|theta| below this is no adjustment (gbstats ``create_theta_adjusted_statistics``)."""


def clean_variance(value: float, scale: float) -> float:
    """``value`` if it is clearly positive relative to ``scale`` (its terms' magnitude), else 0.0."""
    value, scale = float(value), float(abs(scale))
    if not np.isfinite(value) or value <= CANCELLATION_TOLERANCE * scale:
        return 0.0
    return value


def covariance(n: int, sum_a: float, sum_b: float, sum_of_products: float) -> float:
    """Sample covariance (ddof = 1) of two per-unit quantities from their sums (gbstats ``compute_covariance``)."""
    if n <= 1:
        return 0.0
    return (sum_of_products - sum_a * sum_b / n) / (n - 1)


def quadratic_form(gradient: np.ndarray, matrix: np.ndarray) -> float:
    """``g' Λ g`` with the zero-variance guard: compared with ``|g|' |Λ| |g|``."""
    value = float(gradient @ matrix @ gradient)
    scale = float(np.abs(gradient) @ np.abs(matrix) @ np.abs(gradient))
    return clean_variance(value, scale)


def _covariance_matrix(n: int, sums: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Per-unit covariance of several quantities from their sums and the matrix of product sums."""
    if n <= 1:
        return np.zeros_like(products)
    return (products - np.outer(sums, sums) / n) / (n - 1)


@dataclass(frozen=True)
class SampleMeanStatistic:
    """One per-unit value x: n, Σx, Σx² (gbstats ``SampleMeanStatistic``)."""

    n: int
    sum: float
    sum_squares: float

    @classmethod
    def from_values(cls, values) -> SampleMeanStatistic:
        x = np.asarray(values, dtype=float)
        return cls(len(x), float(x.sum()), float((x**2).sum()))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    unadjusted_mean = mean

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return clean_variance(
            (self.sum_squares - self.sum**2 / self.n) / (self.n - 1), self.sum_squares / (self.n - 1)
        )

    @property
    def moments(self) -> np.ndarray:
        return np.array([self.mean])

    @property
    def covariance_matrix(self) -> np.ndarray:
        return np.array([[self.variance]])

    @property
    def gradient(self) -> np.ndarray:
        return np.array([1.0])

    unadjusted_gradient = gradient

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )


@dataclass(frozen=True)
class RatioStatistic:
    """Per-unit numerator m (hits) and denominator d (requests) with their cross product.

    The estimand is Σm / Σd; its per-unit variance is the delta method's (gbstats
    ``RatioStatistic``, ``utils.variance_of_ratios``).
    """

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    m_d_sum_of_products: float

    @classmethod
    def from_values(cls, m, d) -> RatioStatistic:
        m, d = np.asarray(m, dtype=float), np.asarray(d, dtype=float)
        return cls(
            len(m),
            float(m.sum()),
            float((m**2).sum()),
            float(d.sum()),
            float((d**2).sum()),
            float((m * d).sum()),
        )

    @property
    def m(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.m_sum, self.m_sum_squares)

    @property
    def d(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.d_sum, self.d_sum_squares)

    @property
    def mean(self) -> float:
        return self.m_sum / self.d_sum if self.d_sum else 0.0

    unadjusted_mean = mean

    @property
    def covariance(self) -> float:
        """Per-unit covariance of m and d."""
        return covariance(self.n, self.m_sum, self.d_sum, self.m_d_sum_of_products)

    @property
    def moments(self) -> np.ndarray:
        return np.array([self.m.mean, self.d.mean])

    @property
    def covariance_matrix(self) -> np.ndarray:
        sums = np.array([self.m_sum, self.d_sum])
        products = np.array(
            [[self.m_sum_squares, self.m_d_sum_of_products], [self.m_d_sum_of_products, self.d_sum_squares]]
        )
        return _covariance_matrix(self.n, sums, products)

    @property
    def gradient(self) -> np.ndarray:
        m_bar, d_bar = self.moments
        if d_bar == 0:
            return np.zeros(2)
        return np.array([1 / d_bar, -m_bar / d_bar**2])

    unadjusted_gradient = gradient

    @property
    def variance(self) -> float:
        """Per-unit variance of the ratio by the delta method (divide by n for the estimate's)."""
        if self.n <= 1 or self.d_sum == 0:
            return 0.0
        return quadratic_form(self.gradient, self.covariance_matrix)

    def __add__(self, other: RatioStatistic) -> RatioStatistic:
        return RatioStatistic(
            self.n + other.n,
            self.m_sum + other.m_sum,
            self.m_sum_squares + other.m_sum_squares,
            self.d_sum + other.d_sum,
            self.d_sum_squares + other.d_sum_squares,
            self.m_d_sum_of_products + other.m_d_sum_of_products,
        )


@dataclass(frozen=True)
class RegressionAdjustedRatioStatistic:
    """A ratio metric with a pre-period ratio as covariate: CUPED for ratios.

    Per user: post-period numerator ``m`` and denominator ``d`` (hits, requests) and
    pre-period ``m_pre``, ``d_pre`` (likes, views), with all their sums, squares and cross
    products. The estimand is ``m̄/d̄ − θ · m̄_pre/d̄_pre`` (gbstats
    ``RegressionAdjustedRatioStatistic``); ``theta`` is shared by both arms and is set by
    :func:`regression_theta` (``None`` until then, which means no adjustment).

    **Users without a pre-period** (cold start) enter with ``m_pre = d_pre = 0``, as in gbstats.
    The pre-period ratio is Σm_pre/Σd_pre, so such a user's linearised covariate
    ``(m_pre − R_pre · d_pre) / d̄_pre`` is exactly 0: they are treated as sitting at the
    pooled pre-period rate, their post-period outcome is not adjusted, and the adjustment
    stays unbiased. What they cost is variance reduction, diluted roughly by their share. An
    arm with no pre-period at all (Σd_pre = 0) cannot be adjusted; see ``frequentist.prepare``.
    """

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    m_pre_sum: float
    m_pre_sum_squares: float
    d_pre_sum: float
    d_pre_sum_squares: float
    m_d_sum_of_products: float
    m_m_pre_sum_of_products: float
    m_d_pre_sum_of_products: float
    d_m_pre_sum_of_products: float
    d_d_pre_sum_of_products: float
    m_pre_d_pre_sum_of_products: float
    theta: float | None = None

    @classmethod
    def from_values(cls, m, d, m_pre, d_pre, theta: float | None = None) -> RegressionAdjustedRatioStatistic:
        m, d, mp, dp = (np.asarray(x, dtype=float) for x in (m, d, m_pre, d_pre))

        def s(x):
            return float(x.sum())

        return cls(
            len(m), s(m), s(m * m), s(d), s(d * d), s(mp), s(mp * mp), s(dp), s(dp * dp),
            s(m * d), s(m * mp), s(m * dp), s(d * mp), s(d * dp), s(mp * dp), theta,
        )  # fmt: skip

    @property
    def post(self) -> RatioStatistic:
        return RatioStatistic(
            self.n, self.m_sum, self.m_sum_squares, self.d_sum, self.d_sum_squares, self.m_d_sum_of_products
        )

    @property
    def pre(self) -> RatioStatistic:
        return RatioStatistic(
            self.n,
            self.m_pre_sum,
            self.m_pre_sum_squares,
            self.d_pre_sum,
            self.d_pre_sum_squares,
            self.m_pre_d_pre_sum_of_products,
        )

    def with_theta(self, theta: float | None) -> RegressionAdjustedRatioStatistic:
        return replace(self, theta=theta)

    @property
    def has_pre_period(self) -> bool:
        return self.d_pre_sum != 0

    @property
    def mean(self) -> float:
        if not self.theta:
            return self.post.mean
        if self.d_sum == 0 or self.d_pre_sum == 0:
            return 0.0
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def moments(self) -> np.ndarray:
        if self.n == 0:
            return np.zeros(4)
        return np.array([self.m_sum, self.d_sum, self.m_pre_sum, self.d_pre_sum]) / self.n

    @property
    def covariance_matrix(self) -> np.ndarray:
        """Per-unit covariance of (m, d, m_pre, d_pre)."""
        sums = np.array([self.m_sum, self.d_sum, self.m_pre_sum, self.d_pre_sum])
        products = np.array(
            [
                [self.m_sum_squares, self.m_d_sum_of_products, self.m_m_pre_sum_of_products, self.m_d_pre_sum_of_products],
                [self.m_d_sum_of_products, self.d_sum_squares, self.d_m_pre_sum_of_products, self.d_d_pre_sum_of_products],
                [self.m_m_pre_sum_of_products, self.d_m_pre_sum_of_products, self.m_pre_sum_squares, self.m_pre_d_pre_sum_of_products],
                [self.m_d_pre_sum_of_products, self.d_d_pre_sum_of_products, self.m_pre_d_pre_sum_of_products, self.d_pre_sum_squares],
            ]
        )  # fmt: skip
        return _covariance_matrix(self.n, sums, products)

    def _gradient(self, theta: float) -> np.ndarray:
        m_bar, d_bar, mp_bar, dp_bar = self.moments
        if theta == 0 and d_bar != 0:
            return np.array([1 / d_bar, -m_bar / d_bar**2, 0.0, 0.0])
        if d_bar == 0 or dp_bar == 0:
            return np.zeros(4)
        return np.array([1 / d_bar, -m_bar / d_bar**2, -theta / dp_bar, theta * mp_bar / dp_bar**2])

    @property
    def gradient(self) -> np.ndarray:
        return self._gradient(self.theta or 0.0)

    @property
    def unadjusted_gradient(self) -> np.ndarray:
        return self._gradient(0.0)

    @property
    def variance(self) -> float:
        """Per-unit variance of the adjusted estimand (the unadjusted one's at theta = 0)."""
        if self.n <= 1:
            return 0.0
        return quadratic_form(self.gradient, self.covariance_matrix)

    def __add__(self, other: RegressionAdjustedRatioStatistic) -> RegressionAdjustedRatioStatistic:
        fields = [f for f in self.__dataclass_fields__ if f != "theta"]
        return RegressionAdjustedRatioStatistic(**{f: getattr(self, f) + getattr(other, f) for f in fields})


Statistic = SampleMeanStatistic | RatioStatistic | RegressionAdjustedRatioStatistic


def regression_theta(a: RegressionAdjustedRatioStatistic, b: RegressionAdjustedRatioStatistic) -> float:
    """The CUPED coefficient shared by both arms (gbstats ``compute_theta_regression_adjusted_ratio``).

    With ``p`` the linearisation of the post-period ratio and ``q`` that of the pre-period
    ratio, theta = Σ_arms Cov(p, q) / Σ_arms Var(q), per-unit moments summed over the two
    arms unweighted, exactly as gbstats pools them. An arm without pre-period (or post-period)
    denominator contributes nothing; no pre-period variance at all gives 0.
    """
    covariances, variances = 0.0, 0.0
    for stat in (a, b):
        gradient = stat._gradient(1.0)  # [p, −q]
        lam = stat.covariance_matrix
        p, q = gradient[:2], -gradient[2:]
        variances += quadratic_form(q, lam[2:, 2:]) if stat.n > 1 else 0.0
        covariances += float(q @ lam[2:, :2] @ p)
    if variances == 0:
        return 0.0
    return covariances / variances


# Compatibility: the tests moved to their own modules (frequentist.py, srm.py); callers written
# before the split import them from here. New code imports from the new modules.
_MOVED = {
    "TestResult": "frequentist",
    "two_sided_ttest": "frequentist",
    "welch_ttest": "frequentist",
    "BASELINE_ZERO": "effects",
    "TOO_FEW_UNITS": "effects",
    "ZERO_VARIANCE": "effects",
    "SrmResult": "srm",
    "SRM_THRESHOLD": "srm",
    "srm_check": "srm",
}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(f"gateway.analysis.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
