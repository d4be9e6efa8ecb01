"""Exporting: freeze the round's judgments into a dataset snapshot (apps/loop/snapshots.py)."""

from __future__ import annotations

from apps.loop.errors import StageError
from apps.loop.models import TrainingRun
from apps.loop.snapshots import snapshot_create
from apps.loop.stages.base import StageResult
from trainer import contract


def execute(run: TrainingRun) -> StageResult:
    snapshot = snapshot_create(training_round=run.round)
    if snapshot.row_counts.get(contract.RANKINGS, 0) == 0:
        raise StageError(
            "No judgments passed the snapshot's filters "
            f"({snapshot.data_card['filters']['review_statuses']}); nothing to train on."
        )
    return StageResult(
        metrics={"snapshot_id": snapshot.pk, **snapshot.row_counts},
        artifacts={"snapshot": snapshot.path},
    )
