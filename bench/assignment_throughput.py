"""Throughput of the assignment loop over HTTP: N raters doing next + submit, concurrently.

Runs a real server (gunicorn, production settings, DEBUG off) on a fresh PostgreSQL database,
then for each concurrency level N starts N asynchronous HTTP clients, one per rater, that
loop `POST next` + `POST judgment` for a fixed time. Reports judgments per second and the
p50/p95/p99 latency of each call, then checks the database: no errors, no task with more
live + submitted assignments than its overlap, no (task, rater) twice, and every judgment the
server acknowledged stored exactly once.

    .venv/bin/python bench/assignment_throughput.py                 # 1, 8, 32 raters, 15 s each
    .venv/bin/python bench/assignment_throughput.py --concurrency 32 --duration 30
    .venv/bin/python bench/assignment_throughput.py --with-labelstudio  # and the peer, same levels
    BENCH_PORT=8113 BENCH_DB=prefloop_bench_13 .venv/bin/python bench/assignment_throughput.py

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres). Only loopback is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Several people may bench on one machine: BENCH_DB, BENCH_PORT and BENCH_REDIS_URL keep
# their runs apart.
DB_NAME = os.environ.get("BENCH_DB", "prefloop_bench")
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"

os.environ.update(
    DJANGO_SETTINGS_MODULE="annotation_site.settings.production",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    # Production refuses a short key; the clients speak plain HTTP on loopback.
    SECRET_KEY=os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
    SECURE_SSL_REDIRECT="0",
    SECURE_COOKIES="0",
    ALLOWED_HOSTS="127.0.0.1,localhost",
    LOG_LEVEL="WARNING",
    CONN_MAX_AGE="600",
)
sys.path.insert(0, str(ROOT))


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )


def seed(
    levels: list[int], tasks_per_level: int, k: int, overlap: int, dynamic_max: int | None = None
) -> dict[int, dict]:
    """One project per concurrency level, with its own raters and tokens."""
    import django

    django.setup()
    from django.db import connection

    from apps.accounts.services import rater_create
    from apps.accounts.tokens import api_token_create
    from apps.collection.models import Completion, Project, Prompt, Task, TaskCompletion

    plan = {}
    for level in levels:
        project = Project.objects.create(
            name=f"bench {level}",
            slug=f"bench-{level}",
            k=k,
            overlap=overlap,
            lease_seconds=600,
            **({"dynamic_overlap": True, "overlap_max": dynamic_max} if dynamic_max else {}),
        )
        prompts = Prompt.objects.bulk_create(
            Prompt(project=project, text=f"bench {level} prompt {i}", text_sha256=f"{level}-{i}")
            for i in range(tasks_per_level)
        )
        completions = Completion.objects.bulk_create(
            Completion(prompt=p, text=f"answer {j} to {p.text}", source="placeholder")
            for p in prompts
            for j in range(k)
        )
        tasks = Task.objects.bulk_create(
            Task(
                project=project,
                prompt=p,
                overlap=overlap,
                **({"max_overlap": dynamic_max} if dynamic_max else {}),
            )
            for p in prompts
        )
        TaskCompletion.objects.bulk_create(
            TaskCompletion(task=t, completion=completions[i * k + j], position=j)
            for i, t in enumerate(tasks)
            for j in range(k)
        )
        tokens = []
        for r in range(level):
            user = rater_create(username=f"bench{level}-rater{r}", password="unused-pw-123456")
            tokens.append(api_token_create(user=user))
        plan[level] = {"project_id": project.pk, "tokens": tokens}
    connection.close()
    return plan


def start_server(workers: int, threads: int = 1) -> subprocess.Popen:
    """gunicorn with `workers` processes; `threads` > 1 uses the gthread worker (keep-alive)."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [
            str(gunicorn),
            "annotation_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(workers),
            *(["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []),
            *(["--worker-class", "sync"] if threads == 1 else []),
            "--backlog",
            "512",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{BASE}/api/schema/", timeout=2).status_code < 500:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("gunicorn did not start")


@dataclass
class LevelResult:
    concurrency: int
    seconds: float = 0.0
    judgments: int = 0
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)  # (judgment id, key)
    exhausted: int = 0


async def rater_loop(client, token: str, project_id: int, stop_at: float, result: LevelResult):
    headers = {"Authorization": f"Token {token}"}
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        response = await client.post(
            f"{BASE}/api/projects/{project_id}/assignments/next/", headers=headers
        )
        result.next_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code == 204:
            result.exhausted += 1
            return
        if response.status_code != 200:
            result.errors.append(f"next {response.status_code}: {response.text[:200]}")
            return
        payload = response.json()
        key = str(uuid.uuid4())
        ids = [c["id"] for c in payload["completions"]]
        body = {
            "ranking": [[ids[0]], ids[1:3], ids[3:]] if len(ids) > 3 else [ids],
            "likert": {str(ids[0]): 6},
            "client_key": key,
            "time_spent_ms": 1000,
        }
        started = time.perf_counter()
        response = await client.post(
            f"{BASE}/api/assignments/{payload['assignment_id']}/judgment/",
            headers=headers,
            json=body,
        )
        result.submit_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            result.errors.append(f"submit {response.status_code}: {response.text[:200]}")
            return
        result.acknowledged.append((response.json()["judgment_id"], key))
        result.judgments += 1


async def run_level(level: int, plan: dict, duration: float) -> LevelResult:
    from bench.loadclient import Connection

    result = LevelResult(concurrency=level)
    connections = [Connection(BASE) for _ in plan["tokens"]]
    started = time.perf_counter()
    stop_at = started + duration
    try:
        await asyncio.gather(
            *(
                rater_loop(connection, token, plan["project_id"], stop_at, result)
                for connection, token in zip(connections, plan["tokens"], strict=True)
            )
        )
    finally:
        result.seconds = time.perf_counter() - started
        for connection in connections:
            await connection.close()
    return result


def check_database(result: LevelResult, project_id: int) -> dict[str, int]:
    from django.db import connection
    from django.db.models import Count, F, Q
    from django.utils import timezone

    from apps.collection.models import Assignment, Judgment, Task

    now = timezone.now()
    held = Q(assignments__status="submitted") | Q(
        assignments__status="leased", assignments__expires_at__gt=now
    )
    over = (
        Task.objects.filter(project_id=project_id)
        .annotate(taken=Count("assignments", filter=held))
        .filter(taken__gt=F("overlap"))
        .count()
    )
    twice = (
        Assignment.objects.filter(task__project_id=project_id)
        .values("task", "rater")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    stored = {
        (pk, str(key))
        for pk, key in Judgment.objects.filter(task__project_id=project_id).values_list(
            "pk", "client_key"
        )
    }
    acknowledged = set(result.acknowledged)
    connection.close()
    return {
        "errors": len(result.errors),
        "over_assigned_tasks": over,
        "same_task_twice": twice,
        "lost_judgments": len(acknowledged - stored),
        "unacknowledged_rows": len(stored - acknowledged),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per level")
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per level")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (> 1: gthread, keep-alive)"
    )
    parser.add_argument(
        "--dynamic-max",
        type=int,
        help="dynamic overlap: tasks start at --overlap and may grow to this (the load "
        "client's rankings are random, so the consensus stays unsure and most tasks grow: "
        "the decision runs on every submit that fills an allowance)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--with-labelstudio",
        action="store_true",
        help="then run the same loop against Label Studio 1.23 (bench/labelstudio_peer.py)",
    )
    args = parser.parse_args()

    recreate_database()
    plan = seed(args.concurrency, args.tasks, args.k, args.overlap, args.dynamic_max)
    server = start_server(args.workers, args.threads)
    rows = []
    try:
        for level in args.concurrency:
            result = asyncio.run(run_level(level, plan[level], args.duration))
            checks = check_database(result, plan[level]["project_id"])
            rows.append(
                {
                    "concurrency": level,
                    "judgments": result.judgments,
                    "seconds": round(result.seconds, 2),
                    "judgments_per_s": round(result.judgments / result.seconds, 1),
                    "next_ms": {q: round(percentile(result.next_ms, q), 1) for q in (50, 95, 99)},
                    "submit_ms": {
                        q: round(percentile(result.submit_ms, q), 1) for q in (50, 95, 99)
                    },
                    "ran_out_of_tasks": result.exhausted,
                    **checks,
                    "first_errors": result.errors[:3],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)

    worker_class = f"gthread, {args.threads} threads" if args.threads > 1 else "sync"
    print(
        f"\nassignment_throughput — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, gunicorn {args.workers} workers ({worker_class}), "
        f"PostgreSQL, K={args.k}, overlap={args.overlap}"
        f"{f' (dynamic, at most {args.dynamic_max})' if args.dynamic_max else ''}, "
        f"{args.duration:.0f} s per level\n"
    )
    print(
        "| raters | judgments/s | next p50/p95/p99 ms | submit p50/p95/p99 ms | errors | "
        "over-assigned | lost |"
    )
    print("|---:|---:|---|---|---:|---:|---:|")
    for row in rows:
        n, s = row["next_ms"], row["submit_ms"]
        print(
            f"| {row['concurrency']} | {row['judgments_per_s']} | {n[50]} / {n[95]} / {n[99]} | "
            f"{s[50]} / {s[95]} / {s[99]} | {row['errors']} | {row['over_assigned_tasks']} | "
            f"{row['lost_judgments']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.with_labelstudio:
        from bench.labelstudio_peer import comparison_table, markdown_table, run_labelstudio

        peer = run_labelstudio(args.concurrency, args.duration, args.tasks, args.k, args.overlap)
        print("\nLabel Studio, same loop (label-studio start: Django runserver, SQLite)\n")
        print(markdown_table(peer))
        print("\nPrefLoop vs Label Studio (ratio = PrefLoop / Label Studio judgments per s)\n")
        print(comparison_table(rows, peer))
    bad = [
        r
        for r in rows
        if r["errors"] or r["over_assigned_tasks"] or r["lost_judgments"] or r["same_task_twice"]
    ]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
