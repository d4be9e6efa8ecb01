"""Uncertainty selection: hand-computed values (trainer/selection.py is numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.selection import (
    choose_random,
    choose_uncertain,
    pair_uncertainty,
    priority_from_uncertainty,
    subset_uncertainty,
)


def test_equal_rewards_are_a_coin_flip_and_a_wide_margin_is_nearly_certain():
    u = pair_uncertainty([0.0, 0.0, 10.0])
    assert u[0, 1] == pytest.approx(1.0)
    p = 1 / (1 + math.exp(-10))
    assert u[0, 2] == pytest.approx(4 * p * (1 - p))
    assert u[0, 2] < 2e-4
    assert np.diag(u).tolist() == [0.0, 0.0, 0.0]
    assert np.allclose(u, u.T)


def test_margin_of_log_three_gives_three_quarters():
    # σ(log 3) = 3/4, so u = 4 · 3/4 · 1/4 = 3/4.
    assert pair_uncertainty([math.log(3), 0.0])[0, 1] == pytest.approx(0.75)


def test_heads_that_disagree_are_unsure_although_each_is_sure():
    # Head 1: a ≫ b; head 2: b ≫ a. Each head alone is certain, their mean p is 1/2.
    u = pair_uncertainty(np.array([[8.0, 0.0], [0.0, 8.0]]))
    assert u[0, 1] == pytest.approx(1.0)
    assert pair_uncertainty([8.0, 0.0])[0, 1] < 0.002


def test_subset_uncertainty_is_the_mean_over_its_pairs():
    u = pair_uncertainty([0.0, 0.0, math.log(3)])
    # pairs (0,1): 1, (0,2): 3/4, (1,2): 3/4 → mean 5/6
    assert subset_uncertainty(u, [0, 1, 2]) == pytest.approx(5 / 6)
    assert subset_uncertainty(u, [2]) == 0.0


def test_choose_uncertain_picks_the_closest_samples():
    # Two tight clusters: {0, 1} near 0 and {2, 3} near 5, plus an outlier at 20.
    rewards = [0.0, 0.1, 5.0, 5.05, 20.0]
    choice = choose_uncertain(rewards, 2)
    assert choice.shown == [2, 3]
    assert choice.uncertainty == pytest.approx(pair_uncertainty(rewards)[2, 3])
    assert choose_uncertain(rewards, 5).shown == [0, 1, 2, 3, 4]


def test_greedy_and_exhaustive_agree_on_a_clear_case(monkeypatch):
    rng = np.random.default_rng(0)
    rewards = np.concatenate([rng.normal(0, 0.05, 4), rng.normal(0, 5, 12)])
    exhaustive = choose_uncertain(rewards, 4)
    monkeypatch.setattr("trainer.selection.EXHAUSTIVE_SUBSETS", 0)
    greedy = choose_uncertain(rewards, 4)
    assert exhaustive.shown == greedy.shown == [0, 1, 2, 3]


def test_random_choice_and_priorities():
    rng = np.random.default_rng(3)
    shown = choose_random(12, 4, rng)
    assert len(shown) == 4 and shown == sorted(set(shown)) and max(shown) < 12
    assert choose_random(3, 4, rng) == [0, 1, 2]
    assert [priority_from_uncertainty(x) for x in (0.0, 0.4567, 1.0, 1.7, -1)] == [
        0,
        13701,
        30000,
        30000,
        0,
    ]
    # nearly even pairs still sort: p = 0.5 and p = 0.51 differ by 12 priority steps
    assert priority_from_uncertainty(1.0) - priority_from_uncertainty(4 * 0.51 * 0.49) == 12
