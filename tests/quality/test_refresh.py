"""Snapshot refreshes against PostgreSQL: incremental ones equal a full recompute; the
pages' freshness bound queues one refresh at a time; one refresh per project at a time."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from apps.collection.models import Judgment
from apps.core.roles import Role
from apps.quality import services, tasks
from apps.quality.models import ProjectQualitySettings, QualitySnapshot
from tests.factories import UserFactory, make_task
from tests.quality.conftest import answer, by_id, by_id_reversed
from tests.quality.test_statistics import assert_same_figures

pytestmark = pytest.mark.django_db


def _more_judgments(project, raters: int = 3, tasks_: int = 2) -> list[Judgment]:
    for _ in range(tasks_):
        make_task(project)
    made = []
    for i in range(raters):
        rater = UserFactory(roles=[Role.LABELER])
        for _ in range(tasks_):
            made.append(answer(project, rater, by_id if i else by_id_reversed))
    return made


def test_an_incremental_refresh_reads_only_what_changed_and_equals_a_full_one(
    rated_project, reviewer
):
    project, _, raters = rated_project
    first = services.quality_snapshot_refresh(project_id=project.pk)
    assert first.mode == "full" and first.judgments == first.judgments_read == 24

    new = _more_judgments(project)
    decided = Judgment.objects.filter(rater=raters[3]).first()
    services.judgment_review(
        judgment_id=decided.pk, reviewer=reviewer, decision="reject", reason="Reversed."
    )
    second = services.quality_snapshot_refresh(project_id=project.pk)
    assert second.mode == "incremental"
    assert second.judgments == 24 + len(new) and second.judgments_read == len(new) + 1
    full = services.quality_snapshot_refresh(project_id=project.pk, full=True)
    assert full.mode == "full"
    assert_same_figures(second.data, full.data)
    assert second.data["project"]["judgments_included"] == 24 + len(new) - 1

    quiet = services.quality_snapshot_refresh(project_id=project.pk)
    assert quiet.mode == "incremental" and quiet.judgments_read == 0
    assert_same_figures(quiet.data, full.data)


def test_a_lost_or_foreign_state_means_a_full_recompute(rated_project, settings, tmp_path):
    project, _, _ = rated_project
    settings.ARTIFACT_ROOT = tmp_path
    services.quality_snapshot_refresh(project_id=project.pk)
    state = tmp_path / "quality" / f"project-{project.pk}.state"
    assert state.is_file()
    state.unlink()
    assert services.quality_snapshot_refresh(project_id=project.pk).mode == "full"
    # a snapshot made elsewhere (another worker's disk) does not continue this state
    QualitySnapshot.objects.filter(project=project).update(state_token="elsewhere")
    assert services.quality_snapshot_refresh(project_id=project.pk).mode == "full"
    # nor does one older than a day's worth of incremental refreshes
    QualitySnapshot.objects.filter(project=project).update(computed_at=timezone.now())
    services.quality_snapshot_refresh(project_id=project.pk)
    state.write_bytes(b"truncated")
    assert services.quality_snapshot_refresh(project_id=project.pk).mode == "full"


def test_a_judgment_committed_late_is_still_read(rated_project):
    project, _, _ = rated_project
    services.quality_snapshot_refresh(project_id=project.pk)
    late = _more_judgments(project, raters=2, tasks_=1)
    # written minutes ago (its transaction was slow), committed after the last refresh read
    Judgment.objects.filter(pk__in=[j.pk for j in late]).update(
        created_at=timezone.now() - timedelta(minutes=4)
    )
    snapshot = services.quality_snapshot_refresh(project_id=project.pk)
    assert snapshot.mode == "incremental" and snapshot.judgments == 26


def test_one_refresh_per_project_at_a_time(rated_project):
    project, _, _ = rated_project
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [services.REFRESH_LOCK_CLASS, project.pk])
        assert services.quality_snapshot_refresh(project_id=project.pk) is None
        other.execute(
            "SELECT pg_advisory_unlock(%s, %s)", [services.REFRESH_LOCK_CLASS, project.pk]
        )
    assert services.quality_snapshot_refresh(project_id=project.pk) is not None


def test_stale_figures_queue_one_refresh(
    rated_project, monkeypatch, django_capture_on_commit_callbacks
):
    project, _, _ = rated_project
    queued = []
    monkeypatch.setattr(tasks.quality_snapshot_refresh_task, "delay", lambda *a: queued.append(a))
    with django_capture_on_commit_callbacks(execute=True):
        first = services.quality_refresh_if_stale(project=project)
        again = services.quality_refresh_if_stale(project=project)
    assert first["stale"] and first["snapshot"] is None and first["queued_at"]
    assert again["queued_at"] == first["queued_at"]
    assert queued == [(project.pk, False)]  # one request, however many pages opened

    services.quality_snapshot_refresh(project_id=project.pk)
    with django_capture_on_commit_callbacks(execute=True):
        fresh = services.quality_refresh_if_stale(project=project)
    assert not fresh["stale"] and fresh["queued_at"] is None and len(queued) == 1

    # the figures age past the project's bound (the request they answered older still)
    ProjectQualitySettings.objects.filter(project=project).update(
        stats_max_age_seconds=10, refresh_requested_at=timezone.now() - timedelta(seconds=40)
    )
    QualitySnapshot.objects.filter(project=project).update(
        computed_at=timezone.now() - timedelta(seconds=30)
    )
    with django_capture_on_commit_callbacks(execute=True):
        old = services.quality_refresh_if_stale(project=project)
    assert old["stale"] and old["age_seconds"] >= 30 and old["max_age_seconds"] == 10
    assert len(queued) == 2
