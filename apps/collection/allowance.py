"""Dynamic overlap, the collection side: a task's allowance of raters grows one slot at a time.

A ranking task of a project with dynamic overlap is created with `overlap` = the project's
starting overlap and `max_overlap` = its maximum. `overlap` stays what the assignment engine
reads as the task's allowance, so `next` and its invariants are unchanged: never more live
plus submitted assignments than `overlap`, and `overlap` never above `max_overlap` (a check
constraint). When a judgment fills the allowance, `task_settle` — called by the submit, in
its transaction, holding the task's row lock — asks the registered slot decider whether the
task needs one more rater; if so the allowance grows by one, else the task is complete.

Whether a task is settled is the consensus's question, and collection does not answer it:
the quality app registers its decider at start-up (`apps/quality/apps.py`). Collection never
imports quality. With no decider registered a full task completes, as with fixed overlap.
Tasks without `max_overlap` (fixed overlap, gold and screening tasks, A/B evaluation tasks)
take the one-statement path they always took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from apps.collection.leasing import task_complete_if_full
from apps.collection.models import Assignment, Task
from apps.core import sql


@dataclass(frozen=True)
class FullTask:
    """A dynamic-overlap task whose allowance has just filled with submitted judgments."""

    task_id: int
    project_id: int
    submitted: int  # judgments in, = the allowance
    max_overlap: int

    @property
    def can_extend(self) -> bool:
        return self.submitted < self.max_overlap


# (task, now) → True when the task should get one more rater. Runs inside the submit's
# transaction with the task row locked: it must be quick and must not commit.
SlotDecider = Callable[[FullTask, datetime], bool]
_decider: SlotDecider | None = None


def register_slot_decider(decider: SlotDecider | None) -> None:
    """Install the function that decides extra slots (the quality app does, at start-up)."""
    global _decider
    _decider = decider


def slot_decider() -> SlotDecider | None:
    return _decider


def _submitted(task_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {sql.table(Assignment)} WHERE task_id = %s AND status = %s",
            [task_id, Assignment.Status.SUBMITTED],
        )
        return cursor.fetchone()[0]


def task_settle(*, task: Task, now: datetime) -> None:
    """After an answer to `task` is stored (its row locked by the caller): complete the task
    when it is full and settled, give it one more slot when the decider asks for one."""
    if task.max_overlap is None:
        task_complete_if_full(task_id=task.pk, now=now)
        return
    if task.status != Task.Status.OPEN:
        return
    submitted = _submitted(task.pk)
    if submitted < task.overlap:
        return  # raters still hold the other slots
    full = FullTask(
        task_id=task.pk,
        project_id=task.project_id,
        submitted=submitted,
        max_overlap=task.max_overlap,
    )
    extend = _decider is not None and _decider(full, now) and full.can_extend
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        if extend:
            cursor.execute(
                f"UPDATE {sql.table(Task)} SET overlap = %s, updated_at = %s WHERE id = %s",
                [submitted + 1, stamp, task.pk],
            )
            task.overlap = submitted + 1
        else:
            cursor.execute(
                f"UPDATE {sql.table(Task)} SET status = %s, updated_at = %s WHERE id = %s",
                [Task.Status.COMPLETE, stamp, task.pk],
            )
            task.status = Task.Status.COMPLETE
