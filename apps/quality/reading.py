"""Judgments out of the database as `measures.JudgmentArrays` columns, whole or since a point.

`judgment_arrays` reads a project's (or some tasks') judgments; with `after_id` only those
with a larger id, for the incremental refresh. `review_changes` reads the review state of
the judgments decided on since a moment.

On PostgreSQL the judgments come as a few dozen binary arrays (reading_postgres.py), so a
million judgments never become a million Python objects. Elsewhere (SQLite, the embedded
default) rows are read with `values_list`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
from django.db import connection
from django.db.models import Func, IntegerField

from apps.accounts.models import RaterProfile
from apps.collection.models import Judgment, Project, ReviewStatus, Task, TaskCompletion
from apps.quality import agreement as ag
from apps.quality.measures import JudgmentArrays
from apps.quality.models import ReviewDecision
from apps.quality.reading_postgres import arrays_postgres

RANKED_KINDS = (Task.Kind.RANKING, Task.Kind.EVALUATION)


class ByteLength(Func):
    """A text's length in UTF-8 bytes (what length bias compares: cheap to read, and the
    same order as characters for text in one language)."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        template = "length(CAST(%(expressions)s AS BLOB))"
        return self.as_sql(compiler, connection, template=template, **extra)


def judgment_arrays(
    *,
    project: Project | None = None,
    task_ids: list[int] | None = None,
    after_id: int | None = None,
) -> JudgmentArrays:
    """The judgments (by raters, on ranking and evaluation tasks) of a project, or of some
    tasks, in ascending id order; with `after_id`, only those with a larger id, and only
    their tasks. Rejected judgments are there with `included` false."""
    tasks = Task.objects.filter(kind__in=RANKED_KINDS)
    tasks = tasks.filter(project=project) if project is not None else tasks.filter(pk__in=task_ids)
    flag_keys = list(project.flag_keys)[:32] if project is not None else []
    if connection.vendor == "postgresql":
        return arrays_postgres(tasks, flag_keys, after_id, rater_names)
    return _arrays_generic(tasks, flag_keys, after_id)


def review_changes(*, project: Project, since: datetime) -> dict[str, np.ndarray]:
    """The review state now (`included`, `reviewed` epoch seconds or nan) of the project's
    judgments with a review decision at or after `since`."""
    decided = ReviewDecision.objects.filter(created_at__gte=since).values("judgment_id")
    rows = list(
        Judgment.objects.filter(pk__in=decided, task__project=project, rater__isnull=False)
        .order_by("pk")
        .values_list("pk", "review_status", "reviewed_at")
    )
    return {
        "judgment_ids": np.array([pk for pk, _, _ in rows], dtype=np.int64),
        "included": np.array([status != ReviewStatus.REJECTED for _, status, _ in rows], bool),
        "reviewed": np.array([_reviewed_epoch(status, at) for _, status, at in rows], float),
    }


def rater_names(rater_ids: np.ndarray) -> dict[int, str]:
    return dict(
        RaterProfile.objects.filter(user_id__in=rater_ids.tolist()).values_list(
            "user_id", "pseudonym"
        )
    )


def _reviewed_epoch(status: str, reviewed_at) -> float:
    if status == ReviewStatus.PENDING or reviewed_at is None:
        return np.nan
    return float(np.floor(reviewed_at.timestamp()))


# --- any database ------------------------------------------------------------------------------


def _arrays_generic(tasks, flag_keys: list[str], after_id: int | None) -> JudgmentArrays:
    """`judgment_arrays` on any database: one pass over the rows in Python."""
    judgments = Judgment.objects.filter(task__in=tasks, rater__isnull=False)
    if after_id is not None:
        judgments = judgments.filter(pk__gt=after_id)
        tasks = Task.objects.filter(pk__in=judgments.values("task_id"))
    task_rows = list(tasks.order_by("pk").values_list("pk", "is_gold", "gold_ranking"))
    task_index = {pk: i for i, (pk, _, _) in enumerate(task_rows)}
    slots: dict[int, dict[int, int]] = defaultdict(dict)
    lengths: dict[int, dict[int, int]] = defaultdict(dict)
    completions = (
        TaskCompletion.objects.filter(task__in=tasks)
        .annotate(chars=ByteLength("completion__text"))
        .values_list("task_id", "completion_id", "position", "chars")
    )
    for task_id, completion_id, position, chars in completions.iterator(chunk_size=20_000):
        slots[task_id][completion_id] = position
        lengths[task_id][position] = chars
    k_max = max((len(s) for s in slots.values()), default=2)
    n_tasks = len(task_rows)
    task_lengths = np.full((n_tasks, k_max), np.nan)
    gold_pos = np.full((n_tasks, k_max), -1, dtype=np.int8)
    is_gold = np.zeros(n_tasks, dtype=bool)
    for i, (pk, gold, gold_ranking) in enumerate(task_rows):
        for position, chars in lengths[pk].items():
            task_lengths[i, position] = chars
        if gold and gold_ranking:
            is_gold[i] = True
            gold_pos[i] = ag.ranking_to_positions(gold_ranking, slots[pk], k_max)

    flag_bit = {key: 1 << bit for bit, key in enumerate(flag_keys)}
    rows = judgments.order_by("pk").values_list(
        "pk",
        "task_id",
        "rater_id",
        "ranking",
        "display_order",
        "flags",
        "time_spent_ms",
        "created_at",
        "review_status",
        "reviewed_at",
    )
    columns: dict[str, list] = defaultdict(list)
    rank_rows, flag_rows = [], []
    for (
        pk,
        task_id,
        rater_id,
        ranking,
        shown,
        flags,
        spent,
        created,
        status,
        reviewed,
    ) in rows.iterator(chunk_size=20_000):
        task_slots = slots[task_id]
        rank_rows.append(ag.ranking_to_positions(ranking, task_slots, k_max))
        bits = np.zeros(k_max, dtype=np.uint32)
        for cid, keys in (flags or {}).items():
            slot = task_slots.get(int(cid))
            if slot is not None:
                bits[slot] = sum(flag_bit.get(key, 0) for key in keys)
        flag_rows.append(bits)
        columns["id"].append(pk)
        columns["task"].append(task_index[task_id])
        columns["rater"].append(rater_id)
        columns["first"].append(task_slots.get(shown[0], -1) if shown else -1)
        columns["spent"].append(np.nan if spent is None else spent)
        columns["created"].append(np.floor(created.timestamp()))
        columns["included"].append(status != ReviewStatus.REJECTED)
        columns["reviewed"].append(_reviewed_epoch(status, reviewed))
    rater_ids, rater = np.unique(np.array(columns["rater"], dtype=np.int64), return_inverse=True)
    names = rater_names(rater_ids)
    n = len(rank_rows)
    return JudgmentArrays(
        task=np.array(columns["task"], dtype=np.int32),
        rater=rater.astype(np.int32),
        rank_pos=np.array(rank_rows, dtype=np.int8).reshape(n, k_max),
        first_shown=np.array(columns["first"], dtype=np.int8),
        created=np.array(columns["created"], dtype=np.float64),
        time_spent_ms=np.array(columns["spent"], dtype=np.float64),
        flags=np.array(flag_rows, dtype=np.uint32).reshape(n, k_max),
        included=np.array(columns["included"], dtype=bool),
        reviewed=np.array(columns["reviewed"], dtype=np.float64),
        task_is_gold=is_gold,
        task_gold_pos=gold_pos,
        task_lengths=task_lengths,
        task_ids=np.array([pk for pk, _, _ in task_rows], dtype=np.int64),
        rater_ids=rater_ids,
        flag_keys=flag_keys,
        rater_names=[names.get(int(pk), str(pk)) for pk in rater_ids],
        judgment_ids=np.array(columns["id"], dtype=np.int64),
    )
