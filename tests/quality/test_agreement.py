"""The agreement statistics against published values, scipy, and simulated raters."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from scipy import stats

from apps.quality import agreement as ag

NAN = np.nan
# Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1–5, missing data.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)
# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _value_counts(reliability_data: np.ndarray) -> np.ndarray:
    values = np.arange(1, 6)
    return np.stack([(reliability_data == v).sum(axis=0) for v in values], axis=1)


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_matches_the_2011_worked_example(level, published):
    ours = ag.krippendorff_alpha(_value_counts(KRIPPENDORFF_2011), level, values=np.arange(1, 6))
    package = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert round(ours, 3) == published
    assert ours == pytest.approx(package, abs=1e-12)


def test_krippendorff_alpha_equals_the_package_on_random_counts():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, size=(500, 4))
    for level in ("nominal", "ordinal"):
        expected = krippendorff.alpha(
            value_counts=counts[counts.sum(axis=1) >= 2], level_of_measurement=level
        )
        assert ag.krippendorff_alpha(counts, level) == pytest.approx(expected, abs=1e-12)


def test_fleiss_kappa_matches_wikipedia():
    assert round(ag.fleiss_kappa(FLEISS_WIKIPEDIA), 3) == 0.210


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 10))
        x = rng.integers(0, 4, size=n)
        y = rng.integers(0, 4, size=n)
        expected = stats.kendalltau(x, y, variant="b").statistic
        ours = ag.kendall_tau_b(x, y)
        if np.isnan(expected):
            assert np.isnan(ours)
        else:
            assert ours == pytest.approx(expected, abs=1e-12)


def _flipped_preferences(rng, *, n_tasks, k, overlap, p):
    """Every rater copies the true pairwise preferences, flipping each with probability p."""
    n_pairs = k * (k - 1) // 2
    truth = rng.choice([-1, 1], size=(n_tasks, n_pairs)).astype(np.int8)
    task = np.repeat(np.arange(n_tasks), overlap)
    flip = rng.random((task.size, n_pairs)) < p
    pref = np.where(flip, -truth[task], truth[task]).astype(np.int8)
    return pref, np.ones_like(pref, dtype=bool), task


@pytest.mark.parametrize("p", [0.0, 0.1, 0.25, 0.4])
def test_pairwise_agreement_of_noisy_raters_matches_theory(p):
    rng = np.random.default_rng(11)
    pref, valid, task = _flipped_preferences(rng, n_tasks=3000, k=4, overlap=3, p=p)
    counts = ag.relation_counts(pref, valid, task, 3000)
    measured = ag.pairwise_agreement(counts)
    assert measured == pytest.approx((1 - p) ** 2 + p**2, abs=0.02)
    agree, total = ag.agreeing_rater_pairs(counts)
    low, high = ag.bootstrap_ratio_ci(agree, total, n_boot=400, rng=rng)
    assert low <= measured <= high
    assert high - low < 0.03


def test_pairwise_preferences_from_rank_positions():
    # slots 0..3; slot 2 best, slots 0 and 3 tied, slot 1 last.
    pref, valid = ag.pairwise_preferences(np.array([[1, 2, 0, 1]], dtype=np.int8))
    # pairs: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert pref.tolist() == [[1, -1, 0, -1, -1, 1]]
    assert valid.all()
    pref, valid = ag.pairwise_preferences(np.array([[0, 1, -1]], dtype=np.int8))
    assert valid.tolist() == [[True, False, False]]


def test_krippendorff_alpha_on_pairs_and_ranks_is_one_for_identical_raters():
    rank_pos = np.array([[0, 1, 2], [0, 1, 2], [2, 0, 1], [2, 0, 1]], dtype=np.int8)
    task = np.array([0, 0, 1, 1])
    pref, valid = ag.pairwise_preferences(rank_pos)
    counts = ag.relation_counts(pref, valid, task, 2)
    assert ag.krippendorff_alpha_pairs(counts) == pytest.approx(1.0)
    assert ag.krippendorff_alpha_ranks(rank_pos, task, 2) == pytest.approx(1.0)
    assert ag.pairwise_agreement(counts) == 1.0


def test_bradley_terry_recovers_a_known_order():
    rng = np.random.default_rng(5)
    true_scores = np.array([1.5, -0.5, 0.8, -1.2, 0.1, 0.4])
    k = len(true_scores)
    wins = np.zeros((1, k, k))
    for _ in range(4000):
        i, j = rng.choice(k, size=2, replace=False)
        p_i = 1 / (1 + np.exp(true_scores[j] - true_scores[i]))
        if rng.random() < p_i:
            wins[0, i, j] += 1
        else:
            wins[0, j, i] += 1
    scores = ag.bradley_terry(wins)[0]
    assert np.argsort(-scores).tolist() == np.argsort(-true_scores).tolist()
    assert scores == pytest.approx(true_scores - true_scores.mean(), abs=0.15)
    probabilities = ag.preference_probabilities(scores)
    assert probabilities[0, 3] == pytest.approx(1 / (1 + np.exp(-2.7)), abs=0.03)
    assert probabilities + probabilities.T == pytest.approx(np.ones((k, k)))


def test_bradley_terry_batches_tasks_with_absent_items_and_unanimous_wins():
    wins = np.zeros((2, 3, 3))
    wins[0, 0, 1] = wins[0, 1, 2] = wins[0, 0, 2] = 5  # 0 ≻ 1 ≻ 2, unanimously
    wins[1, 1, 0] = 3  # task 1 has only two items
    present = np.array([[True, True, True], [True, True, False]])
    scores = ag.bradley_terry(wins, present)
    assert np.all(np.isfinite(scores[0]))
    assert scores[0, 0] > scores[0, 1] > scores[0, 2]
    assert scores[1, 1] > scores[1, 0] and scores[1, 2] == -np.inf
    assert ag.scores_to_groups(np.array([0.2, 0.9, 0.2])) == [[1], [0, 2]]


def test_ranking_to_positions_puts_each_group_index_at_its_slot():
    # completions 30, 10, 20 sit in slots 0, 1, 2; best-first [[20], [30, 10]] with a tie
    slot_of = ag.slot_index([30, 10, 20])
    assert ag.ranking_to_positions([[20], [30, 10]], slot_of, 4).tolist() == [1, 1, 0, -1]
    # an id the task does not show is ignored, an empty ranking fills nothing
    assert ag.ranking_to_positions([[99], [10]], slot_of, 3).tolist() == [-1, 1, -1]
    assert ag.ranking_to_positions(None, slot_of, 3).tolist() == [-1, -1, -1]
