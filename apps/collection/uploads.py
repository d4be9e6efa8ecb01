"""Uploaded files into a project: prompts, preference data, gold items. With a report.

`upload_receive` stores the upload under ARTIFACT_ROOT with a name the server chooses
(only the extension is taken from the upload, and only from the list below). A file up to
INLINE_MAX_BYTES is imported at once: the answer is the report, or an error naming the line
with nothing stored. A larger one becomes an `ImportJob` that a worker runs
(`import_run`): it reads the file (reporting the line it has reached), then stores every
row in one transaction, so a malformed file still stores nothing and names the line.

The report, the same for every kind:
    {"rows_read", "added", "already_there", "skipped": {reason: rows},
     "skipped_lines": {reason: [first line numbers]}, "prompts_created",
     "demonstration_tasks_created"}
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.collection.importers import preferences_import, prompt_records_import
from apps.collection.importers_rankings import gold_import, rankings_import
from apps.collection.importing import (
    ImportFileError,
    read_preference_records,
    read_prompt_records,
)
from apps.collection.importing_rankings import read_ranking_records
from apps.collection.models import ImportJob, Project, Task
from apps.core.errors import InvalidInput

INLINE_MAX_BYTES = 2 * 2**20  # larger uploads become a job with progress
UPLOAD_MAX_BYTES = 1024 * 2**20
SUFFIXES = (".jsonl", ".ndjson", ".csv", ".jsonl.gz", ".ndjson.gz", ".csv.gz")
FORMATS = {
    ImportJob.Kind.PROMPTS: ("prompts",),
    ImportJob.Kind.PREFERENCES: ("hh-rlhf", "pairs", "rankings"),
    ImportJob.Kind.GOLD: ("rankings",),
}


def upload_suffix(file_name: str) -> str:
    """The one of SUFFIXES the name ends in (InvalidInput when none)."""
    lowered = (file_name or "").lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return suffix
    raise InvalidInput(
        "Upload a .jsonl or .csv file (optionally gzip-compressed, .gz).",
        fields={"file": [f"Expected a name ending in {', '.join(SUFFIXES)}."]},
    )


def upload_receive(*, project: Project, kind: str, fmt: str, upload, user) -> dict:
    """Take an uploaded file: {"report": {...}, "job": ImportJob} when imported at once,
    {"job": ImportJob} when a worker will. InvalidInput (a 400) names the line of a
    malformed small file. Every upload is kept as a job row (the project's upload history)."""
    if fmt not in FORMATS.get(kind, ()):
        raise InvalidInput(
            f"Unknown format for {kind}.",
            fields={"format": [f"Expected one of {', '.join(FORMATS.get(kind, ()))}."]},
        )
    suffix = upload_suffix(getattr(upload, "name", ""))
    size = getattr(upload, "size", 0) or 0
    if size > UPLOAD_MAX_BYTES:
        raise InvalidInput(f"The file is larger than {UPLOAD_MAX_BYTES // 2**20} MiB.")
    relative = f"uploads/{project.pk}/{uuid.uuid4().hex}{suffix}"
    path = Path(settings.ARTIFACT_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    job = ImportJob.objects.create(
        project=project,
        kind=kind,
        format=fmt,
        file_name=Path(upload.name).name[:255],
        stored_path=relative,
        size_bytes=size,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if size <= INLINE_MAX_BYTES:  # at once: the upload's answer is the report
        job = import_run(job_id=job.pk)
        if job.status == ImportJob.Status.FAILED:
            raise InvalidInput(job.error, fields={"file": [job.error]})
        return {"report": job.report, "job": job}
    from apps.collection.tasks import import_run_task

    job_id = job.pk
    transaction.on_commit(lambda: import_run_task.delay(job_id))
    return {"job": job}


def import_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import job (a worker); None if it is gone or already taken."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, phase="reading", started_at=timezone.now()
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    path = Path(settings.ARTIFACT_ROOT) / job.stored_path

    def progress(line: int) -> None:
        ImportJob.objects.filter(pk=job.pk).update(lines_read=line, updated_at=timezone.now())

    try:
        report = _import(
            job.project, job.kind, job.format, path, name=job.file_name, progress=progress, job=job
        )
    except ImportFileError as error:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            error=f"Nothing was stored: {error}",
            error_line=error.line,
            finished_at=timezone.now(),
        )
    else:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.SUCCEEDED,
            phase="",
            report=report,
            lines_read=report["rows_read"],
            finished_at=timezone.now(),
        )
    finally:
        path.unlink(missing_ok=True)
    job.refresh_from_db()
    return job


def _import(project, kind, fmt, path: Path, *, name: str, progress=None, job=None) -> dict:
    """Read the whole file (ImportFileError names the first bad line, and the file by the
    name it was uploaded under), then store it."""
    try:
        return _import_stored(project, kind, fmt, path, name=name, progress=progress, job=job)
    except ImportFileError as error:
        raise ImportFileError(Path(name).name, error.line, error.message) from None


def _import_stored(project, kind, fmt, path: Path, *, name: str, progress=None, job=None):
    source = Path(name).name
    if kind == ImportJob.Kind.PROMPTS:
        records = read_prompt_records(path, progress=progress)
        _storing(job, len(records))
        with transaction.atomic():
            result = prompt_records_import(project=project, records=records)
            demonstrations = _demonstration_tasks(project, result.created)
        return _report(
            rows_read=len(records),
            added=len(result.created),
            already_there=len(records) - len(result.created),
            prompts_created=len(result.created),
            demonstration_tasks_created=demonstrations,
        )
    if fmt in ("hh-rlhf", "pairs"):
        parsed = read_preference_records(path, fmt, progress=progress)
        _storing(job, parsed.rows_read)
        outcome = preferences_import(project=project, parsed=parsed, source_name=source)
        return _report(
            rows_read=parsed.rows_read,
            added=outcome.judgments_created,
            already_there=outcome.already_imported,
            skipped=outcome.skipped,
            skipped_lines=outcome.skipped_lines,
            prompts_created=outcome.prompts_created,
        )
    parsed = read_ranking_records(path, progress=progress)
    _storing(job, parsed.rows_read)
    store = gold_import if kind == ImportJob.Kind.GOLD else rankings_import
    outcome = store(project=project, parsed=parsed, source_name=source)
    return _report(rows_read=parsed.rows_read, **asdict(outcome))


def _storing(job: ImportJob | None, rows: int) -> None:
    if job is not None:
        ImportJob.objects.filter(pk=job.pk).update(
            phase="storing", lines_read=rows, lines_total=rows, updated_at=timezone.now()
        )


def _demonstration_tasks(project: Project, prompts) -> int:
    """One demonstration task per new train prompt, when the project makes them."""
    if "demonstration" not in (project.task_kinds or []):
        return 0
    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                prompt=prompt,
                kind=Task.Kind.DEMONSTRATION,
                overlap=min(project.overlap, 2),
            )
            for prompt in prompts
            if prompt.split == "train"
        ],
        batch_size=1000,
    )
    return len(tasks)


def _report(**values) -> dict:
    report = {
        "rows_read": 0,
        "added": 0,
        "already_there": 0,
        "skipped": {},
        "skipped_lines": {},
        "prompts_created": 0,
        "demonstration_tasks_created": 0,
    }
    report.update(values)
    report["skipped"] = dict(report["skipped"])
    return report
