"""Rater-pair agreement and skills, against hand counts and published values."""

from __future__ import annotations

import numpy as np
import pytest

from apps.quality import agreement as ag
from apps.quality import rater_pairs


def test_pair_sums_count_by_hand():
    # one task, K = 3 (pairs 01, 02, 12); raters 10, 20, 30
    rank_pos = np.array(
        [
            [0, 1, 2],  # rater 10: 0 ≻ 1 ≻ 2
            [0, 2, 1],  # rater 20: 0 ≻ 2 ≻ 1
            [0, 0, 1],  # rater 30: 0 = 1 ≻ 2 (the tie orders nothing)
        ],
        dtype=np.int8,
    )
    pref, valid = ag.pairwise_preferences(rank_pos)
    sums = rater_pairs.pair_sums(np.array([10, 20, 30]), np.zeros(3, np.int32), pref, valid)
    got = {
        (int(k >> 32), int(k & 0xFFFFFFFF)): (a, t, u)
        for k, a, t, u in zip(
            sums["pairs_key"],
            sums["pairs_agree"],
            sums["pairs_total"],
            sums["pairs_units"],
            strict=True,
        )
    }
    # 10 vs 20: pairs 01 and 02 alike, 12 opposite; 10 vs 30 and 20 vs 30: 02, 12 ordered
    assert got == {(10, 20): (2, 3, 1), (10, 30): (2, 2, 1), (20, 30): (1, 2, 1)}


def test_sums_of_two_task_sets_add_and_subtract():
    rng = np.random.default_rng(1)
    rank_pos = np.argsort(rng.random((60, 4)), axis=1).astype(np.int8)
    task = np.repeat(np.arange(20), 3).astype(np.int32)
    raters = rng.integers(1, 7, size=60)
    pref, valid = ag.pairwise_preferences(rank_pos)
    whole = rater_pairs.pair_sums(raters, task, pref, valid)
    first = task < 8
    parts = [rater_pairs.pair_sums(raters[m], task[m], pref[m], valid[m]) for m in (first, ~first)]
    added = rater_pairs.combine(parts[0], parts[1], 1.0)
    for name in rater_pairs.PAIR_KEYS:
        assert np.allclose(added[name], whole[name]), name
    back = rater_pairs.combine(whole, parts[1], -1.0)
    assert np.array_equal(back["pairs_key"], parts[0]["pairs_key"])


def test_skills_tell_the_adversarial_rater_from_its_honest_co_raters():
    """Two groups that never share a task: {1, 2, 3} honest, {4, 5, 6} with 6 adversarial.
    The leave-one-out majority of 4 is split between 5 and 6; the skills are not."""
    rng = np.random.default_rng(0)
    truth = rng.random((400, 4))
    accuracy = {1: 0.85, 2: 0.8, 3: 0.75, 4: 0.85, 5: 0.8, 6: 0.15}
    rows, raters, tasks = [], [], []
    for t in range(400):
        group = (1, 2, 3) if t % 2 else (4, 5, 6)
        for rater in group:
            noisy = truth[t] + rng.normal(0, 0.15 if accuracy[rater] > 0.5 else 0.15, 4)
            order = noisy if accuracy[rater] > 0.5 else -noisy
            rows.append(np.argsort(np.argsort(-order)))
            raters.append(rater)
            tasks.append(t)
    pref, valid = ag.pairwise_preferences(np.array(rows, dtype=np.int8))
    sums = rater_pairs.pair_sums(np.array(raters), np.array(tasks, np.int32), pref, valid)
    result = rater_pairs.reliable_agreement(sums, np.arange(1, 7))
    skill = dict(zip(range(1, 7), result["skill"], strict=True))
    assert min(skill[r] for r in (1, 2, 3, 4, 5)) > 0.3 and skill[6] < -0.3
    agreement = dict(zip(range(1, 7), result["agreement"], strict=True))
    assert agreement[4] > 0.7  # with 5 only: 6 is not a reliable co-rater
    assert result["high"][5] < 0.5  # 6: the whole interval below chance


def test_wilson_interval_matches_the_published_formula():
    # Wilson 1927; e.g. Newcombe 1998, table I: 81 of 263 → 0.2553 to 0.3662
    low, high = ag.wilson_interval(np.array([81 / 263]), np.array([263]))
    assert low[0] == pytest.approx(0.2553, abs=1e-4) and high[0] == pytest.approx(0.3662, abs=1e-4)
    low, high = ag.wilson_interval(np.array([0.5]), np.array([0]))
    assert np.isnan(low[0]) and np.isnan(high[0])


def test_clustered_interval_is_wilson_on_clusters_of_one_and_wider_when_clustered():
    units = np.ones(40)
    matches = np.array([1.0] * 30 + [0.0] * 10)
    plain = ag.wilson_interval(np.array([0.75]), np.array([40]))
    clustered = ag.clustered_ratio_ci(
        np.array([matches.sum()]),
        np.array([40.0]),
        np.array([units.sum()]),
        np.array([(matches**2).sum()]),
        np.array([40.0]),
        np.array([matches.sum()]),
    )
    assert np.allclose(clustered, plain, atol=0.02)
    # the same 30 of 40 as 4 rankings of 10 pairs that agree all or nothing: 4 units
    wide = ag.clustered_ratio_ci(
        np.array([30.0]),
        np.array([40.0]),
        np.array([4.0]),
        np.array([300.0]),
        np.array([400.0]),
        np.array([300.0]),
    )
    assert wide[1][0] - wide[0][0] > 2 * (plain[1][0] - plain[0][0])
