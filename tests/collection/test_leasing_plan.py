"""`next` and the labeler's home stay cheap for a rater far ahead of the others (plans read back).

A rater who answered many tasks that are still open (overlap 3, the others slower) makes
every `next` walk past all of them in queue order. The candidate query must exclude them
with one lookup of the rater's assignments, not one per task walked past. On a fresh table
(no statistics yet, as after an import) the old NOT EXISTS form got a nested loop that reread
all the rater's assignments for each task: quadratic in the rater's lead.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.collection.leasing import assignment_next
from apps.collection.models import Assignment, Completion, Prompt, Task, TaskCompletion
from apps.collection.selectors import rater_progress
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

DONE = 600  # tasks the rater answered that are still open
FRESH = 20


def _seed(project, rater) -> list[Task]:
    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, text=f"prompt {i}", text_sha256=f"plan-{i}")
        for i in range(DONE + FRESH)
    )
    completions = Completion.objects.bulk_create(
        Completion(prompt=p, text=f"answer {j}", source="placeholder")
        for p in prompts
        for j in range(project.k)
    )
    tasks = Task.objects.bulk_create(
        Task(project=project, prompt=p, overlap=project.overlap) for p in prompts
    )
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=t, completion=completions[i * project.k + j], position=j)
        for i, t in enumerate(tasks)
        for j in range(project.k)
    )
    now = timezone.now()
    Assignment.objects.bulk_create(
        Assignment(
            task=t,
            rater=rater,
            status=Assignment.Status.SUBMITTED,
            leased_at=now - timedelta(minutes=5),
            expires_at=now,
            finished_at=now,
            display_order=[],
        )
        for t in tasks[:DONE]
    )
    return tasks


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_candidate_query_reads_the_raters_assignments_once():
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    project = ProjectFactory(k=4, overlap=3)
    rater = UserFactory(roles=[Role.LABELER])
    tasks = _seed(project, rater)

    with CaptureQueriesContext(connection) as queries:
        assignment = assignment_next(project=project, rater=rater)
    assert assignment.task_id == tasks[DONE].pk  # the first task the rater has not had

    candidate_sql = next(q["sql"] for q in queries if "SKIP LOCKED" in q["sql"])
    plan, nodes = _explain(candidate_sql)
    _assert_rater_read_once(plan, nodes)
    walked = next(n for n in nodes if n.get("Relation Name") == Task._meta.db_table)
    assert walked["Actual Rows"] + walked.get("Rows Removed by Filter", 0) >= DONE


def test_tasks_left_on_the_labeler_home_reads_the_raters_assignments_once():
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    project = ProjectFactory(k=4, overlap=3)
    rater = UserFactory(roles=[Role.LABELER])
    _seed(project, rater)

    with CaptureQueriesContext(connection) as queries:
        progress = rater_progress(project=project, rater=rater)
    assert progress["tasks_left"] == FRESH
    assert progress["done_total"] == DONE

    left_sql = next(q["sql"] for q in queries if "NOT" in q["sql"])
    _assert_rater_read_once(*_explain(left_sql))


def _explain(query: str) -> tuple[list, list[dict]]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan, list(_plan_nodes(plan[0]["Plan"]))


def _assert_rater_read_once(plan: list, nodes: list[dict]) -> None:
    rater_reads = [
        n
        for n in nodes
        if n.get("Relation Name") == Assignment._meta.db_table
        and "rater_id"
        in " ".join(n.get(key, "") for key in ("Recheck Cond", "Filter", "Index Cond"))
    ]
    assert rater_reads, json.dumps(plan, indent=1)
    assert all(n["Actual Loops"] == 1 for n in rater_reads), json.dumps(plan, indent=1)
