"""The watchdog (beat task `loop.watch_rounds`, every few seconds): move collecting rounds on
once they have their judgments, and recover runs whose worker died (their heartbeat stopped):
queue them again, or fail them after MAX_ATTEMPTS. docs/design.md, "Queues".
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.loop import runner
from apps.loop.dispatch import run_enqueue
from apps.loop.executor import heartbeat_stale_after, worker_name
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.loop.services import collecting_check, round_fail

#: a run whose worker was lost this many times fails instead of being queued again
MAX_ATTEMPTS = 3


def rounds_watch() -> dict:
    """The periodic watchdog: advance collecting rounds, recover runs whose worker died."""
    advanced = [
        pk
        for pk in TrainingRound.objects.filter(stage=Stage.COLLECTING).values_list("pk", flat=True)
        if collecting_check(round_id=pk)
    ]
    return {"advanced": advanced, **runs_reap_stale()}


def runs_reap_stale(*, now=None) -> dict:
    """Runs whose heartbeat stopped (the worker died): re-queue, or fail after MAX_ATTEMPTS."""
    now = now or timezone.now()
    requeued, failed = [], []
    stale = TrainingRun.objects.filter(
        status=TrainingRun.Status.RUNNING, heartbeat_at__lt=now - heartbeat_stale_after()
    ).exclude(stage=Stage.COLLECTING)
    for run_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            run = (
                TrainingRun.objects.select_for_update()
                .select_related("round")
                .filter(pk=run_id, status=TrainingRun.Status.RUNNING)
                .first()
            )
            if run is None or run.heartbeat_at >= now - heartbeat_stale_after():
                continue
            if run.worker == worker_name():
                runner.kill_group(run.pid)  # a trainer left behind on this machine
            note = (
                f"\n[prefloop] worker {run.worker or '?'} stopped answering "
                f"during attempt {run.attempt}.\n"
            )
            run.log = (run.log + note)[-runner.LOG_TAIL_CHARS :]
            if run.attempt >= MAX_ATTEMPTS:
                run.status = TrainingRun.Status.FAILED
                run.error = f"The worker was lost {run.attempt} times; giving up."
                run.finished_at = now
                run.save(update_fields=["status", "error", "finished_at", "log", "updated_at"])
                transaction.on_commit(lambda run=run: round_fail(run, run.error))
                failed.append(run.pk)
            else:
                run.save(update_fields=["log", "updated_at"])
                run_enqueue(run)
                requeued.append(run.pk)
    return {"requeued": requeued, "failed": failed}
