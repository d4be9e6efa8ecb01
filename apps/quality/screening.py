"""Screening: a new rater answers the project's gold tasks before regular work.

`QualityScreening` is the implementation of the assignment engine's screening interface
(apps/collection/screening.py), registered when the app loads (apps/quality/apps.py);
`leasing.assignment_next` calls its `gate` inside its transaction, with the rater's profile
row locked, so a rater's screening state changes one request at a time.
The outcome is decided lazily, when the rater next asks for work, from their answers to
gold tasks; no hook on judgment submission is needed. A rater is never told which tasks
were gold: the pass/fail decision only shows on reviewer pages, and a failed rater is told
that their screening did not pass, not which answers were wrong.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from apps.collection.models import Assignment, Judgment, Project, Task
from apps.collection.screening import ScreeningGate, ScreeningProgress
from apps.quality import agreement as ag
from apps.quality.models import ProjectQualitySettings, RaterScreening
from apps.quality.selectors import quality_settings

SCREENING_FAILED_MESSAGE = (
    "Your screening for this project did not pass, so regular work is closed to you for now. "
    "A reviewer has been told and may reopen it."
)


def gold_accuracy(judgments: list[Judgment], tasks: dict[int, Task]) -> tuple[float, int]:
    """Share of the gold rankings' strict pairwise comparisons the rater matched, and how
    many comparisons that was (pooled over the judgments)."""
    matched = compared = 0
    for judgment in judgments:
        task = tasks[judgment.task_id]
        ids = sorted({cid for group in task.gold_ranking for cid in group})
        slot_of = ag.slot_index(ids)
        gold = ag.ranking_to_positions(task.gold_ranking, slot_of, len(ids))
        own = ag.ranking_to_positions(judgment.ranking, slot_of, len(ids))
        gold_pref, gold_valid = ag.pairwise_preferences(gold[None, :])
        own_pref, own_valid = ag.pairwise_preferences(own[None, :])
        strict = gold_valid & own_valid & (gold_pref != 0)
        matched += int((strict & (own_pref == gold_pref)).sum())
        compared += int(strict.sum())
    return (matched / compared if compared else float("nan")), compared


def _start(*, project: Project, rater) -> RaterScreening:
    worked_before = Assignment.objects.filter(
        rater=rater, task__project=project, task__is_gold=False
    ).exists()
    state = RaterScreening.State.WAIVED if worked_before else RaterScreening.State.SCREENING
    screening, _ = RaterScreening.objects.get_or_create(
        project=project,
        rater=rater,
        defaults={
            "state": state,
            "reason": "Worked on this project before screening began." if worked_before else "",
        },
    )
    return screening


def screening_evaluate(*, screening: RaterScreening, size: int, threshold: float, now) -> None:
    """Count the rater's gold answers; once there are `size`, decide pass or fail."""
    judgments = list(
        Judgment.objects.filter(
            rater_id=screening.rater_id, task__project_id=screening.project_id, task__is_gold=True
        ).order_by("created_at", "pk")[:size]
    )
    tasks = Task.objects.in_bulk([j.task_id for j in judgments])
    screening.gold_answered = len(judgments)
    fields = ["gold_answered", "updated_at"]
    if len(judgments) >= size:
        accuracy, compared = gold_accuracy(judgments, tasks)
        passed = bool(np.isfinite(accuracy) and accuracy >= threshold)
        screening.gold_accuracy = None if not np.isfinite(accuracy) else accuracy
        screening.state = RaterScreening.State.PASSED if passed else RaterScreening.State.FAILED
        screening.decided_at = now
        screening.reason = (
            f"Matched {accuracy:.0%} of {compared} gold comparisons over {len(judgments)} "
            f"screening tasks; the threshold is {threshold:.0%}."
        )
        fields += ["gold_accuracy", "state", "decided_at", "reason"]
    screening.save(update_fields=fields)


def screening_gate(*, project: Project, rater, now: datetime) -> ScreeningGate:
    """Where screening leaves this rater in this project; decides pass/fail when due.

    The caller raises `SCREENING_FAILED_MESSAGE` for CLOSED only after its transaction
    commits, so that the decision written here is kept.
    """
    settings = quality_settings(project=project)
    if not settings.screening_size:
        return ScreeningGate.REGULAR
    screening = _start(project=project, rater=rater)
    if screening.state == RaterScreening.State.SCREENING:
        screening_evaluate(
            screening=screening,
            size=settings.screening_size,
            threshold=settings.screening_threshold,
            now=now,
        )
    if screening.state == RaterScreening.State.FAILED:
        return ScreeningGate.CLOSED
    if screening.state == RaterScreening.State.SCREENING:
        return ScreeningGate.GOLD_ONLY
    return ScreeningGate.REGULAR


class QualityScreening:
    """Screening as the assignment engine asks for it (apps/collection/screening.py)."""

    settings_model = ProjectQualitySettings
    failed_message = SCREENING_FAILED_MESSAGE

    def gate(self, *, project: Project, rater, now: datetime) -> ScreeningGate:
        return screening_gate(project=project, rater=rater, now=now)

    settings_fields = {
        "size": ("int", 0, 100),  # gold tasks before regular work; 0: no screening
        "threshold": ("float", 0.0, 1.0),  # share of the gold comparisons to match
        "min_judgments_for_flags": ("int", 1, 10_000),
        "stats_max_age_seconds": ("int", 10, 86_400),
    }
    _columns = {"size": "screening_size", "threshold": "screening_threshold"}

    def settings_read(self, *, project: Project) -> dict:
        row = quality_settings(project=project)
        return {name: getattr(row, self._columns.get(name, name)) for name in self.settings_fields}

    def settings_save(self, *, project: Project, values: dict) -> None:
        if not values:
            return
        row, _ = ProjectQualitySettings.objects.get_or_create(project=project)
        for name, value in values.items():
            setattr(row, self._columns.get(name, name), value)
        row.save()

    def progress(self, *, project: Project, rater) -> ScreeningProgress | None:
        screening = RaterScreening.objects.filter(project=project, rater=rater).first()
        if screening is not None and screening.state == RaterScreening.State.FAILED:
            return ScreeningProgress(ScreeningGate.CLOSED, screening.gold_answered, 0)
        size = quality_settings(project=project).screening_size
        if not size:
            return None
        if screening is None:  # starts at the rater's first task, unless they worked here
            worked = Assignment.objects.filter(
                rater=rater, task__project=project, task__is_gold=False
            ).exists()
            return None if worked else ScreeningProgress(ScreeningGate.GOLD_ONLY, 0, size)
        if screening.state == RaterScreening.State.SCREENING:
            return ScreeningProgress(ScreeningGate.GOLD_ONLY, screening.gold_answered, size)
        return None
