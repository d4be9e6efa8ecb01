"""Policies of the loop: where the trainer loads one from, and registering what a run made.

A policy's `artifact_uri` comes from the policy registry (an administrator's entry, or a run's
output folder), never from a round's config; `policy_model` is the only way a stage turns a
policy into a path for the trainer.
"""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, transaction

from apps.collection.models import PolicyVersion
from apps.loop.artifacts import artifact_path, relative, require_model_dir
from apps.loop.errors import StageError
from apps.loop.models import Stage, TrainingRun


def policy_location(policy: PolicyVersion) -> str:
    """What the trainer loads: a folder (absolute, or relative to ARTIFACT_ROOT) or a hub name."""
    uri = policy.artifact_uri.strip()
    if not uri:
        raise StageError(f"Policy {policy.name!r} has no artifact_uri to load it from.")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    path = Path(uri)
    if path.is_absolute():
        return str(path)
    under_root = artifact_path(uri)
    if under_root.exists() or uri.count("/") != 1:
        return str(under_root)
    return uri  # "owner/name": a hub model


def policy_model(policy: PolicyVersion) -> str:
    """`policy_location`, checked whole when it is a folder on this machine."""
    location = policy_location(policy)
    if Path(location).is_absolute():
        require_model_dir(Path(location), f"policy {policy.name!r}")
    return location


def policy_register(*, run: TrainingRun, model_dir: Path) -> PolicyVersion:
    """Register the policy an SFT or PPO run produced, exactly once (safe to call again).

    An SFT policy's parent is the round's policy; a PPO policy's is the round's SFT policy
    when there is one, else the round's policy."""
    training_round = run.round
    is_sft = run.stage == Stage.SFT
    name = f"round-{training_round.number}-{run.stage}"
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.produced_policy_id:
            return locked.produced_policy
        parent = training_round.start_policy
        metadata = {"round_id": training_round.pk, "snapshot_id": training_round.snapshot_id}
        if is_sft:
            metadata["sft_run_id"] = run.pk
        else:
            sft_run, rm_run = (
                TrainingRun.objects.filter(round=training_round, stage=stage)
                .select_related("produced_policy")
                .first()
                for stage in (Stage.SFT, Stage.RM)
            )
            parent = (sft_run and sft_run.produced_policy) or parent
            metadata.update(
                ppo_run_id=run.pk,
                rm_run_id=rm_run.pk if rm_run else None,
                sft_run_id=sft_run.pk if sft_run else None,
            )
        try:
            with transaction.atomic():
                policy = PolicyVersion.objects.create(
                    project=training_round.project,
                    name=name,
                    kind=PolicyVersion.Kind.SFT if is_sft else PolicyVersion.Kind.PPO,
                    artifact_uri=relative(model_dir),
                    parent=parent,
                    round_number=training_round.number,
                    metadata=metadata,
                )
        except IntegrityError as exc:
            raise StageError(
                f"A policy named {name!r} already exists in this project and was not made by "
                "this run; rename it to register the new one."
            ) from exc
        locked.produced_policy = policy
        locked.save(update_fields=["produced_policy", "updated_at"])
    return policy
