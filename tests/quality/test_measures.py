"""Per-rater measures on simulated raters whose behaviour is known."""

from __future__ import annotations

import numpy as np
import pytest

from apps.quality import measures
from apps.quality.simulation import simulate
from apps.quality.statistics import compute_quality


@pytest.fixture(scope="module")
def crowd():
    kinds = ["honest"] * 40 + ["random"] * 3 + ["first"] * 3
    noise = np.random.default_rng(2).uniform(0.3, 0.8, size=len(kinds))
    arrays, truth = simulate(
        n_tasks=4000, k=4, overlap=(3, 6), kinds=kinds, noise=noise, gold_share=0.05, seed=4
    )
    result = compute_quality(arrays, measures.QualityOptions(n_boot=200))
    rows = {row["rater_id"]: row for row in result["raters"]}
    return kinds, arrays, truth, result, rows


def test_random_clickers_and_always_first_raters_are_flagged_honest_ones_are_not(crowd):
    kinds, _, _, _, rows = crowd
    for index, kind in enumerate(kinds):
        row = rows[index + 1]
        reasons = {flag["measure"] for flag in row["flags"]}
        if kind == "honest":
            assert reasons == set(), (index, row["flags"])
        elif kind == "random":
            assert "agreement" in reasons
            assert "speed" in reasons
        else:
            assert "position_bias" in reasons
            assert row["first_ranked_first"] == 1.0
            assert all(flag["reason"] for flag in row["flags"])


def test_measures_separate_the_kinds(crowd):
    kinds, _, _, _, rows = crowd
    honest = [rows[i + 1] for i, k in enumerate(kinds) if k == "honest"]
    random = [rows[i + 1] for i, k in enumerate(kinds) if k == "random"]
    assert min(r["agreement"] for r in honest) > 0.7
    assert max(r["agreement"] for r in random) < 0.6
    assert np.mean([r["first_ranked_first"] for r in honest]) == pytest.approx(0.25, abs=0.03)
    assert min(r["gold_accuracy"] for r in honest) > max(r["gold_accuracy"] for r in random)
    assert min(r["weight"] for r in honest) > 5 * max(r["weight"] for r in random)
    assert all(
        r["trend"]["t"] and len(r["trend"]["agreement"]) == len(r["trend"]["t"]) for r in honest
    )


def test_project_figures_and_series(crowd):
    _, arrays, _, result, _ = crowd
    project = result["project"]
    low, high = project["pairwise_agreement_ci"]
    assert low < project["pairwise_agreement"] < high
    assert 0 < project["alpha_pairs_nominal"] < 1 and 0 < project["alpha_ranks_ordinal"] < 1
    points = project["series"]["points"]
    assert sum(p["judgments"] for p in points) == arrays.task.size
    assert set(project["flags"]) == {"harmful", "wrong_language"}


def test_weighted_consensus_recovers_the_true_order(crowd):
    kinds, arrays, truth, _, rows = crowd
    weights = np.array([rows[i + 1]["weight"] for i in range(len(kinds))])
    scores = measures.consensus_scores(arrays, weights)
    rated = np.bincount(arrays.task, minlength=arrays.n_tasks) >= 3
    best_is_best = np.argmax(scores[rated], axis=1) == np.argmax(truth[rated], axis=1)
    unweighted = measures.consensus_scores(arrays, np.ones(len(kinds)))
    unweighted_best = np.argmax(unweighted[rated], axis=1) == np.argmax(truth[rated], axis=1)
    assert best_is_best.mean() > 0.8
    assert best_is_best.mean() >= unweighted_best.mean()


def test_group_median_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, size=1000)
    values[::17] = np.nan
    groups = rng.integers(0, 7, size=1000)
    result = measures.group_median(values, groups, 8)
    for g in range(7):
        assert result[g] == pytest.approx(np.nanmedian(values[groups == g]))
    assert np.isnan(result[7])


def test_skill_reliability_by_hand():
    """a = (1 + s) / 2 shrunk toward 0.75 by 20 pseudo-comparisons, clipped to [0.5, 0.98],
    as log-odds. s = 0.8 over 80 comparisons: a = (0.9·80 + 0.75·20) / 100 = 0.87,
    w = log(0.87 / 0.13) = 1.90096; s = −0.6 over 50: a = (0.2·50 + 15) / 70 = 0.357 → 0.5,
    w = 0 (below chance weighs nothing, never negative); no shared comparison (s NaN): the
    prior, log 3; s = 1 over 10,000: 0.9995 → 0.98, w = log 49."""
    weights = measures.skill_reliability(
        np.array([0.8, -0.6, np.nan, 1.0]), np.array([80.0, 50.0, 0.0, 10_000.0])
    )
    assert weights == pytest.approx([1.900959, 0.0, np.log(3), np.log(49)], abs=1e-6)


def test_consensus_weights_follow_each_raters_skill(crowd):
    """The snapshot's consensus weight is skill_reliability of the rater's skill: random
    clickers weigh about nothing, and among honest raters the careful ones weigh more (rank
    correlation with their true noise below −0.8)."""
    kinds, _, _, _, rows = crowd
    noise = np.random.default_rng(2).uniform(0.3, 0.8, size=len(kinds))
    honest = [i for i, kind in enumerate(kinds) if kind == "honest"]
    weights = np.array([rows[i + 1]["weight"] for i in honest])
    ranks = np.argsort(np.argsort(weights)), np.argsort(np.argsort(noise[honest]))
    assert np.corrcoef(*ranks)[0, 1] < -0.8
    clickers = [rows[i + 1]["weight"] for i, kind in enumerate(kinds) if kind == "random"]
    assert max(clickers) < 0.2 < weights.min()
    for row in rows.values():
        expected = measures.skill_reliability(np.array([row["skill"]]), np.array([1e9]))[0]
        if row["weight"] > 0.01:  # many comparisons: the prior's pull is small
            assert row["weight"] == pytest.approx(expected, rel=0.05)
