"""Rater-quality statistics at scale: 1,000,000 judgments, 500 raters, K = 4, overlap 3–10.

Part 1 (always): synthesise the judgments in memory (apps/quality/simulation.py: 480 honest
raters, 10 random clickers, 10 always-first raters, 2 % gold tasks), then time the full
project statistics plus every per-rater measure (`measures.compute_quality`: pairwise
agreement with a 1,000-resample bootstrap CI, Krippendorff α nominal on pairs and ordinal on
ranks, Fleiss κ per flag, the agreement/judgments/backlog series with per-day bootstrap CIs,
leave-one-out agreement, gold accuracy, position and length bias, flag rate, median time,
consensus weights, flags and trends), and separately the reliability-weighted Bradley–Terry
consensus of every task. Peak memory: tracemalloc's peak during the computation (numpy
reports its buffers to it) and the process's peak RSS.

Part 2 (`--db`): load the same judgments into a fresh PostgreSQL database (`bench_quality`,
dropped afterwards; COPY for the big tables) and time `selectors.judgment_arrays`, the read
that precedes the computation in `services.quality_snapshot_refresh`.

    .venv/bin/python bench/agreement_scale.py            # part 1
    .venv/bin/python bench/agreement_scale.py --db       # parts 1 and 2
    .venv/bin/python bench/agreement_scale.py --db --keep  # ... keeping bench_quality
    .venv/bin/python bench/agreement_scale.py --reuse    # on the kept one, in a fresh process:
        # the read, then the refresh end to end (read + compute + store), then the refresh
        # again after 1,000 new judgments (deleted afterwards), and the process's peak memory

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) for --db only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.quality.measures import (  # noqa: E402
    JudgmentArrays,
    QualityOptions,
    consensus_scores,
)
from apps.quality.simulation import simulate  # noqa: E402
from apps.quality.statistics import compute_quality  # noqa: E402

DB_NAME = "bench_quality"  # --db-name changes it
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def synthesise(n_judgments: int, n_raters: int, seed: int) -> JudgmentArrays:
    kinds = ["honest"] * (n_raters - 20) + ["random"] * 10 + ["first"] * 10
    noise = np.random.default_rng(seed).uniform(0.3, 0.8, size=n_raters)
    n_tasks = int(n_judgments / 6.5 * 1.02) + 10  # overlap 3..10 averages 6.5
    arrays, _ = simulate(
        n_tasks=n_tasks,
        k=4,
        overlap=(3, 10),
        kinds=kinds,
        noise=noise,
        days=60,
        gold_share=0.02,
        seed=seed,
    )
    keep = n_judgments
    last_task = int(arrays.task[keep - 1]) + 1
    per_judgment = [
        "task",
        "rater",
        "rank_pos",
        "first_shown",
        "created",
        "time_spent_ms",
        "flags",
        "included",
        "reviewed",
    ]
    per_task = ["task_is_gold", "task_gold_pos", "task_lengths", "task_ids"]
    for name in per_judgment:
        setattr(arrays, name, getattr(arrays, name)[:keep])
    for name in per_task:
        setattr(arrays, name, getattr(arrays, name)[:last_task])
    return arrays


def time_compute(arrays: JudgmentArrays) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    result = compute_quality(arrays, QualityOptions())
    stats_seconds = time.perf_counter() - started
    _, stats_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    weights = np.array([row["weight"] for row in result["raters"]])
    started = time.perf_counter()
    scores = consensus_scores(arrays, weights)
    consensus_seconds = time.perf_counter() - started
    _, consensus_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    flagged = {
        kind: sum(1 for row in result["raters"] if row["flags"] and row["rater_id"] in ids)
        for kind, ids in {
            "honest": set(range(1, 481)),
            "random": set(range(481, 491)),
            "first": set(range(491, 501)),
        }.items()
    }
    return {
        "judgments": int(arrays.task.shape[0]),
        "tasks": arrays.n_tasks,
        "raters": arrays.n_raters,
        "stats_seconds": round(stats_seconds, 2),
        "stats_peak_traced_mib": round(stats_peak / 2**20),
        "consensus_seconds": round(consensus_seconds, 2),
        "consensus_peak_traced_mib": round(consensus_peak / 2**20),
        "json_mib": round(len(json.dumps(result)) / 2**20, 1),
        "pairwise_agreement": result["project"]["pairwise_agreement"],
        "agreement_ci": result["project"]["pairwise_agreement_ci"],
        "alpha_pairs_nominal": result["project"]["alpha_pairs_nominal"],
        "alpha_ranks_ordinal": result["project"]["alpha_ranks_ordinal"],
        "raters_flagged": flagged,
        "finite_consensus_tasks": int(np.isfinite(scores).all(axis=1).sum()),
    }


def load_into_postgres(arrays: JudgmentArrays) -> float:
    """Create bench_quality, migrate, COPY the judgments in; returns seconds spent loading."""
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings.local")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from apps.accounts.models import RaterProfile
    from apps.collection.models import Project

    started = time.perf_counter()
    project = Project.objects.create(name="Bench", slug="bench", k=4, overlap=10)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"rater{i}") for i in range(arrays.n_raters)]
    )
    RaterProfile.objects.bulk_create([RaterProfile(user=u, pseudonym=f"r-{u.pk}") for u in users])
    user_ids = np.array([u.pk for u in users])
    n_tasks, k = arrays.n_tasks, arrays.rank_pos.shape[1]
    now = "2026-01-01 00:00:00+00"
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM collection_prompt")
        with cursor.copy(
            "COPY collection_prompt (id, created_at, updated_at, project_id, text, text_sha256,"
            " category, split, source, external_id, reference) FROM STDIN"
        ) as copy:
            for t in range(n_tasks):
                copy.write_row(
                    (
                        t + 1,
                        now,
                        now,
                        project.pk,
                        f"p{t}",
                        f"{t:064x}",
                        "other",
                        "train",
                        "imported",
                        "",
                        "",
                    )
                )
        with cursor.copy(
            "COPY collection_completion (id, created_at, updated_at, prompt_id, text, source,"
            " sampling_params) FROM STDIN"
        ) as copy:
            for t in range(n_tasks):
                for s in range(k):
                    chars = int(arrays.task_lengths[t, s]) // 8
                    copy.write_row((t * k + s + 1, now, now, t + 1, "x" * chars, "imported", "{}"))
        with cursor.copy(
            "COPY collection_task (id, created_at, updated_at, project_id, prompt_id, kind,"
            " overlap, priority, is_gold, gold_ranking, status) FROM STDIN"
        ) as copy:
            for t in range(n_tasks):
                gold = None
                if arrays.task_is_gold[t]:
                    order = np.argsort(arrays.task_gold_pos[t])
                    gold = json.dumps([[int(t * k + s + 1)] for s in order])
                copy.write_row(
                    (
                        t + 1,
                        now,
                        now,
                        project.pk,
                        t + 1,
                        "ranking",
                        10,
                        0,
                        bool(arrays.task_is_gold[t]),
                        gold,
                        "open",
                    )
                )
        with cursor.copy(
            "COPY collection_taskcompletion (task_id, completion_id, position) FROM STDIN"
        ) as copy:
            for t in range(n_tasks):
                for s in range(k):
                    copy.write_row((t + 1, t * k + s + 1, s))
        created = arrays.created
        with cursor.copy(
            "COPY collection_judgment (created_at, updated_at, review_status, review_reason,"
            " task_id, rater_id, source, ranking, likert, flags, rationale, both_bad,"
            " time_spent_ms, display_order) FROM STDIN"
        ) as copy:
            for j in range(arrays.task.shape[0]):
                t = int(arrays.task[j])
                base = t * k + 1
                order = np.argsort(arrays.rank_pos[j], kind="stable")
                ranking = json.dumps([[int(base + s)] for s in order])
                first = int(arrays.first_shown[j])
                shown = [base + first] + [base + s for s in range(k) if s != first]
                stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(created[j]))
                copy.write_row(
                    (
                        stamp,
                        stamp,
                        "pending",
                        "",
                        t + 1,
                        int(user_ids[arrays.rater[j]]),
                        "human",
                        ranking,
                        "{}",
                        "{}",
                        "",
                        False,
                        int(arrays.time_spent_ms[j]),
                        json.dumps(shown),
                    )
                )
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def time_read() -> dict:
    from apps.collection.models import Project
    from apps.quality import selectors

    project = Project.objects.get(slug="bench")
    started = time.perf_counter()
    arrays = selectors.judgment_arrays(project=project)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    compute_quality(arrays, QualityOptions())
    return {
        "read_seconds": round(read_seconds, 2),
        "judgments_read": int(arrays.task.shape[0]),
        "stats_seconds_on_read_arrays": round(time.perf_counter() - started, 2),
    }


def add_judgments(count: int, seed: int) -> list[int]:
    """`count` new judgments by raters who have not judged those tasks yet, on the most
    recent tasks (as a live project receives them); returns their ids."""
    from django.contrib.auth import get_user_model

    from apps.collection.models import Judgment, Project, Task, TaskCompletion

    rng = np.random.default_rng(seed)
    project = Project.objects.get(slug="bench")
    tasks = list(
        Task.objects.filter(project=project)
        .order_by("-pk")
        .values_list("pk", flat=True)[: count * 2]
    )
    raters = list(
        get_user_model().objects.filter(username__startswith="rater").values_list("pk", flat=True)
    )
    taken = set(Judgment.objects.filter(task_id__in=tasks).values_list("task_id", "rater_id"))
    slots: dict[int, list[int]] = {}
    for task_id, completion_id in TaskCompletion.objects.filter(task_id__in=tasks).values_list(
        "task_id", "completion_id"
    ):
        slots.setdefault(task_id, []).append(completion_id)
    new = []
    while len(new) < count:
        task_id = int(rng.choice(tasks))
        rater_id = int(rng.choice(raters))
        if (task_id, rater_id) in taken:
            continue
        taken.add((task_id, rater_id))
        ids = list(rng.permutation(slots[task_id]).tolist())
        new.append(
            Judgment(
                task_id=task_id,
                rater_id=rater_id,
                ranking=[[cid] for cid in ids],
                display_order=list(rng.permutation(ids).tolist()),
                time_spent_ms=int(rng.integers(4_000, 60_000)),
            )
        )
    created = Judgment.objects.bulk_create(new)
    # They arrive right after the last judgment, as on a live project (not years later,
    # which would stretch the series over years of empty weeks).
    last = Judgment.objects.exclude(pk__in=[j.pk for j in created]).order_by("-created_at")
    start = last.values_list("created_at", flat=True).first()
    for i, judgment in enumerate(created):
        judgment.created_at = start + timedelta(seconds=30 * (i + 1))
    Judgment.objects.bulk_update(created, ["created_at"], batch_size=1000)
    return [j.pk for j in created]


def time_refresh(seed: int) -> dict:
    """`services.quality_snapshot_refresh` end to end (read, compute, store the snapshot and
    the state): a full recompute, then an incremental refresh after 1,000 new judgments,
    then one with nothing new; the new judgments are deleted afterwards."""
    from apps.collection.models import Judgment, Project
    from apps.quality import services

    project = Project.objects.get(slug="bench")
    report = {}

    def refresh(label: str, **kwargs) -> None:
        started = time.perf_counter()
        snapshot = services.quality_snapshot_refresh(project_id=project.pk, **kwargs)
        report[label] = {
            "seconds": round(time.perf_counter() - started, 2),
            "read_seconds": round(snapshot.read_seconds, 2),
            "compute_seconds": round(snapshot.compute_seconds, 2),
            "mode": snapshot.mode,
            "judgments": snapshot.judgments,
            "judgments_read": snapshot.judgments_read,
        }

    refresh("full_recompute", full=True)
    new_ids = add_judgments(1000, seed)
    try:
        refresh("after_1000_new")
        refresh("nothing_new")
    finally:
        Judgment.objects.filter(pk__in=new_ids).delete()
    report["process_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return report


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")


def main() -> None:
    global DB_NAME
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", action="store_true", help="also time the PostgreSQL read")
    parser.add_argument("--keep", action="store_true", help="keep bench_quality afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="on a kept database only: time the read, then the refresh end to end, in a fresh "
        "process (so its peak memory is the refresh's own)",
    )
    parser.add_argument("--db-name", default=DB_NAME, help="the PostgreSQL database to use")
    args = parser.parse_args()
    DB_NAME = args.db_name
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, numpy {np.__version__}")
    if args.reuse:
        os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings.local")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(json.dumps(time_read(), indent=2))
        print(json.dumps(time_refresh(args.seed), indent=2))
        return
    started = time.perf_counter()
    arrays = synthesise(args.judgments, args.raters, args.seed)
    print(f"synthesised in {time.perf_counter() - started:.1f} s")
    report = time_compute(arrays)
    report["process_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps(report, indent=2))
    if args.db:
        try:
            load_seconds = load_into_postgres(arrays)
            print(f"loaded into PostgreSQL in {load_seconds:.1f} s")
            print(json.dumps(time_read(), indent=2))
        finally:
            if not args.keep:
                drop_database()


if __name__ == "__main__":
    main()
