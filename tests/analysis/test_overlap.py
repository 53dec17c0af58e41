"""Jaccard and rank-biased overlap: hand-derived values and properties."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.analysis.overlap import jaccard, rank_biased_overlap


def test_jaccard():
    assert jaccard([1, 2, 3], [3, 2, 1]) == 1.0
    assert jaccard([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(2 / 6)
    assert jaccard([1], [2]) == 0.0 and jaccard([], []) == 1.0


def test_rbo_of_identical_and_disjoint_lists():
    for k in (1, 5, 20):
        assert rank_biased_overlap(list(range(k)), list(range(k))) == pytest.approx(1.0)
        assert rank_biased_overlap(list(range(k)), list(range(k, 2 * k))) == 0.0
    assert rank_biased_overlap([], []) == 1.0 and rank_biased_overlap([], [1]) == 0.0


def test_rbo_by_hand():
    # S = 1 2 3, T = 1 3 2: A_1 = 1, A_2 = 1/2, A_3 = 1; RBO_EXT = (1-p)/p Σ A_d p^d + A_3 p^3
    p = 0.9
    expected = (1 - p) / p * (1 * p + 0.5 * p**2 + 1 * p**3) + 1 * p**3
    assert rank_biased_overlap([1, 2, 3], [1, 3, 2], p) == pytest.approx(expected)
    # swapping the top two costs more than swapping the bottom two
    assert rank_biased_overlap([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) < rank_biased_overlap(
        [1, 2, 3, 4, 5], [1, 2, 3, 5, 4]
    )


def test_rbo_of_lists_of_different_lengths():
    # a short list that is the long one's prefix agrees fully (Webber et al., eq. 32)
    assert rank_biased_overlap([1, 2], [1, 2, 3]) == pytest.approx(1.0)
    p, s, long = 0.9, [1, 9], [1, 2, 3]
    # X_1 = 1, X_2 = 1, X_3 = 1 (S has 1 only); extrapolation term for d = 3: X_s (d - s) / (s d)
    expected = (1 - p) / p * (p + 0.5 * p**2 + p**3 / 3 + 1 * 1 / (2 * 3) * p**3) + (0 / 3 + 1 / 2) * p**3
    assert rank_biased_overlap(s, long, p) == pytest.approx(expected)
    assert rank_biased_overlap(long, s, p) == pytest.approx(expected)  # symmetric


def test_rbo_is_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.permutation(12)[: rng.integers(1, 8)].tolist()
        b = rng.permutation(12)[: rng.integers(1, 8)].tolist()
        value = rank_biased_overlap(a, b)
        assert 0 <= value <= 1 + 1e-12
        assert value == pytest.approx(rank_biased_overlap(b, a))
    with pytest.raises(ValueError):
        rank_biased_overlap([1], [1], p=1.0)
