"""Uncertainty selection, the round's side: which prompts' rankings raters see first, and,
with more samples per prompt than K, which K they see.

A round's `selection` setting:
  - "off" (the default): every prompt becomes a task over its first K samples, priority 0;
  - "random": K samples at random, priorities at random (a baseline to compare against);
  - "uncertainty": the sampler also scores every sample with the project's latest reward
    model; each prompt shows the K samples whose order that model is least sure of, and its
    task's priority is that uncertainty (trainer/selection.py), so raters rank the most
    informative prompts first and a round that stops at its target judgments has spent them
    there. Without a reward model yet (the first round) it runs as "random", and says so.

The chosen strategy, the measure and every task's score go to the sampling run's metrics and
to the round's data card (`services.snapshot_create`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.selection import (
    PRIORITY_SCALE,
    choose_random,
    choose_uncertain,
    priority_from_uncertainty,
)

MEASURE = "4·p(1−p), p = σ(r_a − r_b) of the reward model, mean over the shown pairs"


@dataclass(frozen=True)
class TaskPlan:
    """One prompt's task: the samples to show (indices into its samples) and its priority."""

    shown: list[int]
    priority: int
    uncertainty: float | None = None


@dataclass
class Selection:
    strategy: str  # what the round asked for
    used: str  # what ran ("uncertainty" falls back to "random" without a reward model)
    note: str = ""
    reward_model: str = ""  # the reward model's run, when one scored the samples
    plans: dict[int, TaskPlan] = field(default_factory=dict)

    def card(self, task_ids: dict[int, int] | None = None) -> dict:
        """For the run's metrics and the data card: the strategy and every score used."""
        task_ids = task_ids or {}
        return {
            "strategy": self.strategy,
            "used": self.used,
            "measure": MEASURE if self.used == "uncertainty" else "",
            "reward_model": self.reward_model,
            "note": self.note,
            "tasks": [
                {
                    "prompt_id": prompt_id,
                    "task_id": task_ids.get(prompt_id),
                    "shown": plan.shown,
                    "priority": plan.priority,
                    "uncertainty": None if plan.uncertainty is None else round(plan.uncertainty, 4),
                }
                for prompt_id, plan in sorted(
                    self.plans.items(), key=lambda item: (-item[1].priority, item[0])
                )
            ],
        }


def plan_tasks(
    *, strategy: str, grouped: dict[int, list[dict]], k: int, seed: int, reward_model: str = ""
) -> Selection:
    """Plans for every prompt of `grouped` (samples by prompt id, in sample order).

    For "uncertainty", every sample row must carry the "reward" the sampler added.
    """
    if strategy == "off":
        return Selection(strategy, "off")
    used, note = strategy, ""
    if strategy == "uncertainty" and not reward_model:
        used = "random"
        note = "No reward model in this project yet: chosen at random this round."
    rng = np.random.default_rng(seed)
    order = random.Random(seed)
    plans = {}
    for prompt_id, rows in grouped.items():
        if used == "uncertainty":
            choice = choose_uncertain([float(row["reward"]) for row in rows], k)
            plans[prompt_id] = TaskPlan(
                choice.shown, priority_from_uncertainty(choice.uncertainty), choice.uncertainty
            )
        else:
            plans[prompt_id] = TaskPlan(
                choose_random(len(rows), k, rng), order.randrange(PRIORITY_SCALE + 1), None
            )
    return Selection(strategy, used, note, reward_model, plans)


def reward_model_dir(run) -> Path | None:
    """The model folder a succeeded reward-model run left, if it is still there."""
    from apps.loop.artifacts import artifact_path

    relative = (run.artifacts or {}).get("model")
    if not relative:
        return None
    folder = artifact_path(relative)
    return folder if (folder / "config.json").is_file() else None


def latest_reward_model(training_round):
    """(run, folder) of the newest reward model an earlier round of the project trained."""
    from apps.loop.models import Stage, TrainingRun

    runs = TrainingRun.objects.filter(
        round__project_id=training_round.project_id,
        round__number__lt=training_round.number,
        stage=Stage.RM,
        status=TrainingRun.Status.SUCCEEDED,
    ).order_by("-round__number", "-pk")
    for run in runs[:5]:
        folder = reward_model_dir(run)
        if folder is not None:
            return run, folder
    return None
