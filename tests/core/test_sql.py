"""apps.core.sql: hand-written statements give the same instances the ORM gives."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.collection.models import Assignment, Judgment, Project, ReviewStatus, Task
from apps.core import sql
from apps.quality.models import ProjectQualitySettings
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def test_instances_match_the_orm_field_by_field():
    project = ProjectFactory(flag_set=[{"key": "unsafe", "label": "Unsafe"}], gold_rate=0.25)
    task = make_task(project, k=3)
    now = timezone.now()
    Assignment.objects.create(
        task=task,
        rater=UserFactory(),
        leased_at=now,
        expires_at=now + timedelta(minutes=5),
        display_order=[3, 1, 2],
    )
    query = f"""
        SELECT {sql.columns(Assignment, "a")}, {sql.columns(Task, "t")}, t.overlap * 2
        FROM {sql.table(Assignment)} a JOIN {sql.table(Task)} t ON t.id = a.task_id"""
    ((assignment, found_task, doubled),) = sql.fetch_models(query, [], [Assignment, Task])
    expected = Assignment.objects.get()
    for field in Assignment._meta.concrete_fields:
        assert getattr(assignment, field.attname) == getattr(expected, field.attname), field.name
    assert assignment.display_order == [3, 1, 2]  # JSON decoded, not a string
    assert assignment.expires_at.tzinfo is not None  # aware, as the ORM gives it
    assert found_task.pk == task.pk and found_task.is_gold is False
    assert doubled == 2 * task.overlap
    assert not assignment._state.adding  # a loaded instance: save() updates, not inserts


def test_an_outer_join_without_a_row_gives_none():
    project = ProjectFactory()
    query = f"""
        SELECT {sql.columns(Project, "p")}, {sql.columns(ProjectQualitySettings, "q")}
        FROM {sql.table(Project)} p
        LEFT JOIN {sql.table(ProjectQualitySettings)} q ON q.project_id = p.id"""
    ((found, settings),) = sql.fetch_models(query, [], [Project, ProjectQualitySettings])
    assert found.pk == project.pk and found.flag_set == project.flag_set
    assert settings is None


def test_insert_stores_what_save_would_store():
    project = ProjectFactory()
    task = make_task(project, k=2)
    rater = UserFactory()
    now = timezone.now()
    assignment = Assignment(
        task=task, rater=rater, leased_at=now, expires_at=now, display_order=[2, 1]
    )
    judgment = Judgment(
        assignment=sql.insert(assignment),
        task=task,
        rater=rater,
        ranking=[[2], [1]],
        client_key=uuid.uuid4(),
    )
    before = timezone.now()
    sql.insert(judgment)

    assert assignment.pk is not None and not assignment._state.adding
    stored = Judgment.objects.get(pk=judgment.pk)
    assert stored.assignment_id == assignment.pk
    assert stored.ranking == [[2], [1]]  # JSON, not a string
    assert stored.likert == {} and stored.review_status == ReviewStatus.PENDING  # defaults
    assert before <= stored.created_at <= timezone.now()  # auto_now_add
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.LEASED


def test_insert_that_breaks_a_constraint_raises_and_stores_nothing():
    project = ProjectFactory()
    task = make_task(project, k=2)
    rater = UserFactory()
    now = timezone.now()
    fields = dict(task=task, rater=rater, leased_at=now, expires_at=now, display_order=[])
    sql.insert(Assignment(**fields))
    with pytest.raises(IntegrityError), transaction.atomic():
        sql.insert(Assignment(**fields))  # the same (task, rater) twice
    assert Assignment.objects.count() == 1
