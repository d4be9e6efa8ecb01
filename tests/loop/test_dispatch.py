"""Stage tasks are published by name: the services never import the Celery task module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from annotation_site.celery import app
from apps.loop import dispatch, tasks

ROOT = Path(__file__).resolve().parents[2]


def test_publish_sends_the_task_of_the_queue_by_name(monkeypatch):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kwargs: sent.append((name, kwargs)))
    dispatch.publish(7, "gpu", "abc")
    dispatch.publish(8, "default", "def")
    assert sent == [
        ("loop.run_gpu_stage", {"args": [7], "queue": "gpu", "task_id": "abc"}),
        ("loop.run_web_stage", {"args": [8], "queue": "default", "task_id": "def"}),
    ]
    # the names are those the worker registers
    assert tasks.run_gpu_stage.name == dispatch.STAGE_TASKS["gpu"]
    assert tasks.run_web_stage.name == dispatch.STAGE_TASKS["default"]


def test_the_loop_services_do_not_import_the_task_module():
    code = (
        "import django, json, sys; django.setup()\n"
        "import apps.loop.services, apps.loop.executor, apps.loop.watchdog, apps.loop.api\n"
        "print(json.dumps('apps.loop.tasks' in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "annotation_site.settings.local",
        },
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False
