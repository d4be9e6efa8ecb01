"""Large uploads as import jobs: 100,000 rows of prompts and of preference pairs.

Creates a fresh PostgreSQL database (`bench_uploads`, dropped afterwards unless --keep),
writes a gzip-compressed JSONL file of N rows, hands it to `uploads.upload_receive` as the
API does (a file this size becomes a job) and runs the job as a worker would
(`uploads.import_run`), timing the reading and the storing phases and the whole. Then it
uploads the same file again (everything already there) and reports both.

    .venv/bin/python bench/upload_scale.py                 # 100,000 prompts and 100,000 pairs
    .venv/bin/python bench/upload_scale.py --rows 20000

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Upload:
    """What Django hands a view: a name, a size and chunks."""

    def __init__(self, name: str, content: bytes) -> None:
        self.name, self.size, self._content = name, len(content), content

    def chunks(self):
        for start in range(0, self.size, 1 << 20):
            yield self._content[start : start + (1 << 20)]


def gz_jsonl(rows) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        for row in rows:
            handle.write(json.dumps(row).encode() + b"\n")
    return buffer.getvalue()


def run(project, kind: str, fmt: str, content: bytes, name: str) -> dict:
    from apps.collection import uploads

    uploads.INLINE_MAX_BYTES = 0  # always a job, as a 100,000-row file is
    started = time.perf_counter()
    job = uploads.upload_receive(
        project=project, kind=kind, fmt=fmt, upload=Upload(name, content), user=None
    )["job"]
    received = time.perf_counter()
    done = uploads.import_run(job_id=job.pk)
    finished = time.perf_counter()
    report = done.report
    return {
        "status": done.status,
        "upload_seconds": round(received - started, 2),
        "job_seconds": round(finished - received, 2),
        "rows_read": report.get("rows_read"),
        "added": report.get("added"),
        "already_there": report.get("already_there"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db-name", default="bench_uploads")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db_name}")
        admin.execute(f"CREATE DATABASE {args.db_name}")
    os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{args.db_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings.local")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    from apps.collection.models import Project

    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    report = {}
    try:
        project = Project.objects.create(name="Uploads", slug="uploads", task_kinds=["ranking"])
        prompts = gz_jsonl(
            {"prompt": f"Prompt {i}: explain the number {i} to a child.", "category": "open_qa"}
            for i in range(args.rows)
        )
        pairs = gz_jsonl(
            {
                "prompt": f"Question {i}: what is {i} plus one?",
                "chosen": f"It is {i + 1}.",
                "rejected": f"It is {i - 1}, I think.",
            }
            for i in range(args.rows)
        )
        for label, kind, fmt, content, name in [
            ("prompts", "prompts", "prompts", prompts, "prompts.jsonl.gz"),
            ("pairs", "preferences", "pairs", pairs, "pairs.jsonl.gz"),
        ]:
            report[label] = run(project, kind, fmt, content, name)
            report[f"{label}_again"] = run(project, kind, fmt, content, name)
            report[f"{label}_file_mib"] = round(len(content) / 2**20, 1)
        report["process_peak_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        report["load_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            connections.close_all()
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {args.db_name}")


if __name__ == "__main__":
    main()
