"""The assignment engine: which task a rater gets next, and the slot rules behind it.

Invariants (checked by tests on PostgreSQL under concurrency):
  (a) a rater never gets the same task twice (also a unique constraint on (task, rater));
  (b) a task never has more live + submitted assignments than its overlap;
  (c) an expired lease no longer holds a slot;
  (d) a rater asking again while holding a live lease gets that lease back;
  (e) higher priority first, then oldest; gold tasks at the project's gold rate;
  (f) a rater in the project's screening gets gold tasks only, and one who failed it none
      (the registered screening decides, apps/collection/screening.py, which apps/quality
      fills in; gold tasks need an overlap that fits every rater
      to be screened, since (b) holds for them too).

How it stays correct under concurrency: every write that can *add* to a task's taken slots
(a new lease, or accepting a judgment on an expired lease) holds that task's row lock while it
counts and writes. `next` takes candidate rows with FOR UPDATE SKIP LOCKED, so it never waits
on a task another rater is taking, and recounts the slots in a fresh statement once it holds
the lock (READ COMMITTED gives each statement a new snapshot). Calls of one rater are
serialised by a lock on their profile row, so a rater cannot race themself into two leases.
SQLite (the embedded default) runs each write transaction alone (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.accounts.services import rater_profile_get_or_create
from apps.collection.content import (
    SLOT_HOLDING_SQL,
    TaskContent,
    slot_holding_params,
    task_content,
)
from apps.collection.models import Assignment, Project, Task
from apps.collection.screening import ScreeningGate, screening
from apps.core import sql
from apps.core.errors import NotPermitted

CANDIDATES_PER_QUERY = 4
MAX_QUERY_ROUNDS = 4
_rng = random.SystemRandom()


def slot_holding(now: datetime) -> Q:
    """Assignments that occupy one of a task's overlap slots at `now`."""
    return Q(status=Assignment.Status.SUBMITTED) | Q(
        status=Assignment.Status.LEASED, expires_at__gt=now
    )


def task_taken_slots(*, task_id: int, now: datetime, excluding: int | None = None) -> int:
    """Slots of the task held at `now` (optionally not counting one assignment)."""
    query = f"""
        SELECT COUNT(*) FROM {sql.table(Assignment)} a
        WHERE a.task_id = %s AND {SLOT_HOLDING_SQL}"""
    params = [task_id, *slot_holding_params(now)]
    if excluding is not None:
        query += " AND a.id <> %s"
        params.append(excluding)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def task_complete_if_full(*, task_id: int, now: datetime) -> None:
    """Close an open task once it holds `overlap` submitted answers (one statement)."""
    query = f"""
        UPDATE {sql.table(Task)} SET status = %s, updated_at = %s
        WHERE id = %s AND status = %s
          AND (SELECT COUNT(*) FROM {sql.table(Assignment)} a
               WHERE a.task_id = %s AND a.status = %s) >= overlap"""
    params = [
        Task.Status.COMPLETE,
        connection.ops.adapt_datetimefield_value(now),
        task_id,
        Task.Status.OPEN,
        task_id,
        Assignment.Status.SUBMITTED,
    ]
    with connection.cursor() as cursor:
        cursor.execute(query, params)


def live_assignment_for_rater(*, project: Project, rater, now: datetime) -> Assignment | None:
    """The rater's oldest unexpired lease in `project`, if any."""
    query = f"""
        SELECT {sql.columns(Assignment, "a")} FROM {sql.table(Assignment)} a
        JOIN {sql.table(Task)} t ON t.id = a.task_id
        WHERE a.rater_id = %s AND t.project_id = %s AND a.status = %s AND a.expires_at > %s
        ORDER BY a.leased_at LIMIT 1"""
    params = [
        rater.pk,
        project.pk,
        Assignment.Status.LEASED,
        connection.ops.adapt_datetimefield_value(now),
    ]
    rows = sql.fetch_models(query, params, [Assignment])
    return rows[0][0] if rows else None


def _lock_rater(rater) -> RaterProfile | None:
    """Lock the rater's profile row (creating it on first use): one rater, one call at a time."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    query = f"SELECT {sql.columns(RaterProfile, 'r')} FROM {sql.table(RaterProfile)} r "
    rows = sql.fetch_models(query + f"WHERE r.user_id = %s{lock}", [rater.pk], [RaterProfile])
    if rows:
        return rows[0][0]
    return rater_profile_get_or_create(user=rater, lock=True)


def tasks_open_to_rater(*, project: Project, rater, now: datetime):
    """Open tasks of `project` this rater has never had and that have a free slot at `now`.

    The rater's tasks are excluded with NOT IN (one hashed lookup), as in `_candidate_tasks`.
    """
    had_by_rater = Assignment.objects.filter(rater=rater).values("task_id")
    taken = (
        Assignment.objects.filter(slot_holding(now), task_id=OuterRef("pk"))
        .order_by()
        .values("task_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Task.objects.filter(project=project, status=Task.Status.OPEN)
        .exclude(pk__in=had_by_rater)
        .annotate(taken=Coalesce(Subquery(taken, output_field=IntegerField()), 0))
        .filter(taken__lt=F("overlap"))
    )


def _candidate_tasks(
    *, project: Project, rater, now: datetime, gold: bool, kinds: list[str], skip_ids: set[int]
) -> list[tuple[int, int]]:
    """(id, overlap) of the first few tasks this rater could take, row-locked where possible.

    The same filter as `tasks_open_to_rater`, written as SQL: this runs on every `next`, and
    building the ORM query cost more CPU than running it. Rows another transaction holds
    are skipped (SKIP LOCKED), not waited for.

    The rater's own tasks are excluded with NOT IN over their assignments, which PostgreSQL
    runs as one hashed subplan: the scan walks past every open task the rater already did
    (a fast rater on a project with overlap > 1 leaves thousands), and NOT EXISTS let the
    planner pick a nested loop that reread the rater's assignments for each of them: 2.2 s
    per `next` at 5,000 such tasks before ANALYZE, against 3 ms (bench/next_far_ahead.py,
    BENCHMARKS.md; the plan is checked in tests/collection/test_leasing_plan.py).
    """
    skip = f"AND t.id NOT IN ({', '.join(['%s'] * len(skip_ids))})" if skip_ids else ""
    lock = (
        " FOR UPDATE OF t SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else ""
    )
    query = f"""
        SELECT t.id, t.overlap FROM {sql.table(Task)} t
        WHERE t.project_id = %s AND t.status = %s AND t.is_gold = %s
          AND t.kind IN ({", ".join(["%s"] * len(kinds))}) {skip}
          AND t.id NOT IN (SELECT a.task_id FROM {sql.table(Assignment)} a WHERE a.rater_id = %s)
          AND (SELECT COUNT(*) FROM {sql.table(Assignment)} a
               WHERE a.task_id = t.id AND {SLOT_HOLDING_SQL}) < t.overlap
        ORDER BY t.priority DESC, t.id
        LIMIT %s{lock}"""
    params = [
        project.pk,
        Task.Status.OPEN,
        gold,
        *kinds,
        *sorted(skip_ids),
        rater.pk,
        *slot_holding_params(now),
        CANDIDATES_PER_QUERY,
    ]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _lease_first_free(
    *, project: Project, rater, now: datetime, gold: bool, kinds: list[str]
) -> Assignment | None:
    checked: set[int] = set()
    for _ in range(MAX_QUERY_ROUNDS):
        candidates = list(
            _candidate_tasks(
                project=project, rater=rater, now=now, gold=gold, kinds=kinds, skip_ids=checked
            )
        )
        if not candidates:
            return None
        for task_id, overlap in candidates:
            checked.add(task_id)
            # The filter above used the statement's snapshot; now that the row is ours,
            # count again (a new statement, a new snapshot) so a lease committed meanwhile
            # is seen. The same statement reads what the lease will show.
            content = task_content(task_id=task_id, slots_at=now)
            if content.taken_slots < overlap:
                return _lease(
                    task_id=task_id,
                    content=content,
                    rater=rater,
                    now=now,
                    seconds=project.lease_seconds,
                )
    return None


def _lease(*, task_id: int, content: TaskContent, rater, now: datetime, seconds: int) -> Assignment:
    order = list(content.completions)
    _rng.shuffle(order)
    assignment = sql.insert(
        Assignment(
            task_id=task_id,
            rater=rater,
            leased_at=now,
            expires_at=now + timedelta(seconds=seconds),
            display_order=order,
        )
    )
    remember_content(assignment, content)
    return assignment


def remember_content(assignment: Assignment, content: TaskContent) -> None:
    """Keep what the lease shows on the instance, so its view needs no second read."""
    assignment._task_content = content


def wants_gold(project: Project) -> bool:
    return project.gold_rate > 0 and _rng.random() < project.gold_rate


def assignment_next(
    *,
    project: Project,
    rater: AbstractBaseUser,
    kinds: list[str] | None = None,
    now: datetime | None = None,
) -> Assignment | None:
    """Lease the next task of `project` to `rater`, or return their live lease, or None."""
    now = now or timezone.now()
    kinds = kinds or list(Task.Kind.values)
    with transaction.atomic():
        profile = _lock_rater(rater)
        if profile.is_suspended:
            raise NotPermitted("Your rater account is suspended; ask a reviewer.")
        # Rater quality: a rater in screening gets gold tasks only; one who failed, none.
        # It runs under the profile lock above, so screening state moves one call at a time.
        gate = screening().gate(project=project, rater=rater, now=now)
        closed = gate == ScreeningGate.CLOSED
        live = None if closed else live_assignment_for_rater(project=project, rater=rater, now=now)
        if live is not None:
            return live
        if closed:
            pools = []
        elif gate == ScreeningGate.GOLD_ONLY:
            pools = [True]
        else:
            pools = [True, False] if wants_gold(project) else [False]
        for gold in pools:
            assignment = _lease_first_free(
                project=project, rater=rater, now=now, gold=gold, kinds=kinds
            )
            if assignment is not None:
                return assignment
    if closed:  # raised after the commit, so the screening decision is kept
        raise NotPermitted(screening().failed_message)
    return None
