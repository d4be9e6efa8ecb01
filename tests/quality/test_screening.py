"""Screening of new raters on gold tasks, gold honeypots, and never revealing gold."""

from __future__ import annotations

import pytest

from apps.collection import leasing
from apps.collection.services import membership_add
from apps.core.errors import NotPermitted
from apps.core.roles import Role
from apps.quality.models import RaterScreening
from apps.quality.services import rater_reinstate
from tests.factories import UserFactory, make_task
from tests.quality.conftest import answer, by_id, by_id_reversed

pytestmark = pytest.mark.django_db


def canonical(shown):
    return by_id(shown)  # make_task's "canonical" gold ranks completions by creation order


def test_a_rater_who_passes_screening_moves_on_to_regular_work(screened_project):
    project, gold, regular = screened_project
    rater = UserFactory(roles=[Role.LABELER])
    first = answer(project, rater, canonical)
    second = answer(project, rater, canonical)
    assert {first.task_id, second.task_id} <= {t.pk for t in gold}
    third = leasing.assignment_next(project=project, rater=rater)
    assert third.task.is_gold is False
    screening = RaterScreening.objects.get(project=project, rater=rater)
    assert screening.state == RaterScreening.State.PASSED
    assert screening.gold_answered == 2 and screening.gold_accuracy == 1.0


def test_a_rater_who_fails_is_kept_out_and_the_reviewer_sees_why(screened_project):
    project, _, regular = screened_project
    rater = UserFactory(roles=[Role.LABELER])
    answer(project, rater, by_id_reversed)
    answer(project, rater, by_id_reversed)
    for _ in range(2):
        with pytest.raises(NotPermitted) as refused:
            leasing.assignment_next(project=project, rater=rater)
        assert "gold" not in refused.value.message.lower()
    screening = RaterScreening.objects.get(project=project, rater=rater)
    assert screening.state == RaterScreening.State.FAILED
    assert "0%" in screening.reason and "threshold is 70%" in screening.reason
    assert not rater.assignments.filter(task__is_gold=False).exists()

    reviewer = UserFactory(roles=[Role.REVIEWER])
    membership_add(project=project, user=reviewer, role=Role.REVIEWER)
    rater_reinstate(rater=rater, actor=reviewer, reason="Talked it through; guidelines clear now.")
    screening.refresh_from_db()
    assert screening.state == RaterScreening.State.PASSED and screening.decided_by == reviewer
    assert leasing.assignment_next(project=project, rater=rater).task.is_gold is False


def test_a_rater_in_screening_gets_only_gold_and_nothing_when_it_runs_out(screened_project):
    project, gold, _ = screened_project
    project.quality_settings.screening_size = 5
    project.quality_settings.save()
    rater = UserFactory(roles=[Role.LABELER])
    done = [answer(project, rater, canonical) for _ in range(3)]
    assert all(j.task.is_gold for j in done)
    assert leasing.assignment_next(project=project, rater=rater) is None


def test_raters_who_worked_before_screening_began_are_waived(screened_project):
    project, _, _ = screened_project
    settings = project.quality_settings
    settings.screening_size = 0
    settings.save()
    rater = UserFactory(roles=[Role.LABELER])
    answer(project, rater, canonical)
    settings.screening_size = 2
    settings.save()
    assert leasing.assignment_next(project=project, rater=rater).task.is_gold is False
    assert RaterScreening.objects.get(rater=rater).state == RaterScreening.State.WAIVED


def test_gold_honeypots_come_at_the_gold_rate_and_look_like_any_task(db, api_as):
    from tests.factories import ProjectFactory

    project = ProjectFactory(k=3, overlap=1, gold_rate=1.0)
    gold = make_task(project, is_gold=True, overlap=5, gold_ranking="canonical")
    make_task(project)
    rater = UserFactory(roles=[Role.LABELER])
    response = api_as(rater).post(f"/api/projects/{project.pk}/assignments/next/")
    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == gold.pk
    assert "gold" not in response.content.decode().lower()
    assert set(body) == {
        "assignment_id",
        "task_id",
        "kind",
        "prompt",
        "completions",
        "lease_expires_at",
        "status",
    }
