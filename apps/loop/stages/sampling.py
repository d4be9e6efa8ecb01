"""Sampling: K completions per prompt from the round's policy, then ranking tasks of them.

With the round's `selection` (apps/loop/selection.py) the sampler may draw more than K, score
them with the project's latest reward model, and the tasks show the K it is least sure of,
the most uncertain prompts first."""

from __future__ import annotations

from apps.collection.models import Prompt, Task
from apps.collection.samples import read_samples, tasks_create_from_samples
from apps.core.errors import InvalidInput
from apps.loop import exports, selection
from apps.loop.artifacts import relative, stage_dir
from apps.loop.errors import StageError
from apps.loop.models import TrainingRound, TrainingRun
from apps.loop.policies import policy_model
from apps.loop.stages.base import StageResult
from apps.loop.trainer_launch import run_trainer, summary, trainer_settings
from trainer import contract


def round_prompts(training_round: TrainingRound) -> list[Prompt]:
    """This round's share of the prompts: `prompts_per_round` of the sampled splits, the next
    ones after the previous round's (wrapping around)."""
    config = training_round.config
    prompts = list(
        Prompt.objects.filter(
            project_id=training_round.project_id, split__in=config["sample_splits"]
        ).order_by("pk")
    )
    if not prompts:
        raise StageError(
            f"The project has no prompts in the splits {config['sample_splits']} to sample for."
        )
    count = min(config["prompts_per_round"], len(prompts))
    start = ((training_round.number - 1) * count) % len(prompts)
    return (prompts + prompts)[start : start + count]


def execute(run: TrainingRun) -> StageResult:
    training_round = run.round
    project = training_round.project
    policy = training_round.start_policy
    folder = stage_dir(run)
    prompts_path = folder / contract.PROMPTS
    contract.write_rows(
        prompts_path, [exports.prompt_row(prompt) for prompt in round_prompts(training_round)]
    )
    strategy = training_round.config.get("selection", "off")
    scorer = selection.latest_reward_model(training_round) if strategy == "uncertainty" else None
    config = trainer_settings(
        training_round,
        "sample",
        model=policy_model(policy),
        prompts=str(prompts_path),
        k=max(project.k, training_round.config.get("samples_per_prompt", 0)),
        seed=training_round.config["seed"] * 1000 + training_round.number,
        **({"reward_model": str(scorer[1])} if scorer else {}),
    )
    metrics = run_trainer(run, "sample", config, folder / "samples")
    samples = folder / "samples" / contract.SAMPLES
    if not samples.is_file():
        raise StageError(f"The sampler wrote no {contract.SAMPLES} at {samples}.")
    try:
        chosen = selection.plan_tasks(
            strategy=strategy,
            grouped=read_samples(samples),
            k=project.k,
            seed=config["seed"],
            reward_model=f"run {scorer[0].pk} (round {scorer[0].round.number})" if scorer else "",
        )
        tasks = tasks_create_from_samples(
            project=project,
            policy_version=policy,
            samples_path=samples,
            round_number=training_round.number,
            plans=chosen.plans,
        )
    except InvalidInput as exc:
        raise StageError(exc.message) from exc
    round_tasks = dict(
        Task.objects.filter(
            project=project, kind=Task.Kind.RANKING, round_number=training_round.number
        ).values_list("prompt_id", "pk")
    )
    return StageResult(
        metrics={
            **summary(metrics),
            "tasks_created": len(tasks),
            "tasks": len(round_tasks),
            "selection": chosen.card(round_tasks),
        },
        artifacts={"samples": relative(samples)},
    )
