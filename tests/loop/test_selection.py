"""The round's selection plans (apps/loop/selection.py): which samples, which priority."""

from __future__ import annotations

import math

import pytest

from apps.loop.selection import plan_tasks


def rows(rewards):
    return [{"index": i, "completion": f"a{i}", "reward": r} for i, r in enumerate(rewards)]


def test_off_plans_nothing():
    selection = plan_tasks(strategy="off", grouped={1: rows([0, 1, 2])}, k=2, seed=0)
    assert selection.plans == {} and selection.card()["strategy"] == "off"


def test_uncertainty_shows_the_closest_samples_and_ranks_prompts_by_it():
    grouped = {
        10: rows([0.0, 5.0, 5.0, 9.0]),  # 1 and 2 tie: a coin flip, u = 1
        11: rows([0.0, math.log(3), 8.0, 16.0]),  # closest pair 0, 1: u = 3/4
    }
    selection = plan_tasks(
        strategy="uncertainty", grouped=grouped, k=2, seed=0, reward_model="run 7"
    )
    assert selection.used == "uncertainty"
    assert selection.plans[10].shown == [1, 2] and selection.plans[10].priority == 30000
    assert selection.plans[11].shown == [0, 1] and selection.plans[11].priority == 22500
    card = selection.card({10: 100, 11: 101})
    assert [t["task_id"] for t in card["tasks"]] == [100, 101]  # most uncertain first
    assert card["tasks"][1]["uncertainty"] == pytest.approx(0.75)
    assert card["reward_model"] == "run 7" and "σ(r_a − r_b)" in card["measure"]


def test_uncertainty_without_a_reward_model_runs_random_and_says_so():
    selection = plan_tasks(strategy="uncertainty", grouped={1: rows([0, 0, 0])}, k=2, seed=3)
    assert selection.used == "random" and "No reward model" in selection.note
    assert len(selection.plans[1].shown) == 2 and 0 <= selection.plans[1].priority <= 30000


def test_random_is_reproducible_by_seed():
    grouped = {p: rows([0] * 6) for p in range(5)}
    first = plan_tasks(strategy="random", grouped=grouped, k=3, seed=9).plans
    again = plan_tasks(strategy="random", grouped=grouped, k=3, seed=9).plans
    assert first == again
    assert all(len(plan.shown) == 3 and plan.uncertainty is None for plan in first.values())
