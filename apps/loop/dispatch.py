"""Publishing a stage's Celery task, by name: this module never imports apps/loop/tasks.py.

A run is marked queued in the caller's transaction and its task is published once that
transaction commits, with the run's id only (docs/design.md, "Queues"). Tests replace
`publish` to run stages inline (tests/loop/conftest.py).
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from apps.loop.models import GPU_STAGES, TrainingRun

logger = logging.getLogger(__name__)

#: the Celery task that executes a run, per queue (names as in apps/loop/tasks.py)
STAGE_TASKS = {"gpu": "loop.run_gpu_stage", "default": "loop.run_web_stage"}


def publish(run_id: int, queue: str, task_id: str) -> None:
    """Send the stage's task to its queue."""
    from annotation_site.celery import app

    app.send_task(STAGE_TASKS[queue], args=[run_id], queue=queue, task_id=task_id)


def run_enqueue(run: TrainingRun) -> None:
    """Mark the run queued; publish its task once the surrounding transaction commits."""
    run.status = TrainingRun.Status.QUEUED
    run.queue = "gpu" if run.stage in GPU_STAGES else "default"
    run.celery_task_id = uuid.uuid4().hex
    run.heartbeat_at = None
    run.save(update_fields=["status", "queue", "celery_task_id", "heartbeat_at", "updated_at"])
    run_id, queue, task_id = run.pk, run.queue, run.celery_task_id
    transaction.on_commit(lambda: publish(run_id, queue, task_id))


def tasks_revoke(task_ids: list[str]) -> None:
    """Drop queued messages; a running task sees the cancel itself (no SIGKILL of a worker)."""
    try:
        from annotation_site.celery import app

        app.control.revoke(task_ids)
    except Exception:  # noqa: BLE001 - a broker outage must not undo the cancel
        logger.warning("could not revoke %s", task_ids, exc_info=True)
