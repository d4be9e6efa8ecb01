"""Celery tasks of rater quality: thin (ids in, call a service).

They have no route of their own, so they go to CELERY_TASK_DEFAULT_QUEUE, `default`.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.collection.models import Project
from apps.quality import services


@shared_task(
    name="quality.snapshot_refresh",
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=True,
)
def quality_snapshot_refresh_task(project_id: int, full: bool = False) -> int | None:
    """Refresh and store one project's statistics (incremental unless `full`); a deleted
    project, or one another worker is refreshing, is skipped."""
    snapshot = services.quality_snapshot_refresh(project_id=project_id, full=bool(full))
    return snapshot.pk if snapshot else None


@shared_task(name="quality.snapshots_refresh_all", acks_late=True, max_retries=0)
def quality_snapshots_refresh_all_task() -> int:
    """Beat entry: enqueue a refresh for every active project."""
    project_ids = list(Project.objects.filter(is_active=True).values_list("pk", flat=True))
    for project_id in project_ids:
        quality_snapshot_refresh_task.delay(project_id)
    return len(project_ids)
