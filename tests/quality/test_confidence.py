"""The consensus's confidence in a task's order, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.quality.confidence import PRIOR_WEIGHT, order_confidence, pair_posteriors, pair_votes


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_prior_weight_is_the_log_odds_of_accuracy_three_quarters():
    assert abs(PRIOR_WEIGHT - math.log(3)) < 1e-12


def test_two_raters_of_accuracy_075_who_agree_give_posterior_09():
    # log-odds log 3 + log 3 = log 9: P = 9 / 10.
    result = order_confidence([[[7], [5]], [[7], [5]]], [math.log(3)] * 2, [5, 7])
    assert result.order == [7, 5]
    assert result.adjacent == [pytest.approx(0.9)]
    assert result.confidence == pytest.approx(0.9)
    assert result.weakest == (7, 5)
    assert result.judgments == 2


def test_votes_that_cancel_leave_even_odds_and_a_weightless_rater_counts_for_nothing():
    # 0.9-accurate rater (w = log 9) against a 0.75 one (log 3): log-odds log 3 → 0.75.
    split = order_confidence([[[1], [2]], [[2], [1]]], [math.log(9), math.log(3)], [1, 2])
    assert split.order == [1, 2]
    assert split.confidence == pytest.approx(0.75)
    # An adversarial rater's weight is 0 (accuracy clipped to 0.5): only the other one counts.
    ignored = order_confidence([[[1], [2]], [[2], [1]]], [math.log(3), 0.0], [1, 2])
    assert ignored.confidence == pytest.approx(0.75)
    assert ignored.judgments == 1


def test_weakest_adjacent_pair_of_a_four_way_ranking():
    # Three raters of weight 1 rank a ≻ b ≻ c ≻ d, a ≻ b ≻ d ≻ c, a ≻ c ≻ b ≻ d.
    a, b, c, d = 10, 11, 12, 13
    rankings = [[[a], [b], [c], [d]], [[a], [b], [d], [c]], [[a], [c], [b], [d]]]
    result = order_confidence(rankings, [1.0, 1.0, 1.0], [a, b, c, d])
    assert result.order == [a, b, c, d]
    # a ≻ b: 3 votes → σ(3); b ≻ c: 2 − 1 → σ(1); c ≻ d: 2 − 1 → σ(1).
    assert result.adjacent == pytest.approx([sigmoid(3), sigmoid(1), sigmoid(1)], abs=1e-6)
    assert result.confidence == pytest.approx(sigmoid(1), abs=1e-6)
    assert result.weakest == (b, c)
    assert "73% sure" in result.describe() and f"#{b} beats #{c}" in result.describe()


def test_a_tie_is_no_evidence_for_either_order():
    result = order_confidence([[[1, 2]], [[1], [2]]], [2.0, 1.0], [1, 2])
    assert result.order == [1, 2]
    assert result.confidence == pytest.approx(sigmoid(1.0))


def test_pair_votes_and_posteriors_by_hand():
    votes, valid = pair_votes([[[3], [1], [2]], [[1, 2], [3]]], [1, 2, 3])
    # pairs (1,2), (1,3), (2,3)
    assert votes.tolist() == [[1, -1, -1], [0, 1, 1]]
    assert valid.all()
    posterior = pair_posteriors(votes, np.array([math.log(3), math.log(9)]))
    assert posterior == pytest.approx([0.75, 0.75, 0.75])


def test_no_judgments_is_even_odds():
    result = order_confidence([], [], [4, 5, 6])
    assert result.confidence == pytest.approx(0.5)
    assert result.judgments == 0


def test_skill_weights_in_the_posterior_by_hand():
    """A measured rater of skill 0.8 over 80 comparisons (a = 0.87, w = log(0.87/0.13) =
    1.90096) alone: 0.87, below a target of 0.9; with an unmeasured rater (log 3) agreeing:
    0.87·3 / (0.87·3 + 0.13) = 2.61 / 2.74 = 0.952555; a rater of skill −0.6 (below
    chance, w = 0) disagreeing changes nothing."""
    from apps.quality.measures import skill_reliability

    measured, adversarial = skill_reliability(np.array([0.8, -0.6]), np.array([80.0, 50.0]))
    alone = order_confidence([[[3], [4]]], [measured], [3, 4])
    assert alone.confidence == pytest.approx(0.87, abs=1e-6)
    agreed = order_confidence([[[3], [4]], [[3], [4]]], [measured, PRIOR_WEIGHT], [3, 4])
    assert agreed.confidence == pytest.approx(0.952555, abs=1e-6)
    against = order_confidence(
        [[[3], [4]], [[3], [4]], [[4], [3]]], [measured, PRIOR_WEIGHT, adversarial], [3, 4]
    )
    assert against.confidence == pytest.approx(0.952555, abs=1e-6)
    assert against.order == [3, 4] and against.judgments == 2
