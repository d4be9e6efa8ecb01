"""`manage.py run_stage RUN_ID`: execute one stage run in the foreground, without a worker.

For operators (re-run a stage by hand on a GPU machine, watch its output) and for the fault
tests, which need a real process to kill. It does exactly what the Celery task does.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.loop import executor


class Command(BaseCommand):
    help = "Run one TrainingRun's stage in this process (what the Celery task does)."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--task-id", default="", help="Claim as this Celery task id.")

    def handle(self, *args, **options):
        status = executor.run_execute(run_id=options["run_id"], task_id=options["task_id"])
        self.stdout.write(f"run {options['run_id']}: {status}")
