import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gateway.ranking import expected_hit, found_in_sorted, mean_ci95, roc_auc, session_hitrate, top_k


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.2
    scores = np.round(rng.random(2000) + labels * 0.3, 2)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))


def test_expected_hit_is_one_minus_product():
    assert expected_hit(np.array([0.5, 0.5])) == pytest.approx(0.75)
    assert expected_hit(np.array([[0.1] * 5, [0.0] * 5])) == pytest.approx([1 - 0.9**5, 0.0])


def test_mean_ci95():
    mean, lo, hi = mean_ci95(np.array([0.0, 1.0] * 50))
    assert mean == 0.5
    assert hi - mean == pytest.approx(1.959964 * np.std([0.0, 1.0] * 50, ddof=1) / 10)
    assert lo < mean < hi


def test_top_k_orders_and_excludes():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 1]]
    assert top_k(scores, 2, [np.array([1]), np.array([], dtype=int)]).tolist() == [[3, 2], [0, 1]]
    assert top_k(scores, 3, [np.array([0, 1, 2]), np.array([0])]).tolist() == [[3, -1, -1], [1, 2, 3]]


def test_session_hitrate_by_hand():
    # Group 0 (10 views): the liked view scores highest -> hit. Group 1: liked view scores lowest -> miss.
    groups = np.repeat([0, 1], 10)
    targets = np.zeros(20)
    targets[0] = 1
    targets[10] = 1
    scores = np.r_[np.r_[9.0, np.arange(9)], np.r_[-1.0, np.arange(9)]]
    assert session_hitrate(groups, scores, targets) == 0.5


def test_top_k_expected_hit_uses_true_p_of_the_chosen_posts():
    from gateway.ranking import top_k_expected_hit

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    truth = np.array([[0.5, 0.9, 0.0], [0.1, 0.2, 0.3]])
    best, hit = top_k_expected_hit(scores, truth, 2, [np.array([0]), np.array([], dtype=int)])
    assert best.tolist() == [[2, 1], [1, 2]]
    assert hit == pytest.approx([1 - (1 - 0.0) * (1 - 0.9), 1 - (1 - 0.2) * (1 - 0.3)])


def test_top_k_gives_ties_at_the_kth_place_to_the_lower_index():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 4, (3, 40)).astype(float)  # many ties
        best = top_k(scores, 5)
        for row in range(3):
            expected = np.lexsort((np.arange(40), -scores[row]))[:5]
            np.testing.assert_array_equal(best[row], expected)


def test_found_in_sorted_equals_isin():
    rng = np.random.default_rng(5)
    for _ in range(300):
        values = np.unique(rng.integers(0, 60, rng.integers(0, 40)))
        items = rng.integers(-5, 70, rng.integers(0, 30))
        expected = np.flatnonzero(np.isin(values, items))
        got = found_in_sorted(values, items)
        assert got.dtype == np.int64 and np.array_equal(got, expected)


def test_sorted_unique_equals_numpy_unique():
    from gateway.ranking import sorted_unique

    rng = np.random.default_rng(8)
    for size in [0, 1, 2, 5, 300]:
        values = rng.integers(-3, 50, size)
        np.testing.assert_array_equal(sorted_unique(values), np.unique(values))


def test_top_k_of_one_row_equals_the_same_row_in_a_batch():
    rng = np.random.default_rng(9)
    for _ in range(100):
        scores = rng.integers(0, 5, (2, 30)).astype(float)  # ties everywhere
        excluded = [rng.choice(30, rng.integers(0, 28), replace=False), np.array([], dtype=int)]
        batch = top_k(scores, 5, excluded)
        np.testing.assert_array_equal(top_k(scores[:1], 5, excluded[:1])[0], batch[0])
