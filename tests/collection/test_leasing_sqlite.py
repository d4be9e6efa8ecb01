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
    print("ok")
    """
)


def test_leasing_rules_hold_on_sqlite():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
