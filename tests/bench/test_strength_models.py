"""bench/strength_votes.py and bench/graded_response.py: the two ways the dynamic-overlap
replica reads a vote's strength of preference, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import graded_response as graded
from bench.strength_votes import level_skills, strength_weights

LOG3 = math.log(3)


def test_level_skills_split_a_rater_by_strength():
    # Raters 7 and 9 on 40 pairs, rater 9 always "clearly" (2) and right. Rater 7 says
    # "much better" (3) on pairs 0-19, always as 9 does; "slightly" (1) on 20-39, against 9 on
    # ten of them. Agreement: (7, 3) with (9, 2) 20 of 20, so s·s' = 1: both skills 1;
    # (7, 1) with (9, 2) 10 of 20, so s·s' = 0: skill 0.
    task = np.concatenate([np.arange(40), np.arange(40)])
    rater = np.array([7] * 40 + [9] * 40)
    pref = np.ones((80, 1), dtype=np.int8)
    pref[20:30, 0] = -1
    strength = np.array([3] * 20 + [1] * 20 + [2] * 40, dtype=np.int8)[:, None]
    fitted = level_skills(rater, task, pref, np.ones_like(pref, dtype=bool), strength)
    assert fitted["raters"].tolist() == [7, 9]
    assert fitted["skill"][0, 3] == pytest.approx(1.0, abs=1e-3)
    assert fitted["skill"][1, 2] == pytest.approx(1.0, abs=1e-3)
    assert fitted["skill"][0, 1] == pytest.approx(0.0, abs=1e-3)
    # completion pairs each virtual rater shared: a judgment's two levels never meet
    assert fitted["comparisons"].tolist() == [[0, 20, 0, 20], [0, 0, 40, 0]]


def test_strength_weights_hand_computed():
    # Rater 0 (weight log 3, a = 0.75) measured at a = 0.6 / 0.75 / 0.9 (skills 0.2 / 0.5 /
    # 0.8) on 10 pairs per level: pooled ā = (6 + 7.5 + 9) / 30 = 0.75, so the crowd's level
    # effects are logit(a_l) − logit(0.75), the prior σ(log 3 + effect) = a_l, and the
    # shrunk a_l = (a_l·10 + a_l·20) / 30 = a_l: weights log 1.5, log 3, log 9.
    # Rater 1: weight 0 (at or below chance): 0 at every level whatever their skills.
    # Rater 2: weight log 3, no level measured: the prior alone, the same as rater 0.
    skill = np.array(
        [[np.nan, 0.2, 0.5, 0.8], [np.nan, 0.9, 0.9, 0.9], [np.nan] * 4], dtype=np.float64
    )
    comparisons = np.array([[0, 10, 10, 10], [0, 30, 30, 30], [0, 0, 0, 0]], dtype=np.float64)
    weights = strength_weights(skill, comparisons, np.array([LOG3, 0.0, LOG3]))
    expected = [LOG3, math.log(1.5), LOG3, math.log(9)]
    assert weights[0] == pytest.approx(expected)
    assert weights[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert weights[2] == pytest.approx(expected)


def test_strength_weights_shrink_toward_the_rater():
    # One honest rater, weight log 4 (a = 0.8), level 3 measured at a = 0.95 on 20 pairs and
    # nothing else: pooled ā = ā_3 = 0.95, effect 0, prior 0.8 for every level; level 3:
    # (0.95·20 + 0.8·20) / 40 = 0.875, weight log 7; levels 1 and 2: 0.8, log 4.
    skill = np.array([[np.nan, np.nan, np.nan, 0.9]])
    comparisons = np.array([[0.0, 0.0, 0.0, 20.0]])
    weights = strength_weights(skill, comparisons, np.array([math.log(4)]))
    assert weights[0] == pytest.approx([math.log(4), math.log(4), math.log(4), math.log(7)])


def test_graded_vote_likelihood_hand_computed():
    thresholds = np.array([0.5, 1.5])
    grid = np.array([1.0])
    # α = 1, d = 1: the perceived gap is N(1, 1). "Much better" on the right side:
    # P(z > 1.5) = Φ(−0.5) = 0.308538; "slightly": P(0 < z < 0.5) = Φ(−0.5) − Φ(−1) =
    # 0.149883; the wrong side, "much better": P(z < −1.5) = Φ(−2.5) = 0.006210; no
    # strength: P(z > 0) = Φ(1) = 0.841345.
    cases = [(1, 3, 0.308538), (1, 1, 0.149883), (-1, 3, 0.006210), (1, 0, 0.841345)]
    for vote, strength, chance in cases:
        value = graded.vote_log_likelihood(1.0, thresholds, vote, strength, grid)[0]
        assert math.exp(value) == pytest.approx(chance, abs=1e-6)


def test_graded_sign_posterior_on_two_gaps():
    # All prior mass on d = ±1; one "much better" vote of a well-measured rater (α = 1):
    # P(d > 0) = Φ(−0.5) / (Φ(−0.5) + Φ(−2.5)) = 0.308538 / 0.314748 = 0.980270.
    prior = np.zeros(graded.GRID.size)
    prior[np.isclose(np.abs(graded.GRID), 1.0)] = 0.5
    model = graded.GradedModel(
        alpha=np.array([1.0]),
        thresholds=np.array([[0.5, 1.5]]),
        prior=prior + 1e-300,
        evidence=np.array([1e12]),
    )
    assert graded.sign_posterior(model, [(0, 1, 3)]) == pytest.approx(0.980270, abs=1e-5)
    assert graded.sign_posterior(model, [(0, -1, 3)]) == pytest.approx(0.019730, abs=1e-5)
    assert graded.sign_posterior(model, []) == pytest.approx(0.5)


def test_graded_effective_alpha_shrinks_toward_the_default():
    # (1.3·15 + DEFAULT_ALPHA·PRIOR_VOTES) / (15 + PRIOR_VOTES) with 0.3 and 5: 1.05
    model = graded.GradedModel.default(2)
    model.alpha = np.array([1.3, 2.0])
    model.evidence = np.array([15.0, 0.0])
    assert graded.DEFAULT_ALPHA == 0.3 and graded.PRIOR_VOTES == 5.0
    assert model.effective_alpha() == pytest.approx([1.05, 0.3])


def test_graded_fit_orders_raters_and_silences_the_adversarial_one():
    # 300 pairs, gaps N(0, 1); four raters judge every pair: discriminations 0.5, 1 and 3,
    # and −1 (ranks against the rule), all with thresholds 0.5 / 1.5.
    rng = np.random.default_rng(0)
    gaps = rng.normal(size=300)
    true_alpha = [0.5, 1.0, 3.0, -1.0]
    rater, task, vote, strength = [], [], [], []
    for r, a in enumerate(true_alpha):
        perceived = a * gaps + rng.normal(size=gaps.size)
        rater += [r] * gaps.size
        task += list(range(gaps.size))
        vote += np.where(perceived > 0, 1, -1).tolist()
        strength += (1 + (np.abs(perceived) >= 0.5) + (np.abs(perceived) >= 1.5)).tolist()
    model = graded.fit(
        np.array(rater), np.array(task), np.array(vote), np.array(strength), 4, iterations=30
    )
    assert model.alpha[3] == pytest.approx(0.0, abs=0.05)
    assert model.alpha[0] < model.alpha[1] < model.alpha[2]
    assert model.evidence.tolist() == [300, 300, 300, 300]


def test_graded_expected_gain_hand_computed():
    # Prior mass on d = ±1, α = 1, no votes yet: the order is a coin flip (0.5). Whatever
    # strength the next vote has, the side it takes is the likelier one (each level is more
    # likely on the right side at |d| = 1), so afterwards the order is right exactly when the
    # vote is: P(z > 0 | d = 1) = Φ(1) = 0.841345, a gain of 0.341345. After ten agreeing
    # "much better" votes the order is settled and one more changes nothing.
    prior = np.zeros(graded.GRID.size)
    prior[np.isclose(np.abs(graded.GRID), 1.0)] = 0.5
    model = graded.GradedModel(
        alpha=np.array([1.0, 1.0]),
        thresholds=np.array([[0.5, 1.5], [0.5, 1.5]]),
        prior=prior + 1e-300,
        evidence=np.array([1e12, 1e12]),
    )
    assert graded.expected_gain(model, [], [0, 1]) == pytest.approx(0.341345, abs=1e-5)
    assert graded.expected_gain(model, [(0, 1, 3)] * 10, [1]) == pytest.approx(0.0, abs=1e-9)
    assert graded.expected_gain(model, [], []) == 0.0
