"""The leasing engine on the embedded default (SQLite), in a fresh interpreter."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import datetime, os, sys, tempfile
    os.environ["PREFLOOP_VAR_DIR"] = tempfile.mkdtemp()
    os.environ["DJANGO_SETTINGS_MODULE"] = "annotation_site.settings.local"
    sys.path.insert(0, sys.argv[1])
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.db import connection
    from django.utils import timezone
    from apps.collection.leasing import assignment_next
    from apps.collection.models import Assignment
    from apps.core.roles import Role
    from tests.factories import ProjectFactory, UserFactory, make_task
    assert connection.vendor == "sqlite"
    project = ProjectFactory(overlap=1)
    low, high = make_task(project), make_task(project, priority=3)
    a, b = UserFactory(roles=[Role.LABELER]), UserFactory(roles=[Role.LABELER])
    first = assignment_next(project=project, rater=a)
    assert first.task_id == high.pk, "priority first"
    assert assignment_next(project=project, rater=a).pk == first.pk, "same lease back"
    assert assignment_next(project=project, rater=b).task_id == low.pk, "full task skipped"
    Assignment.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    c = UserFactory(roles=[Role.LABELER])
    assert assignment_next(project=project, rater=c).task_id == high.pk, "expired slot freed"

    # The raters' API end to end: token auth with roles, next, submit, a retry, completion.
    import uuid
    from apps.accounts.tokens import api_token_create
    from rest_framework.test import APIClient
    from apps.collection.models import Judgment, Task
    fresh = ProjectFactory(overlap=1, name="fresh")
    task = make_task(fresh, k=3)
    rater = UserFactory(roles=[Role.LABELER])
    api = APIClient(HTTP_HOST="127.0.0.1")  # the embedded default allows local hosts only
    api.credentials(HTTP_AUTHORIZATION="Token " + api_token_create(user=rater))
    leased = api.post(f"/api/projects/{fresh.pk}/assignments/next/")
    assert leased.status_code == 200, leased.content
    payload = leased.json()
    assert payload["task_id"] == task.pk and len(payload["completions"]) == 3
    assert all(c["text"] for c in payload["completions"]) and payload["prompt"]["text"]
    assert payload["lease_expires_at"].endswith("Z")
    body = {"ranking": [[c["id"]] for c in payload["completions"]], "client_key": str(uuid.uuid4())}
    url = f"/api/assignments/{payload['assignment_id']}/judgment/"
    first, again = api.post(url, body, format="json"), api.post(url, body, format="json")
    assert (first.status_code, again.status_code) == (201, 200), (first.content, again.content)
    assert first.json() == again.json() and Judgment.objects.count() == 1
    assert Task.objects.get(pk=task.pk).status == Task.Status.COMPLETE
    assert api.post(f"/api/projects/{fresh.pk}/assignments/next/").status_code == 204
    print("ok")
    """
)


def test_leasing_rules_hold_on_sqlite():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
