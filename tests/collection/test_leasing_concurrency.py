"""The assignment engine under real concurrency on PostgreSQL.

20 threads, each a distinct rater with its own database connection, loop next + submit over
240 tasks with overlap 3. Some leases are abandoned (they expire and must free their slot)
and some of those are answered late (accepted only while the task has room). A monitor
thread checks invariant (b) while the run goes on, not only at the end.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection, connections
from django.db.models import Count, F, Q
from django.db.models.functions import Now

from apps.collection.leasing import assignment_next
from apps.collection.models import Assignment, Judgment, Task
from apps.collection.services import judgment_submit
from apps.core.errors import Conflict
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RATERS = 20
TASKS = 240
OVERLAP = 3
LEASE_SECONDS = 2
ABANDON_RATE = 0.08
LATE_ANSWER_RATE = 0.5


def over_assigned_tasks() -> list[int]:
    # The database's clock, read when the statement starts, matches the rows it sees; a clock
    # read in Python before the query could call a lease live that expired (and whose slot
    # was taken again) by the time the query ran.
    held = Q(assignments__status="submitted") | Q(
        assignments__status="leased", assignments__expires_at__gt=Now()
    )
    return list(
        Task.objects.annotate(taken=Count("assignments", filter=held))
        .filter(taken__gt=F("overlap"))
        .values_list("pk", flat=True)
    )


def test_invariants_hold_under_concurrent_raters():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    project = ProjectFactory(k=4, overlap=OVERLAP, lease_seconds=LEASE_SECONDS)
    tasks = [make_task(project, priority=random.choice([0, 0, 1])) for _ in range(TASKS)]
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(RATERS)]

    stored: list[tuple[int, int, str]] = []  # (judgment id, assignment id, client key)
    leased: list[tuple[int, int]] = []  # (rater id, task id) per lease handed out
    late: list[tuple[int, int]] = []  # (assignment id, judgment id or 0 when refused)
    errors: list[BaseException] = []
    violations: list[list[int]] = []
    lock = threading.Lock()
    running = threading.Event()
    running.set()
    barrier = threading.Barrier(RATERS)

    def answer_late(assignment: Assignment) -> None:
        """Answer a lease that ran out: taken while the task has room, else refused."""
        key = str(uuid.uuid4())
        try:
            judgment, _ = judgment_submit(
                assignment_id=assignment.pk,
                rater=assignment.rater,
                client_key=key,
                ranking=[assignment.display_order],
            )
        except Conflict:
            with lock:
                late.append((assignment.pk, 0))
        else:
            with lock:
                late.append((assignment.pk, judgment.pk))
                stored.append((judgment.pk, assignment.pk, key))

    def rater_loop(rater, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + 240
        try:
            barrier.wait()
            # Until every task is complete: a rater told "nothing for you now" asks again,
            # since a lease running out elsewhere frees a slot (stopping after a fixed number
            # of idle rounds raced with leases taken in between, and left tasks short).
            while time.monotonic() < deadline:
                assignment = assignment_next(project=project, rater=rater)
                if assignment is None:
                    if not Task.objects.filter(status=Task.Status.OPEN).exists():
                        break
                    time.sleep(0.2)
                    continue
                with lock:
                    leased.append((rater.pk, assignment.task_id))
                if rng.random() < ABANDON_RATE:
                    time.sleep(LEASE_SECONDS + 0.1)  # the lease runs out while we hold it
                    if rng.random() < LATE_ANSWER_RATE:
                        answer_late(assignment)
                    continue
                key = str(uuid.uuid4())
                order = list(assignment.display_order)
                rng.shuffle(order)
                judgment, created = judgment_submit(
                    assignment_id=assignment.pk,
                    rater=rater,
                    client_key=key,
                    ranking=[[cid] for cid in order],
                )
                assert created
                with lock:
                    stored.append((judgment.pk, assignment.pk, key))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def monitor() -> None:
        try:
            while running.is_set():
                bad = over_assigned_tasks()
                if bad:
                    violations.append(bad)
                time.sleep(0.05)
        finally:
            connections.close_all()

    watcher = threading.Thread(target=monitor)
    watcher.start()
    threads = [
        threading.Thread(target=rater_loop, args=(rater, n)) for n, rater in enumerate(raters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    running.clear()
    watcher.join()

    assert not errors, errors[:3]
    assert all(not thread.is_alive() for thread in threads)
    # (b) at every moment the monitor looked, and at the end.
    assert violations == []
    assert over_assigned_tasks() == []
    # (a) never the same task twice to one rater: in what was handed out and in the table.
    assert max(Counter(leased).values()) == 1
    assert not Assignment.objects.values("task", "rater").annotate(n=Count("pk")).filter(n__gt=1)
    # (c) abandoned leases freed their slots: every task ended with exactly `overlap` answers.
    per_task = Counter(Judgment.objects.values_list("task_id", flat=True))
    assert {task.pk: per_task[task.pk] for task in tasks} == {task.pk: OVERLAP for task in tasks}
    assert Task.objects.filter(status=Task.Status.COMPLETE).count() == TASKS
    # Every judgment a rater was told was stored is there exactly once, and nothing else is.
    assert Judgment.objects.count() == len(stored) == TASKS * OVERLAP
    assert {(j.pk, j.assignment_id, str(j.client_key)) for j in Judgment.objects.all()} == set(
        stored
    )
    # The run really exercised expiry: some leases were abandoned.
    assert Assignment.objects.filter(status="leased").exists() or late


def test_copies_of_one_answer_sent_at_once_store_one_row():
    """A client that retries before the first reply arrives: 8 copies race on PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    project = ProjectFactory(k=4, overlap=1)
    make_task(project)
    rater = UserFactory(roles=[Role.LABELER])
    lease = assignment_next(project=project, rater=rater)
    key = uuid.uuid4()
    start = threading.Barrier(8)
    outcomes: list[tuple[int, bool]] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            start.wait()
            judgment, created = judgment_submit(
                assignment_id=lease.pk,
                rater=rater,
                client_key=key,
                ranking=[[cid] for cid in lease.display_order],
            )
            outcomes.append((judgment.pk, created))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(created for _, created in outcomes) == [False] * 7 + [True]
    assert len({pk for pk, _ in outcomes}) == 1
    assert Judgment.objects.count() == 1
    assert Task.objects.get().status == Task.Status.COMPLETE
