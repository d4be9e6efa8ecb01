"""The training stages: SFT, reward model and PPO, each a `python -m trainer` run.

Which policy each starts from (InstructGPT's order): SFT from the round's policy; the reward
model and PPO from the round's SFT policy when it made one, else from the round's policy; PPO's
KL penalty is measured from the SFT policy (this round's, else the lineage's root). Every model
path comes from the policy registry or an earlier run of the round; the trainer's settings are
the round's, checked against the contract (apps/loop/trainer_launch.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from apps.collection.models import PolicyVersion
from apps.loop import selectors
from apps.loop.artifacts import relative, require_model_dir, run_artifact, stage_dir
from apps.loop.errors import StageError
from apps.loop.models import Stage, TrainingRun
from apps.loop.policies import policy_model, policy_register
from apps.loop.snapshots import HeldOutSplit, snapshot_split, snapshot_verify
from apps.loop.stages.base import StageResult, snapshot_of, succeeded
from apps.loop.trainer_launch import run_trainer, summary, trainer_settings
from trainer import contract


def _train_from(
    run: TrainingRun, command: str, policy: PolicyVersion, data: HeldOutSplit, what: str
) -> tuple[dict, Path]:
    """`python -m trainer COMMAND` from `policy` on the split's train rows (validated on its
    held-out rows), with the round's settings for COMMAND; (metrics, model folder it wrote)."""
    training_round = run.round
    config = trainer_settings(
        training_round,
        command,
        model=policy_model(policy),
        train=str(data.train),
        seed=training_round.config["seed"],
        **({"valid": str(data.held_out)} if data.held_out is not None else {}),
    )
    model_dir = stage_dir(run, "model")
    metrics = run_trainer(run, command, config, model_dir)
    require_model_dir(model_dir, what)
    return metrics, model_dir


def sft(run: TrainingRun) -> StageResult:
    """Fine-tune the round's policy on the snapshot's demonstrations (InstructGPT's SFT step).

    Skipped, with the reason in its metrics, when the snapshot holds fewer demonstrations of
    train prompts than `sft_min_demonstrations`: RM and PPO then start from the round's
    policy. Demonstrations of valid/test prompts are held out for the validation loss.
    """
    training_round = run.round
    folder = snapshot_verify(snapshot_of(training_round, "fine-tune on"))
    data = snapshot_split(
        folder, contract.DEMONSTRATIONS, contract.Demonstration, into=stage_dir(run)
    )
    minimum = training_round.config["sft_min_demonstrations"]
    if data.train_rows < minimum:
        return StageResult(
            metrics={
                "skipped": True,
                "demonstrations": data.train_rows,
                "reason": f"{data.train_rows} demonstrations of train prompts, fewer than "
                f"sft_min_demonstrations ({minimum}); RM and PPO start from the round's policy.",
            }
        )
    metrics, model_dir = _train_from(
        run, "sft", training_round.start_policy, data, "policy SFT wrote"
    )
    sft_policy = policy_register(run=run, model_dir=model_dir)
    return StageResult(
        metrics={
            **summary(metrics),
            "demonstrations": data.train_rows,
            "held_out_demonstrations": data.held_out_rows,
            "policy_id": sft_policy.pk,
        },
        artifacts={"model": relative(model_dir)},
    )


def rm(run: TrainingRun) -> StageResult:
    """Train the reward model on the snapshot's rankings of train prompts; rankings of
    valid/test prompts are its held-out accuracy (else the trainer holds out a share)."""
    training_round = run.round
    folder = snapshot_verify(snapshot_of(training_round, "train the reward model on"))
    data = snapshot_split(folder, contract.RANKINGS, contract.Ranking, into=stage_dir(run))
    if data.held_out_rows and not data.train_rows:
        raise StageError("Every ranking is of a held-out prompt; none is left to train on.")
    metrics, model_dir = _train_from(
        run,
        "rm",
        # InstructGPT's RM starts from the SFT model
        selectors.training_start_policy(training_round=training_round),
        data,
        "reward model the trainer wrote",
    )
    return StageResult(
        metrics={
            **summary(metrics),
            "held_out_source": "valid/test prompts" if data.held_out_rows else "trainer split",
        },
        artifacts={"model": relative(model_dir)},
    )


def _ptx_text(run: TrainingRun, folder: Path) -> str:
    """PPO-ptx's text (InstructGPT mixes pretraining text into PPO's loss; a round has none,
    so it uses the snapshot's demonstrations of train prompts, the SFT data): their file."""
    data = snapshot_split(
        folder, contract.DEMONSTRATIONS, contract.Demonstration, into=stage_dir(run)
    )
    if not data.train_rows:
        raise StageError(
            "ptx_coef > 0 mixes an LM loss on demonstrations into PPO, and the snapshot has no "
            "demonstration of a train prompt: collect some, or set ppo.ptx_coef to 0."
        )
    return str(data.train)


def ppo(run: TrainingRun) -> StageResult:
    """PPO against the round's reward model on the snapshot's train prompts; resumes from its
    checkpoint when a lost worker's run is executed again; registers the new policy once."""
    training_round = run.round
    rm_dir = run_artifact(succeeded(training_round, Stage.RM), "model", "reward model")
    folder = snapshot_verify(snapshot_of(training_round, "train PPO on"))
    sft_policy = selectors.round_sft_policy(training_round=training_round)
    policy = sft_policy or training_round.start_policy
    # The KL penalty is measured from the SFT policy, as in InstructGPT: this round's when it
    # fine-tuned one; else a later round starts from the last PPO policy but keeps the
    # SFT/base policy the lineage grew from.
    anchor = sft_policy or selectors.lineage_root(policy=policy)
    model_dir = stage_dir(run, "model")
    config = trainer_settings(
        training_round,
        "ppo",
        policy=policy_model(policy),
        reference=policy_model(anchor),
        reward_model=str(rm_dir),
        prompts=str(folder / contract.PROMPTS),
        split="train",
        seed=training_round.config["seed"],
        resume=True,  # a re-run after a lost worker continues from the last checkpoint
    )
    if config.get("ptx_coef", 0) > 0:
        config["ptx"] = _ptx_text(run, folder)
    if run.attempt == 1:  # nothing of an earlier run in this folder may be resumed
        for leftover in (contract.CHECKPOINT_DIR, *contract.CHECKPOINT_LEFTOVERS):
            shutil.rmtree(model_dir / leftover, ignore_errors=True)
    metrics = run_trainer(run, "ppo", config, model_dir)
    if not metrics.get("finished", True):
        raise StageError("PPO stopped before its last step (see the log).")
    require_model_dir(model_dir, "policy PPO wrote")
    new_policy = policy_register(run=run, model_dir=model_dir)
    return StageResult(
        metrics={**summary(metrics), "policy_id": new_policy.pk},
        artifacts={"model": relative(model_dir)},
    )
