"""Evaluating: the new policy's win rates, automatic and human.

`trainer eval` judges the PPO policy against the round's policy (vs_parent) and against the
lineage's root (vs_root) on the test prompts, with the round's reward model; with
`eval_hidden_rule` also with the simulated raters' rule, on the same answers, and it measures
how well the reward model learnt that rule on the held-out rankings. The vs_parent answers
become human A/B tasks (apps/collection/ab_tasks.py). `learning` gathers what says whether the
round learnt: the reward model's held-out accuracy (against each rater's ranking, and against
the reliability-weighted consensus of the tasks several raters ranked) beside the raters'
agreement on the same tasks, PPO's reward over its first and last quarter, and the win rates,
each with its n and CI.
"""

from __future__ import annotations

from apps.collection.ab_tasks import AnswerPair, ab_tasks_create
from apps.collection.models import PolicyVersion
from apps.loop import selectors
from apps.loop.artifacts import relative, run_artifact, stage_dir
from apps.loop.errors import StageError
from apps.loop.models import Stage, TrainingRun
from apps.loop.policies import policy_model
from apps.loop.snapshots import snapshot_split, snapshot_verify
from apps.loop.stages.base import StageResult, snapshot_of, succeeded
from apps.loop.trainer_launch import run_trainer, trainer_settings
from trainer import contract


def execute(run: TrainingRun) -> StageResult:
    training_round = run.round
    ppo_run = succeeded(training_round, Stage.PPO)
    rm_run = succeeded(training_round, Stage.RM)
    new_policy = ppo_run.produced_policy
    if new_policy is None:
        raise StageError("The PPO stage registered no policy.")
    policy_dir = run_artifact(ppo_run, "model", "policy PPO wrote")
    rm_dir = run_artifact(rm_run, "model", "reward model")
    snapshot = snapshot_of(training_round, "evaluate on")
    folder = snapshot_verify(snapshot)
    parent = training_round.start_policy
    root = selectors.lineage_root(policy=new_policy)
    # the policy is judged as PPO trained it: same shortest answer, for both policies
    judged_as_trained = {"min_new_tokens": training_round.config["ppo"].get("min_new_tokens", 0)}
    evaluations = [("vs_parent", parent, {"reward_model": str(rm_dir)})]
    if root.pk != parent.pk:
        evaluations.append(("vs_root", root, {"reward_model": str(rm_dir)}))
    answers = stage_dir(run, "vs_parent") / contract.COMPLETIONS
    if training_round.config.get("eval_hidden_rule"):
        # the same answers as vs_parent (same policies, prompts and settings), another judge
        evaluations.append(
            ("hidden_rule", parent, {"score_fn": "hidden_rule", "completions": str(answers)})
        )
        if root.pk != parent.pk:
            root_answers = stage_dir(run, "vs_root") / contract.COMPLETIONS
            evaluations.append(
                (
                    "hidden_rule_vs_root",
                    root,
                    {"score_fn": "hidden_rule", "completions": str(root_answers)},
                )
            )
    results = {}
    for index, (label, reference, judge) in enumerate(evaluations):
        config = trainer_settings(
            training_round,
            "eval",
            defaults=judged_as_trained,
            policy=str(policy_dir),
            prompts=str(folder / contract.PROMPTS),
            split="test",
            seed=training_round.config["seed"],
            reference_policy=policy_model(reference),
            **judge,
        )
        metrics = run_trainer(
            run, "eval", config, stage_dir(run, label), step_offset=index * 1000, label=label
        )
        results[label] = {
            "reference_policy_id": reference.pk,
            "reference_policy": reference.name,
            "win_rate": metrics.get("win_rate"),
            "mean_score": metrics.get("mean_score"),
        }
    if "vs_root" not in results:
        results["vs_root"] = results["vs_parent"]
    if training_round.config.get("eval_hidden_rule"):
        results["rm_vs_hidden_rule"] = _reward_model_vs_rule(
            run, folder, rm_dir, step_offset=len(evaluations) * 1000
        )
    ab = ab_tasks_create(
        project=training_round.project,
        round_number=training_round.number,
        new_policy=new_policy,
        parent=parent,
        pairs=answer_pairs(answers),
        limit=training_round.config.get("ab_tasks", 0),
        overlap=training_round.config.get("ab_overlap", 1) or 1,
    )
    PolicyVersion.objects.filter(pk=new_policy.pk).update(
        metadata={
            **new_policy.metadata,
            "win_rate_vs_parent": _overall(results["vs_parent"]),
            "win_rate_vs_root": _overall(results["vs_root"]),
            "eval_run_id": run.pk,
        }
    )
    return StageResult(
        metrics={
            **results,
            "rm_accuracy": rm_run.metrics.get("valid_accuracy"),
            "rm_accuracy_pairs": rm_run.metrics.get("valid_pairs"),
            "rater_agreement": snapshot.data_card.get("agreement", {}).get("pairwise_agreement"),
            "learning": learning_summary(
                rm=rm_run.metrics,
                ppo=ppo_run.metrics,
                ceiling=snapshot.data_card.get("agreement_held_out") or {},
                evaluations=results,
            ),
            "ab_tasks": ab,
        },
        artifacts={"evaluations": relative(stage_dir(run))},
    )


def _reward_model_vs_rule(run: TrainingRun, folder, rm_dir, step_offset: int) -> dict:
    """On the held-out rankings: the reward model's order of their answers against the hidden
    rule's, and the rule's own accuracy on those rankings (what a perfect model of the rule
    would score against these raters)."""
    training_round = run.round
    held = snapshot_split(folder, contract.RANKINGS, contract.Ranking, into=stage_dir(run))
    if held.held_out is None:
        return {}
    config = trainer_settings(
        training_round,
        "eval",
        rankings=str(held.held_out),
        reward_model=str(rm_dir),
        score_fn="hidden_rule",
        seed=training_round.config["seed"],
        # rows cut as the reward model was trained on them
        **(
            {"max_length": training_round.config["rm"]["max_length"]}
            if "max_length" in training_round.config.get("rm", {})
            else {}
        ),
    )
    metrics = run_trainer(
        run, "eval", config, stage_dir(run, "rm_heldout"), step_offset=step_offset, label="rm"
    )
    return {
        "reward_model_vs_rule": metrics.get("reward_model_vs_score_fn"),
        "rule_on_rankings": metrics.get("score_fn_on_rankings"),
        "rule_on_consensus": metrics.get("score_fn_on_consensus"),
    }


def _win(result: dict | None) -> dict | None:
    overall = ((result or {}).get("win_rate") or {}).get("overall")
    return dict(overall) if overall else None


def learning_summary(*, rm: dict, ppo: dict, ceiling: dict, evaluations: dict) -> dict:
    """Whether the round learnt, each figure with its n and CI where it has one."""
    accuracy = rm.get("valid_accuracy")
    agreement = ceiling.get("pairwise_agreement")
    on_held_out = evaluations.get("rm_vs_hidden_rule") or {}
    return {
        "rm_accuracy": {
            "value": accuracy,
            "ci": rm.get("valid_accuracy_ci"),
            "n_pairs": rm.get("valid_pairs"),
            "n_rankings": rm.get("valid_rankings"),
            "weighted": rm.get("valid_weighted_accuracy"),
        },
        "rm_accuracy_consensus": {
            "value": rm.get("valid_consensus_accuracy"),
            "ci": rm.get("valid_consensus_accuracy_ci"),
            "n_pairs": rm.get("valid_consensus_pairs"),
            "n_tasks": rm.get("valid_consensus_tasks"),
        },
        "agreement_ceiling": {
            "value": agreement,
            "ci": ceiling.get("pairwise_agreement_ci"),
            "n_rater_pairs": ceiling.get("rater_pairs"),
            "n_tasks": ceiling.get("tasks_with_overlap"),
        },
        "rm_over_ceiling": accuracy / agreement if accuracy and agreement else None,
        "rm_vs_hidden_rule": on_held_out.get("reward_model_vs_rule"),
        "hidden_rule_on_rankings": on_held_out.get("rule_on_rankings"),
        "hidden_rule_on_consensus": on_held_out.get("rule_on_consensus"),
        "ppo": {
            "score_first_quarter": ppo.get("score_first"),
            "score_last_quarter": ppo.get("score_last"),
            "kl_last_quarter": ppo.get("kl_last"),
            "steps": ppo.get("steps_done"),
        },
        "win_rate_hidden_rule": _win(evaluations.get("hidden_rule")),
        "win_rate_reward_model": _win(evaluations.get("vs_parent")),
        "win_rate_hidden_rule_vs_root": _win(evaluations.get("hidden_rule_vs_root")),
        "win_rate_reward_model_vs_root": _win(evaluations.get("vs_root")),
    }


def answer_pairs(path) -> list[AnswerPair]:
    """The two policies' answers from `trainer eval`'s completions.jsonl (none if missing)."""
    if not path.is_file():
        return []
    return [
        AnswerPair(
            prompt_id=int(row["prompt_id"]),
            new_answer=row["completion"],
            parent_answer=row.get("reference_completion", ""),
            sampling=row.get("sampling") or {},
            seed=row.get("seed"),
        )
        for _, row in contract.iter_jsonl(path)
    ]


def _overall(result: dict) -> dict | None:
    win_rate = result.get("win_rate") or {}
    return win_rate.get("overall")
