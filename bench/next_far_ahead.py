"""`next` for a rater far ahead of the others: latency against the rater's lead.

On a project with overlap 3, a fast rater leaves behind tasks they answered that stay open
until slower raters catch up; every `next` walks past them in queue order. This seeds one
project per lead (that many answered-but-open tasks, plus fresh ones), then times
`assignment_next` in-process on PostgreSQL, before and after ANALYZE (until autovacuum runs,
the planner's statistics do not know the rows just written). For comparison it also times,
in the same run, the candidate query in the form PrefLoop used before (NOT EXISTS per task)
through EXPLAIN ANALYZE.

    .venv/bin/python bench/next_far_ahead.py                  # leads 0, 1000, 5000, 20000
    .venv/bin/python bench/next_far_ahead.py --leads 0 2000

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import assignment_throughput as throughput  # noqa: E402  (sets the environment)

REPEATS = 15
OLD_REPEATS = 3  # the old form takes up to tens of seconds per run
OLD_EXCLUSION = "NOT EXISTS (SELECT 1 FROM collection_assignment a WHERE a.task_id = t.id AND a.rater_id = {rater})"  # noqa: E501
NEW_EXCLUSION = (
    "t.id NOT IN (SELECT a.task_id FROM collection_assignment a WHERE a.rater_id = {rater})"  # noqa: E501
)
CANDIDATES = """
    SELECT t.id, t.overlap FROM collection_task t
    WHERE t.project_id = {project} AND t.status = 'open' AND t.is_gold = false AND {exclusion}
      AND (SELECT COUNT(*) FROM collection_assignment a WHERE a.task_id = t.id
           AND (a.status = 'submitted' OR (a.status = 'leased' AND a.expires_at > now())))
          < t.overlap
    ORDER BY t.priority DESC, t.id LIMIT 4 FOR UPDATE OF t SKIP LOCKED"""


def seed_project(lead: int, fresh: int):
    """A project whose one rater answered `lead` tasks that are still open."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.services import rater_create
    from apps.collection.models import (
        Assignment,
        Completion,
        Project,
        Prompt,
        Task,
        TaskCompletion,
    )

    project = Project.objects.create(name=f"lead {lead}", slug=f"lead-{lead}", k=4, overlap=3)
    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, text=f"prompt {i}", text_sha256=f"{lead}-{i}")
        for i in range(lead + fresh)
    )
    completions = Completion.objects.bulk_create(
        Completion(prompt=p, text=f"answer {j}", source="placeholder")
        for p in prompts
        for j in range(4)
    )
    tasks = Task.objects.bulk_create(Task(project=project, prompt=p, overlap=3) for p in prompts)
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=t, completion=completions[i * 4 + j], position=j)
        for i, t in enumerate(tasks)
        for j in range(4)
    )
    rater = rater_create(username=f"lead-{lead}", password="unused-pw-123456")
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
        for t in tasks[:lead]
    )
    return project, rater


def time_next(project, rater) -> float:
    """Median ms of `assignment_next` (each lease rolled back, so every call walks the lead)."""
    from django.db import transaction

    from apps.collection.leasing import assignment_next

    samples = []
    for _ in range(REPEATS):
        with transaction.atomic():
            started = time.perf_counter()
            assert assignment_next(project=project, rater=rater) is not None
            samples.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return statistics.median(samples)


def time_query(project, rater, exclusion: str, repeats: int = REPEATS) -> float:
    """Median execution ms of the candidate query with `exclusion`, read by EXPLAIN ANALYZE."""
    from django.db import connection, transaction

    query = CANDIDATES.format(project=project.pk, exclusion=exclusion.format(rater=rater.pk))
    samples = []
    with transaction.atomic(), connection.cursor() as cursor:
        for _ in range(repeats):
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            samples.append(plan[0]["Execution Time"])
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[0, 1000, 5000, 20000])
    parser.add_argument("--fresh", type=int, default=50, help="unanswered tasks after the lead")
    args = parser.parse_args()

    throughput.recreate_database()
    import django

    django.setup()
    from django.db import connection

    rows = []
    for lead in args.leads:
        project, rater = seed_project(lead, args.fresh)
        row = {"lead": lead}
        for stats in ("before ANALYZE", "analyzed"):
            if stats == "analyzed":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")
            row[stats] = {
                "next_ms": round(time_next(project, rater), 2),
                "query_ms": round(time_query(project, rater, NEW_EXCLUSION), 2),
                "old_query_ms": round(time_query(project, rater, OLD_EXCLUSION, OLD_REPEATS), 2),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(
        "\n| rater's lead (answered, still open) | statistics | `next` ms | candidate query ms "
        "| old form (NOT EXISTS) ms | old / new |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        for stats in ("before ANALYZE", "analyzed"):
            r = row[stats]
            ratio = r["old_query_ms"] / r["query_ms"] if r["query_ms"] else float("nan")
            print(
                f"| {row['lead']} | {stats} | {r['next_ms']} | {r['query_ms']} | "
                f"{r['old_query_ms']} | {ratio:.1f}× |"
            )


if __name__ == "__main__":
    main()
