"""Tells the labeler home when a round's sampling will bring new ranking tasks
(apps/collection/upcoming.py; registered when the app is ready)."""

from __future__ import annotations

from apps.collection import upcoming
from apps.collection.models import Project
from apps.loop.models import Stage, TrainingRound, TrainingRun

SAMPLING_SECONDS = 300.0  # before a project's first sampling run has finished


def seconds_until_sampled(project: Project) -> float | None:
    """While a round of `project` samples: how long its sampling usually takes (the last
    finished sampling run of the project) less how long this one has run."""
    sampling = (
        TrainingRound.objects.filter(project=project, stage=Stage.SAMPLING)
        .order_by("-created_at")
        .first()
    )
    if sampling is None:
        return None
    run = TrainingRun.objects.filter(round=sampling, stage=Stage.SAMPLING).first()
    started = (run.started_at if run else None) or sampling.created_at
    previous = (
        TrainingRun.objects.filter(
            round__project=project,
            stage=Stage.SAMPLING,
            status=TrainingRun.Status.SUCCEEDED,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .first()
    )
    expected = (
        (previous.finished_at - previous.started_at).total_seconds()
        if previous
        else SAMPLING_SECONDS
    )
    return upcoming.remaining(started=started, expected_seconds=expected)


def register() -> None:
    upcoming.register(seconds_until_sampled)
