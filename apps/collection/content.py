"""What a task shows a rater: its prompt and its completions, read in one statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from apps.collection.models import Assignment, Completion, Prompt, Task, TaskCompletion
from apps.core import sql

# An assignment row `a` that holds one of its task's slots at the time given by the last
# parameter (submitted, or leased and not yet expired).
SLOT_HOLDING_SQL = "(a.status = %s OR (a.status = %s AND a.expires_at > %s))"


def slot_holding_params(now: datetime) -> list:
    return [
        Assignment.Status.SUBMITTED,
        Assignment.Status.LEASED,
        connection.ops.adapt_datetimefield_value(now),
    ]


@dataclass(frozen=True)
class TaskContent:
    kind: str
    prompt_id: int
    prompt_text: str
    completions: dict[int, str]  # text by completion id, in the task's canonical order
    taken_slots: int | None = None  # slots held when read, if `task_content` was asked to count


def task_content(*, task_id: int, slots_at: datetime | None = None) -> TaskContent:
    """The task's prompt and completions. With `slots_at`, the same statement also counts the
    slots held at that time: `next` recounts the task it is about to lease and reads what it
    will show in one round trip."""
    count = (
        f""", (SELECT COUNT(*) FROM {sql.table(Assignment)} a
               WHERE a.task_id = t.id AND {SLOT_HOLDING_SQL})"""
        if slots_at is not None
        else ""
    )
    query = f"""
        SELECT t.kind, t.prompt_id, p.text, c.id, c.text{count}
        FROM {sql.table(Task)} t
        JOIN {sql.table(Prompt)} p ON p.id = t.prompt_id
        LEFT JOIN {sql.table(TaskCompletion)} tc ON tc.task_id = t.id
        LEFT JOIN {sql.table(Completion)} c ON c.id = tc.completion_id
        WHERE t.id = %s
        ORDER BY tc.position"""
    params = [*(slot_holding_params(slots_at) if slots_at is not None else []), task_id]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    kind, prompt_id, prompt_text = rows[0][:3]
    return TaskContent(
        kind=kind,
        prompt_id=prompt_id,
        prompt_text=prompt_text,
        completions={row[3]: row[4] for row in rows if row[3] is not None},
        taken_slots=rows[0][5] if slots_at is not None else None,
    )
