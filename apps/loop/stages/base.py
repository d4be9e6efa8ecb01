"""What every stage shares: its typed result, and the checks it makes before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.loop import selectors
from apps.loop.errors import StageError
from apps.loop.models import Stage, TrainingRound, TrainingRun


@dataclass(frozen=True)
class StageResult:
    """What a stage hands back to the executor, which records it on the run."""

    metrics: dict
    """Final figures, shown on the round page and in GET /api/rounds/{id}/."""
    artifacts: dict[str, str] = field(default_factory=dict)
    """name → path relative to ARTIFACT_ROOT (a model folder, a snapshot, ...)."""


def succeeded(training_round: TrainingRound, stage: Stage) -> TrainingRun:
    """The round's run of `stage`, which a later stage needs to have succeeded."""
    run = selectors.succeeded_run(training_round=training_round, stage=stage)
    if run is None:
        raise StageError(f"The {Stage(stage).label.lower()} stage of this round has not succeeded.")
    return run


def snapshot_of(training_round: TrainingRound, purpose: str):
    """The round's dataset snapshot, which the stage needs for `purpose`."""
    if training_round.snapshot is None:
        raise StageError(f"The round has no dataset snapshot to {purpose}.")
    return training_round.snapshot
