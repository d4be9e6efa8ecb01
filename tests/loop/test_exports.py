"""Snapshots: files as the contract (trainer/contract.py) describes them, read back by the
trainer row for row; hashes, the data card, and TRL compatibility."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from apps.collection.leasing import assignment_next
from apps.collection.models import ReviewStatus
from apps.collection.services import judgment_submit, membership_add
from apps.core.roles import Role
from apps.loop import exports, snapshots
from apps.loop.config import round_config
from apps.loop.models import DatasetSnapshot, Stage, TrainingRound
from apps.quality.models import QualitySnapshot
from tests.factories import UserFactory, make_task
from trainer import contract, data

pytestmark = pytest.mark.django_db


def _judge(project, raters, tasks, *, flip_last=False):
    """Every rater ranks every task canonical order (the last rater reversed if asked)."""
    for task in tasks:
        for index, rater in enumerate(raters):
            assignment = assignment_next(project=project, rater=rater)
            assert assignment is not None and assignment.task_id == task.pk
            ids = list(
                task.task_completions.order_by("position").values_list("completion_id", flat=True)
            )
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
    snapshot = snapshots.snapshot_create(training_round=_round(project, policy))
    folder = snapshots.snapshot_folder(snapshot)

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
    # the second rater of the first task (the first judgment was rejected): canonical order,
    # the top two tied
    assert first["ranking"] == [[0, 1], [2], [3]]
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
    assert set(manifest["files"]) == set(contract.DATASET_FILES)
    for name in contract.DATASET_FILES:
        assert manifest["files"][name]["sha256"] == contract.file_sha256(folder / name)
    assert manifest["filters"]["review_statuses"] == ["approved"]
    assert manifest["guidelines_version"] == project.guidelines_version
    card = snapshot.data_card
    assert card["raters"]["count"] == 3
    agreement = card["agreement"]
    assert agreement["source"] == "apps.quality.agreement"
    assert 0 < agreement["pairwise_agreement"] < 1  # one rater reversed everything
    assert snapshot.manifest_sha256 == contract.file_sha256(folder / "manifest.json")
    # the page shows the data card as a table of sentences, not Python dicts
    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    browser = Client()
    browser.force_login(researcher)
    page = browser.get(f"/research/snapshots/{snapshot.pk}/").content.decode()
    card_html = page[page.index('data-testid="data-card"') :]
    assert "{&#x27;" not in card_html and "{'" not in card_html
    assert (
        "ranking tasks; judgments approved; rounds up to 1 and tasks made outside rounds "
        "(seeded, sampled or imported); gold tasks left out" in card_html
    )
    assert "3 rater(s)" in card_html and "% pairwise (95% CI" in card_html
    with pytest.raises(ValueError, match="immutable"):
        snapshot.save()
    # exporting again for the same round freezes nothing new
    assert snapshots.snapshot_create(training_round=TrainingRound.objects.get()) == snapshot
    assert DatasetSnapshot.objects.count() == 1


def test_consensus_weights_lower_the_adversarial_rater(judged):
    project, _ = judged
    from apps.collection.models import PolicyVersion

    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    training_round = _round(project, policy, require_review=False, weighting="consensus")
    snapshot = snapshots.snapshot_create(training_round=training_round)
    rows = [
        json.loads(line)
        for line in (snapshots.snapshot_folder(snapshot) / "rankings.jsonl")
        .read_text()
        .splitlines()
    ]
    weights = {}
    for row in rows:
        weights[row["rater"]] = row["weight"]
    assert len(set(weights.values())) == 2
    assert min(weights.values()) < 1 < max(weights.values())
    # no quality snapshot had been computed for the project: the export computed one, on
    # every judgment it exports, and its rater weights are the ones written
    # (two raters who agree on everything weigh the same; the one who reversed everything 0;
    # scaled to a mean of 1 over the 9 rankings: 0, 1.5, 1.5)
    assert QualitySnapshot.objects.get(project=project).judgments == len(rows) == 9
    assert sorted(weights.values()) == pytest.approx([0.0, 1.5, 1.5])
    assert snapshot.data_card["weighting"].startswith("apps.quality.selectors.rater_weights")


def test_what_the_exporter_writes_the_trainer_reads_row_for_row(judged):
    project, _ = judged
    from apps.collection.models import Demonstration, PolicyVersion, Prompt

    held = Prompt.objects.filter(project=project).first()
    held.split, held.reference = "test", "A reference answer."
    held.save()
    rater = UserFactory(roles=[Role.LABELER])
    Demonstration.objects.create(prompt=held, rater=rater, text='Ünïcode "quoted"\nanswer')
    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    training_round = _round(project, policy, require_review=False, weighting="consensus")
    filters = exports.ExportFilters(review_statuses=("approved", "pending"), max_round=1)
    snapshot = snapshots.snapshot_create(training_round=training_round)
    folder = snapshots.snapshot_folder(snapshot)
    written = exports.collect_rows(
        project=project,
        filters=filters,
        weights={r.rater: r.weight for r in data.read_rankings(folder / contract.RANKINGS)},
    )

    # the trainer's readers (trainer/data.py) give back exactly the records the exporter wrote
    assert data.read_rankings(folder / contract.RANKINGS) == written.rankings
    assert data.read_demonstrations(folder / contract.DEMONSTRATIONS) == written.demonstrations
    assert data.read_prompts(folder / contract.PROMPTS) == written.prompts
    assert contract.read_pairs(folder / contract.PAIRS) == written.pairs
    assert len(written.rankings) == 9 and len(written.demonstrations) == 1
    assert {r.weight for r in written.rankings} != {1.0}  # consensus weights survive the trip
    assert [p for p in written.prompts if p.reference] == [
        contract.Prompt(str(held.pk), held.text, held.category, "test", "A reference answer.")
    ]
    # and the manifest the database keeps is the one on disk
    assert contract.read_manifest(folder) == contract.Manifest.from_json(snapshot.manifest, "db")
    assert contract.verify_folder(folder, contract.read_manifest(folder)) == []


@pytest.mark.slow
def test_pairs_load_with_datasets_and_train_trl_reward_trainer(judged, tmp_path, tiny_model_dir):
    project, _ = judged
    from datasets import load_dataset
    from trl import RewardConfig, RewardTrainer

    from apps.collection.models import PolicyVersion
    from trainer.models import load_scalar_model

    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    snapshot = snapshots.snapshot_create(
        training_round=_round(project, policy, require_review=False)
    )
    pairs = snapshots.snapshot_folder(snapshot) / "pairs.jsonl"
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


def test_every_source_the_filters_admit_reaches_the_snapshot(project, tmp_path):
    """Judgments of an earlier round, of tasks no round made (the demo's seeded tasks), and
    imported preference data all reach round 2's snapshot, counted per source."""
    from django.core.management import call_command

    from apps.collection.models import Judgment, PolicyVersion

    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(2)]
    earlier, seeded, current = (make_task(project, overlap=2) for _ in range(3))
    earlier.round_number, current.round_number = 1, 2
    earlier.save()
    current.save()  # `seeded` keeps round_number None, as seed_demo's tasks do
    _judge(project, raters, [earlier, seeded, current])
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"Imported question {i}?", "chosen": "Yes.", "rejected": "No."})
            + "\n"
            for i in range(3)
        )
    )
    call_command("import_preferences", project.slug, str(pairs), "--format", "pairs")
    assert Judgment.objects.filter(source=Judgment.Source.IMPORTED).count() == 3
    policy = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/nowhere")
    round2 = TrainingRound.objects.create(
        project=project,
        number=2,
        start_policy=policy,
        stage=Stage.EXPORTING,
        config=round_config(overrides={"require_review": False}),
    )
    snapshot = snapshots.snapshot_create(training_round=round2)
    assert snapshot.data_card["rankings_by_source"] == {
        "this_round": 2,
        "earlier_rounds": 2,
        "outside_rounds": 2,
        "imported": 3,
    }
    folder = snapshots.snapshot_folder(snapshot)
    rankings = contract.read_rows(folder / contract.RANKINGS, contract.Ranking)
    assert len(rankings) == 9 == snapshot.row_counts[contract.RANKINGS]
    assert {r.task_id for r in rankings} >= {earlier.pk, seeded.pk, current.pk}
    assert sum(r.prompt.startswith("Imported question") for r in rankings) == 3
    # the snapshot page says where the rows came from
    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    browser = Client()
    browser.force_login(researcher)
    page = browser.get(f"/research/snapshots/{snapshot.pk}/").content.decode()
    assert (
        "2 from this round, 2 from earlier rounds, 2 from tasks made outside rounds, 3 imported"
        in page
    )
    assert "rounds up to 2 and tasks made outside rounds" in page

    # a round that takes only its own judgments leaves the others out
    only = TrainingRound.objects.create(
        project=project,
        number=3,
        start_policy=policy,
        stage=Stage.EXPORTING,
        config=round_config(overrides={"require_review": False, "include_previous_rounds": False}),
    )
    current.round_number = 3
    current.save()
    narrow = snapshots.snapshot_create(training_round=only)
    assert narrow.data_card["rankings_by_source"] == {
        "this_round": 2,
        "earlier_rounds": 0,
        "outside_rounds": 0,
        "imported": 0,
    }
