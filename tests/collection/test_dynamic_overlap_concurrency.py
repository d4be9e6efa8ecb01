"""Dynamic overlap under real concurrency on PostgreSQL: the engine's invariants with the
maximum in place of the overlap.

20 threads, each a rater with its own connection, loop next + submit over 120 four-way
ranking tasks that start with 2 raters and may grow to 5. Rankings are random, so the
consensus is often unsure and tasks grow while other raters lease them. Some leases are
abandoned (they expire and must free their slot) and some answered late. A monitor checks
while the run goes on that no task holds more live + submitted assignments than its current
allowance, and that no allowance passes the maximum.
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
from apps.collection.services import judgment_submit, task_create
from apps.core.errors import Conflict
from apps.quality.models import OverlapDecision
from tests.factories import CompletionFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RATERS = 20
TASKS = 120
MIN_OVERLAP, MAX_OVERLAP = 2, 5
LEASE_SECONDS = 2
ABANDON_RATE = 0.08
LATE_ANSWER_RATE = 0.5


def over_allowance_tasks() -> list[int]:
    held = Q(assignments__status="submitted") | Q(
        assignments__status="leased", assignments__expires_at__gt=Now()
    )
    over = Task.objects.annotate(taken=Count("assignments", filter=held)).filter(
        taken__gt=F("overlap")
    )
    return list(over.values_list("pk", flat=True)) + list(
        Task.objects.filter(overlap__gt=F("max_overlap")).values_list("pk", flat=True)
    )


def test_dynamic_overlap_invariants_hold_under_concurrent_raters():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    project = ProjectFactory(
        k=4,
        overlap=MIN_OVERLAP,
        dynamic_overlap=True,
        overlap_max=MAX_OVERLAP,
        confidence_target=0.9,
        lease_seconds=LEASE_SECONDS,
    )
    for _ in range(TASKS):
        prompt = PromptFactory(project=project)
        task_create(
            project=project,
            prompt=prompt,
            completions=[CompletionFactory(prompt=prompt) for _ in range(4)],
            priority=random.choice([0, 0, 1]),
        )
    raters = [UserFactory() for _ in range(RATERS)]
    leased: list[tuple[int, int]] = []
    stored: list[int] = []
    errors: list[BaseException] = []
    violations: list[list[int]] = []
    lock = threading.Lock()
    running = threading.Event()
    running.set()
    barrier = threading.Barrier(RATERS)

    def submit(assignment: Assignment, rng: random.Random, late: bool) -> None:
        order = list(assignment.display_order)
        rng.shuffle(order)
        try:
            judgment, created = judgment_submit(
                assignment_id=assignment.pk,
                rater=assignment.rater,
                client_key=uuid.uuid4(),
                ranking=[[cid] for cid in order],
            )
        except Conflict:
            assert late, "only a late answer may be refused"
            return
        assert created
        with lock:
            stored.append(judgment.pk)

    def rater_loop(rater, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + 240
        try:
            barrier.wait()
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
                    time.sleep(LEASE_SECONDS + 0.1)
                    if rng.random() < LATE_ANSWER_RATE:
                        submit(assignment, rng, late=True)
                    continue
                submit(assignment, rng, late=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def monitor() -> None:
        try:
            while running.is_set():
                bad = over_allowance_tasks()
                if bad:
                    violations.append(bad)
                time.sleep(0.05)
        finally:
            connections.close_all()

    watcher = threading.Thread(target=monitor)
    watcher.start()
    threads = [threading.Thread(target=rater_loop, args=(r, n)) for n, r in enumerate(raters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    running.clear()
    watcher.join()

    assert not errors, errors[:3]
    assert all(not thread.is_alive() for thread in threads)
    # Never more live + submitted than the current allowance, never past the maximum.
    assert violations == []
    assert over_allowance_tasks() == []
    # Never the same task twice to one rater.
    assert max(Counter(leased).values()) == 1
    assert not Assignment.objects.values("task", "rater").annotate(n=Count("pk")).filter(n__gt=1)
    # Expired leases freed their slots: every task is complete with exactly its allowance
    # of judgments, and grew one slot per "extend" decision.
    tasks = {t.pk: t for t in Task.objects.all()}
    per_task = Counter(Judgment.objects.values_list("task_id", flat=True))
    assert all(t.status == Task.Status.COMPLETE for t in tasks.values())
    assert {pk: per_task[pk] for pk in tasks} == {pk: t.overlap for pk, t in tasks.items()}
    extends = Counter(
        OverlapDecision.objects.filter(outcome="extend").values_list("task_id", flat=True)
    )
    assert {pk: MIN_OVERLAP + extends[pk] for pk in tasks} == {
        pk: t.overlap for pk, t in tasks.items()
    }
    # One closing decision per task, and it agrees with where the task stopped.
    closing = OverlapDecision.objects.exclude(outcome="extend")
    assert sorted(closing.values_list("task_id", flat=True)) == sorted(tasks)
    for decision in closing:
        task = tasks[decision.task_id]
        assert decision.judgments == task.overlap
        if decision.outcome == "limit":
            assert task.overlap == MAX_OVERLAP and decision.confidence < 0.9
        else:
            assert decision.confidence >= 0.9
    # Random rankings leave the consensus unsure: the run really exercised growth.
    assert sum(extends.values()) > TASKS // 2
    assert any(t.overlap == MAX_OVERLAP for t in tasks.values())
    assert len(stored) == Judgment.objects.count()
