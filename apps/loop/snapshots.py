"""Dataset snapshots: freeze a round's judgments into hashed files, check them, split them.

A snapshot is written once through the contract (apps/loop/exports.py, trainer/contract.py),
made read-only, and recorded with its manifest; a stage that reads one verifies every file
against the manifest's sha256 first. The split into train and held-out rows is by the prompt's
split: rows of valid/test prompts are never trained on.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from apps.collection.models import Project, ReviewStatus
from apps.loop import agreement, exports
from apps.loop.artifacts import artifact_path
from apps.loop.errors import StageError
from apps.loop.models import DatasetSnapshot, Stage, TrainingRound, TrainingRun
from apps.quality.selectors import rater_weights as quality_rater_weights
from apps.quality.services import quality_snapshot_refresh
from trainer import contract


def _consensus_weights(project: Project, rows: list[agreement.JudgmentRow], judgments) -> tuple:
    """Per-pseudonym weights: the quality module's rater weights (each rater's skill fitted to
    the agreement of every pair of co-raters, docs/quality.md), its statistics refreshed first
    so that they are measured on the judgments being exported. The refresh is incremental;
    without it the latest snapshot can predate the whole collection (the demo collects its
    324 judgments in under a minute) and the loop's own leave-one-out majority weights stood
    in, which a noisy co-rater drags about (in a demo draw they gave the most accurate honest
    rater the second-lowest weight). When another refresh of the project is running, its
    latest stored snapshot is used."""
    quality_snapshot_refresh(project_id=project.pk)
    by_id = quality_rater_weights(project=project)
    if by_id:
        pseudonyms = dict(
            judgments.values_list("rater__rater_profile__pseudonym", "rater_id").distinct()
        )
        weights = {p: float(by_id.get(rid, 1.0)) for p, rid in pseudonyms.items() if p}
        mean = sum(weights.get(r.rater, 1.0) for r in rows) / max(len(rows), 1)
        if mean > 0:
            return (
                {p: round(w / mean, 4) for p, w in weights.items()},
                "apps.quality.selectors.rater_weights (rater skill; statistics refreshed "
                "at export)",
            )
    return agreement.rater_weights(rows)


def round_selection_record(training_round: TrainingRound) -> dict:
    """How the round chose its prompts and shown samples: the sampling run's record
    (apps/loop/selection.py), every task's score included."""
    run = (
        TrainingRun.objects.filter(
            round=training_round, stage=Stage.SAMPLING, status=TrainingRun.Status.SUCCEEDED
        )
        .order_by("-pk")
        .first()
    )
    recorded = (run.metrics or {}).get("selection") if run else None
    return recorded or {"strategy": training_round.config.get("selection", "off"), "tasks": []}


def snapshot_create(*, training_round: TrainingRound, user=None) -> DatasetSnapshot:
    """Freeze the round's judgments (and earlier rounds', by default) into a snapshot."""
    if training_round.snapshot_id:
        return training_round.snapshot
    project = training_round.project
    config = training_round.config
    statuses = (
        (ReviewStatus.APPROVED,)
        if config.get("require_review", True)
        else (ReviewStatus.APPROVED, ReviewStatus.PENDING)
    )
    filters = exports.ExportFilters(
        review_statuses=statuses,
        max_round=training_round.number,
        min_round=None if config.get("include_previous_rounds", True) else training_round.number,
        # "only this round" leaves out the tasks no round made too
        outside_rounds=config.get("include_previous_rounds", True),
    )
    number = training_round.number
    rows = exports.collect_rows(project=project, filters=filters, round_number=number)
    weighting = "uniform"
    if config.get("weighting") == "consensus":
        judgments = exports.judgments_for_export(project=project, filters=filters)
        weights, weighting = _consensus_weights(project, rows.judgment_rows, judgments)
        rows = exports.collect_rows(
            project=project, filters=filters, weights=weights, round_number=number
        )
    uid = uuid.uuid4().hex
    folder_name = f"snapshots/{project.pk}/{uid}"
    folder = artifact_path(folder_name)
    files = exports.write_files(folder, rows)
    agreement_figures = agreement.agreement_figures(rows.judgment_rows)
    held_out_tasks = {r.task_id for r in rows.held_out_rankings}
    # the raters' agreement on the held-out tasks: the ceiling of the reward model's held-out
    # accuracy, measured on the same judgments
    held_out_agreement = agreement.agreement_figures(
        [row for row in rows.judgment_rows if row.task_id in held_out_tasks]
    )
    filters_shown = filters.as_dict()
    data_card = {
        "project": {"id": project.pk, "name": project.name},
        "round": training_round.number,
        "filters": filters_shown,
        "guidelines_version": project.guidelines_version,
        "judgments_by_guidelines_version": rows.guideline_versions,
        "rankings_by_source": rows.sources,
        "raters": {"count": len(rows.raters), "judgments_by_rater": rows.raters},
        "agreement": agreement_figures,
        "agreement_held_out": held_out_agreement,
        "weighting": weighting,
        "held_out_rankings": len(rows.held_out_rankings),
        "policies": sorted({v for r in rows.rankings for v in r.policy_versions or []}),
        "selection": round_selection_record(training_round),
    }
    manifest = contract.Manifest(
        snapshot_id=uid,
        created_at=timezone.now().isoformat(),
        files=files,
        project_id=project.pk,
        round=training_round.number,
        filters=filters_shown,
        guidelines_version=project.guidelines_version,
        agreement=agreement_figures,
        data_card=data_card,
    )
    manifest_sha256 = contract.write_manifest(folder, manifest)
    for path in folder.iterdir():
        path.chmod(0o444)  # frozen: the files never change after the manifest hashed them
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.snapshot_id:  # a concurrent attempt won; its snapshot stands
            shutil.rmtree(folder, ignore_errors=True)
            return locked.snapshot
        snapshot = DatasetSnapshot.objects.create(
            project=project,
            uid=uid,
            path=folder_name,
            manifest=manifest.to_json(),
            manifest_sha256=manifest_sha256,
            row_counts={name: entry.rows for name, entry in files.items()},
            data_card=data_card,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        locked.snapshot = snapshot
        locked.save(update_fields=["snapshot", "updated_at"])
        training_round.snapshot = snapshot
    return snapshot


def snapshot_folder(snapshot: DatasetSnapshot) -> Path:
    return artifact_path(snapshot.path)


def snapshot_verify(snapshot: DatasetSnapshot) -> Path:
    folder = snapshot_folder(snapshot)
    manifest = contract.Manifest.from_json(snapshot.manifest, f"snapshot {snapshot.pk}")
    problems = contract.verify_folder(folder, manifest)
    if problems:
        raise StageError(f"Snapshot {snapshot.pk} is damaged: {'; '.join(problems)}.")
    return folder


@dataclass(frozen=True)
class HeldOutSplit:
    """A snapshot file split by prompt: rows of train prompts to train on, the rest held out."""

    train: Path
    held_out: Path | None  # None when no row is of a valid/test prompt
    train_rows: int
    held_out_rows: int


def snapshot_split(folder: Path, name: str, record: type, into: Path) -> HeldOutSplit:
    """Split the snapshot file `name` (rows of `record`) by its prompts' split; the two files
    are written into `into` (the snapshot itself stays as it is)."""
    prompts = contract.read_rows(folder / contract.PROMPTS, contract.Prompt)
    split_of = {p.prompt: p.split for p in prompts}
    train, held = [], []
    for row in contract.read_rows(folder / name, record):
        (held if split_of.get(row.prompt) in contract.HELD_OUT_SPLITS else train).append(row)
    if not held:
        return HeldOutSplit(folder / name, None, len(train), 0)
    stem = Path(name).stem
    train_path, held_path = into / f"{stem}-train.jsonl", into / f"{stem}-heldout.jsonl"
    contract.write_rows(train_path, train)
    contract.write_rows(held_path, held)
    return HeldOutSplit(train_path, held_path, len(train), len(held))
