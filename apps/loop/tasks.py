"""Celery tasks of the loop: ids in, one service call, nothing else.

`run_gpu_stage` runs on the `gpu` queue (model work, a trainer subprocess), `run_web_stage` on
`default` (exports). Both are acks_late, so a message whose worker died is delivered again;
`run_execute` claims the run under a lock, so a second delivery does no work twice. The
services publish them by name (apps/loop/dispatch.py), so nothing imports this module but
Celery's autodiscovery.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.loop import executor, watchdog

RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    # transient database trouble: retry with exponential backoff, a bounded number of times
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 3,
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "retry_jitter": True,
}


@shared_task(name="loop.run_gpu_stage", bind=True, **RETRY)
def run_gpu_stage(self, run_id: int) -> str:
    return executor.run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(name="loop.run_web_stage", bind=True, **RETRY)
def run_web_stage(self, run_id: int) -> str:
    return executor.run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(name="loop.watch_rounds", **RETRY)
def watch_rounds() -> dict:
    """Every few seconds (beat): advance collecting rounds, recover runs of dead workers."""
    return watchdog.rounds_watch()
