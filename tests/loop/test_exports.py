"""Snapshots: files exactly as DESIGN.md describes, hashes, data card, and TRL compatibility."""

from __future__ import annotations

import json
import uuid

import pytest

from apps.collection.leasing import assignment_next
from apps.collection.models import ReviewStatus
from apps.collection.services import judgment_submit
from apps.core.roles import Role
from apps.loop import exports, services
from apps.loop.config import round_config
from apps.loop.models import DatasetSnapshot, Stage, TrainingRound
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db


def _judge(project, raters, tasks, *, flip_last=False):
    """Every rater ranks every task canonical order (the last rater reversed if asked)."""
    for task in tasks:
        for index, rater in enumerate(raters):
            assignment = assignment_next(project=project, rater=rater)
            assert assignment is not None and assignment.task_id == task.pk
            ids = list(task.task_completions.values_list("completion_id", flat=True))
            if flip_last and index == len(raters) - 1:
                ids = ids[::-1]
            groups = [[ids[0], ids[1]], *[[i] for i in ids[2:]]]  # a tie on top
            judgment_submit(
                assignment_id=assignment.pk,
                rater=rater,
                client_key=uuid.uuid4(),
                ranking=groups,
                likert={str(i): 4 for i in ids},
            )


@pytest.fixture
def judged(project):
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(3)]
    tasks = [make_task(project, overlap=3) for _ in range(3)]
    for task in tasks:
        task.round_number = 1
        task.save()
    _judge(project, raters, tasks, flip_last=True)
    return project, tasks


def _round(project, policy, **config):
    return TrainingRound.objects.create(
        project=project,
        number=1,
        start_policy=policy,
        stage=Stage.EXPORTING,
        config=round_config(overrides=config),
    )


def test_snapshot_files_manifest_and_data_card(judged):
    project, tasks = judged
    from apps.collection.models import Judgment, PolicyVersion

    Judgment.objects.filter(rater__username__isnull=False).update(
        review_status=ReviewStatus.APPROVED
    )
    rejected = Judgment.objects.order_by("pk").first()
    rejected.review_status = ReviewStatus.REJECTED
    rejected.save()
    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    snapshot = services.snapshot_create(training_round=_round(project, policy))
    folder = services.snapshot_folder(snapshot)

    rankings = [json.loads(line) for line in (folder / "rankings.jsonl").read_text().splitlines()]
    assert len(rankings) == 8  # 9 judgments, one rejected
    first = rankings[0]
    assert list(first) == [
        "prompt",
        "completions",
        "ranking",
        "rater",
        "task_id",
        "judgment_id",
        "policy_versions",
        "weight",
    ]
    assert first["ranking"][0] == [0, 1] or len(first["ranking"][0]) == 2  # the tie survives
    assert first["rater"].startswith("rater-")  # pseudonym, never the username
    pairs = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
    # K=4 with the top two tied: 6 pairs minus the tied one = 5 strict pairs per judgment
    assert len(pairs) == 8 * 5
    assert set(pairs[0]) == {"prompt", "chosen", "rejected"}
    prompts = [json.loads(line) for line in (folder / "prompts.jsonl").read_text().splitlines()]
    assert set(prompts[0]) == {"id", "prompt", "category", "split"}

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["snapshot_id"] == snapshot.uid
    assert manifest["files"]["rankings.jsonl"]["rows"] == 8
    for name in exports.FILES:
        assert manifest["files"][name]["sha256"] == exports.file_sha256(folder / name)
    assert manifest["filters"]["review_statuses"] == ["approved"]
    assert manifest["guidelines_version"] == project.guidelines_version
    card = snapshot.data_card
    assert card["raters"]["count"] == 3
    agreement = card["agreement"]
    assert agreement["source"] == "apps.quality.agreement"
    assert 0 < agreement["pairwise_agreement"] < 1  # one rater reversed everything
    assert snapshot.manifest_sha256 == exports.file_sha256(folder / "manifest.json")
    with pytest.raises(ValueError, match="immutable"):
        snapshot.save()
    # exporting again for the same round freezes nothing new
    assert services.snapshot_create(training_round=TrainingRound.objects.get()) == snapshot
    assert DatasetSnapshot.objects.count() == 1


def test_consensus_weights_lower_the_adversarial_rater(judged):
    project, _ = judged
    from apps.collection.models import PolicyVersion

    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    training_round = _round(project, policy, require_review=False, weighting="consensus")
    snapshot = services.snapshot_create(training_round=training_round)
    rows = [
        json.loads(line)
        for line in (services.snapshot_folder(snapshot) / "rankings.jsonl").read_text().splitlines()
    ]
    weights = {}
    for row in rows:
        weights[row["rater"]] = row["weight"]
    assert len(set(weights.values())) == 2
    assert min(weights.values()) < 1 < max(weights.values())
    assert (
        "rater_reliability" in snapshot.data_card["weighting"]
        or "quality" in (snapshot.data_card["weighting"])
    )


@pytest.mark.slow
def test_pairs_load_with_datasets_and_train_trl_reward_trainer(judged, tmp_path, tiny_model_dir):
    project, _ = judged
    from datasets import load_dataset
    from trl import RewardConfig, RewardTrainer

    from apps.collection.models import PolicyVersion
    from trainer.models import load_scalar_model

    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    snapshot = services.snapshot_create(
        training_round=_round(project, policy, require_review=False)
    )
    pairs = services.snapshot_folder(snapshot) / "pairs.jsonl"
    dataset = load_dataset("json", data_files=str(pairs), split="train")
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    assert len(dataset) == snapshot.row_counts["pairs.jsonl"]

    model, tokenizer = load_scalar_model(str(tiny_model_dir))
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            output_dir=str(tmp_path / "trl-rm"),
            max_steps=3,
            per_device_train_batch_size=4,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            use_cpu=True,
        ),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 3
    assert result.training_loss == result.training_loss  # a number, not NaN
