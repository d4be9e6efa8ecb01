"""Executing a stage run: claim it, run its stage, record the outcome, move the round on.

`run_execute` is the body of the stage's Celery task (apps/loop/tasks.py), of `manage.py
run_stage`, and of the tests' inline stages. Crash safety: a run is claimed under a row lock
and then heartbeats (apps/loop/trainer_launch.py); a redelivered message (acks_late) or the
watchdog (apps/loop/watchdog.py) executes a run whose heartbeat stopped again, as the next
attempt. Every stage is safe to execute again: sampling reuses its samples and adds no task
twice, exporting freezes one snapshot per round, PPO resumes from its checkpoint, and a policy
is registered through a one-to-one link from its run plus a unique name, so it exists at most
once. docs/design.md, "Rounds and stages".
"""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.loop import runner
from apps.loop.errors import StageCancelled, StageError
from apps.loop.models import TrainingRun
from apps.loop.services import round_advance, round_fail
from apps.loop.stages import HANDLERS


def heartbeat_stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "LOOP_HEARTBEAT_STALE_SECONDS", 120))


def worker_name() -> str:
    return socket.gethostname()


def run_claim(*, run_id: int, task_id: str, worker: str) -> TrainingRun | None:
    """Take the run for this attempt, or None when there is nothing (more) to do."""
    with transaction.atomic():
        run = (
            TrainingRun.objects.select_for_update()
            .select_related("round__project", "round__start_policy")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return None
        if run.status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.CANCELLED):
            return None
        if run.round.stage != run.stage:
            return None  # the round moved on, failed or was cancelled
        fresh = run.heartbeat_at and run.heartbeat_at >= timezone.now() - heartbeat_stale_after()
        if run.status == TrainingRun.Status.RUNNING and fresh and run.celery_task_id != task_id:
            return None  # another worker holds it and is alive
        if run.status == TrainingRun.Status.FAILED:
            return None
        if run.pid and run.worker == worker:
            runner.kill_group(run.pid)
        now = timezone.now()
        run.attempt += 1
        run.status = TrainingRun.Status.RUNNING
        run.worker = worker
        run.pid = None
        run.celery_task_id = task_id or run.celery_task_id
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.finished_at = None
        run.error = ""
        header = f"[prefloop] attempt {run.attempt} on {worker} at {now:%Y-%m-%d %H:%M:%S}Z\n"
        run.log = (run.log + ("\n" if run.log else "") + header)[-runner.LOG_TAIL_CHARS :]
        run.save()
    return run


def run_execute(*, run_id: int, task_id: str = "", worker: str = "") -> str:
    """Execute one stage run (the body of its Celery task). Returns the run's final status."""
    run = run_claim(run_id=run_id, task_id=task_id, worker=worker or worker_name())
    if run is None:
        return "skipped"
    handler = HANDLERS[run.stage]
    try:
        result = handler(run)
    except StageError as exc:
        return run_fail(run, str(exc))
    except StageCancelled:
        return run_cancelled(run)
    except Exception as exc:  # an unexpected error is still shown on the round, then raised
        run_fail(run, f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != TrainingRun.Status.RUNNING:
            return locked.status
        locked.status = TrainingRun.Status.SUCCEEDED
        locked.finished_at = timezone.now()
        locked.pid = None
        locked.metrics = result.metrics
        locked.artifacts = {**locked.artifacts, **result.artifacts}
        locked.save()
        round_advance(locked)
    return TrainingRun.Status.SUCCEEDED


def run_fail(run: TrainingRun, message: str) -> str:
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == TrainingRun.Status.CANCELLED:
            return locked.status
        locked.status = TrainingRun.Status.FAILED
        locked.error = message
        locked.pid = None
        locked.finished_at = timezone.now()
        locked.log = (locked.log + f"\n[prefloop] failed: {message}\n")[-runner.LOG_TAIL_CHARS :]
        locked.save(update_fields=["status", "error", "pid", "finished_at", "log", "updated_at"])
    round_fail(run, message)
    return TrainingRun.Status.FAILED


def run_cancelled(run: TrainingRun) -> str:
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.CANCELLED, pid=None, finished_at=timezone.now()
    )
    return TrainingRun.Status.CANCELLED
