"""Sufficient statistics and frequentist tests, in the manner of GrowthBook's gbstats.

Pure functions over numbers; no pandas, no I/O. The unit of randomisation is the user, and
Hitrate@5 per request is a **ratio metric**: sum of hits / sum of requests over users. Its
variance comes from the delta method on per-user sums, which respects the correlation of
requests from one user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _st


@dataclass(frozen=True)
class SampleMeanStatistic:
    n: int
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return max((self.sum_squares - self.sum**2 / self.n) / (self.n - 1), 0.0)

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )


@dataclass(frozen=True)
class RatioStatistic:
    """Per-unit numerator m (hits) and denominator d (requests), with their cross products."""

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    m_d_sum_of_products: float

    @property
    def m(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.m_sum, self.m_sum_squares)

    @property
    def d(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.d_sum, self.d_sum_squares)

    @property
    def mean(self) -> float:
        return self.m_sum / self.d_sum if self.d_sum else 0.0

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.m_d_sum_of_products - self.m_sum * self.d_sum / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        """Per-unit variance of the ratio by the delta method (divide by n for the estimate's)."""
        m, d = self.m, self.d
        if d.mean == 0:
            return 0.0
        return (
            m.variance / d.mean**2
            - 2 * self.covariance * m.mean / d.mean**3
            + m.mean**2 * d.variance / d.mean**4
        )

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
class TestResult:
    absolute: float
    relative: float
    ci95_absolute: tuple[float, float]
    ci95_relative: tuple[float, float]
    p_value: float
    df: float
    message: str = ""


BASELINE_ZERO = "control mean is zero: relative effect undefined"
TOO_FEW_UNITS = "each arm needs at least 2 units"


def _welch_df(v_c: float, n_c: int, v_t: float, n_t: int) -> float:
    a, b = v_c / n_c, v_t / n_t
    denominator = a**2 / (n_c - 1) + b**2 / (n_t - 1)
    return (a + b) ** 2 / denominator if denominator > 0 else float(n_c + n_t - 2)


def two_sided_ttest(
    control: RatioStatistic | SampleMeanStatistic,
    treatment: RatioStatistic | SampleMeanStatistic,
    alpha: float = 0.05,
) -> TestResult:
    """Difference treatment − control, absolute and relative (delta method), Welch df."""
    if control.n < 2 or treatment.n < 2:
        nan = float("nan")
        return TestResult(nan, nan, (nan, nan), (nan, nan), nan, nan, TOO_FEW_UNITS)
    mc, mt = control.mean, treatment.mean
    vc, vt = control.variance, treatment.variance
    nc, nt = control.n, treatment.n
    df = _welch_df(vc, nc, vt, nt)
    q = _st.t.ppf(1 - alpha / 2, df)
    absolute = mt - mc
    se_abs = math.sqrt(vc / nc + vt / nt)
    p_value = 2 * _st.t.sf(abs(absolute) / se_abs, df) if se_abs > 0 else (0.0 if absolute else 1.0)
    if mc == 0:
        nan = float("nan")
        return TestResult(
            absolute,
            nan,
            (absolute - q * se_abs, absolute + q * se_abs),
            (nan, nan),
            p_value,
            df,
            BASELINE_ZERO,
        )
    relative = mt / mc - 1
    se_rel = math.sqrt(vt / (mc**2 * nt) + vc * mt**2 / (mc**4 * nc))
    return TestResult(
        absolute=absolute,
        relative=relative,
        ci95_absolute=(absolute - q * se_abs, absolute + q * se_abs),
        ci95_relative=(relative - q * se_rel, relative + q * se_rel),
        p_value=float(p_value),
        df=float(df),
    )


def welch_ttest(control: SampleMeanStatistic, treatment: SampleMeanStatistic) -> float:
    """Two-sided p-value of Welch's t-test on per-unit values (e.g. per-user hit rates)."""
    return two_sided_ttest(control, treatment).p_value


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    flag: bool
    expected: tuple[float, ...]


SRM_THRESHOLD = 0.001


def srm_check(
    observed: list[int] | tuple[int, ...],
    weights: list[float] | tuple[float, ...],
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Chi-square goodness of fit of units per arm against the configured weights."""
    total = sum(observed)
    w_total = sum(weights)
    expected = tuple(total * w / w_total for w in weights)
    if total == 0:
        return SrmResult(0.0, 1.0, False, expected)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    p_value = float(_st.chi2.sf(chi2, len(observed) - 1))
    return SrmResult(chi2, p_value, p_value < threshold, expected)
