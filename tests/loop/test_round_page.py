"""The round page tells the truth: which actions are allowed, what did not run, what was
skipped, and a cancelled round's tasks are closed (reopened on retry)."""

from __future__ import annotations

import uuid

import pytest

from apps.collection.leasing import assignment_next
from apps.collection.models import Assignment, PolicyVersion, Task
from apps.collection.services import judgment_submit, membership_add
from apps.core.roles import Role
from apps.loop import selectors
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.loop.trainer_launch import without_redraws
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(project):
    return PolicyVersion.objects.create(project=project, name="base", artifact_uri="/models/base")


def test_actions_follow_the_stage_and_an_ended_round_shows_not_run(project, base, researcher):
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.COLLECTING, config={}
    )
    TrainingRun.objects.create(
        round=training_round, stage=Stage.SAMPLING, status=TrainingRun.Status.SUCCEEDED
    )
    TrainingRun.objects.create(
        round=training_round, stage=Stage.COLLECTING, status=TrainingRun.Status.RUNNING
    )
    detail = selectors.round_detail(training_round=training_round)
    assert detail["actions"] == {"cancel": True, "retry": False, "move_on": True}
    statuses = {s["stage"]: s["status"] for s in detail["stages"]}
    assert statuses["exporting"] == "waiting" and statuses["collecting"] == "running"

    training_round.stage = Stage.DONE
    training_round.save()
    TrainingRun.objects.filter(stage=Stage.COLLECTING).update(status="succeeded")
    TrainingRun.objects.create(
        round=training_round,
        stage=Stage.SFT,
        status=TrainingRun.Status.SUCCEEDED,
        metrics={"skipped": True, "reason": "no demonstrations"},
    )
    detail = selectors.round_detail(training_round=training_round)
    assert detail["actions"] == {"cancel": False, "retry": False, "move_on": False}
    statuses = {s["stage"]: s["status"] for s in detail["stages"]}
    assert statuses["ppo"] == "not run" and "waiting" not in statuses.values()
    # the stage tile and the runs list say the same of a skipped stage
    assert statuses["sft"] == "skipped"
    runs = {r["stage"]: r for r in detail["runs"]}
    assert runs["sft"]["shown_status"] == "skipped" and runs["sft"]["status"] == "succeeded"

    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    from django.test import Client

    browser = Client()
    browser.force_login(researcher)
    page = browser.get(f"/research/rounds/{training_round.pk}/").content.decode()
    for button in ("cancel", "retry", "move-on"):
        tag = page[page.index(f'id="{button}"') :]
        assert "disabled" in tag[: tag.index(">")], button
    assert 'data-confirm="Cancel round 1?' in page


def test_cancel_closes_the_rounds_open_tasks_and_retry_reopens_them(
    project, base, researcher, api_as, stages
):
    from apps.loop.config import round_config

    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    training_round = TrainingRound.objects.create(
        project=project,
        number=1,
        start_policy=base,
        stage=Stage.COLLECTING,
        config=round_config(preset="tiny"),
    )
    TrainingRun.objects.create(
        round=training_round, stage=Stage.COLLECTING, status=TrainingRun.Status.RUNNING
    )
    open_task, answered, other = (make_task(project, overlap=1) for _ in range(3))
    for task in (open_task, answered):
        task.round_number = 1
        task.save()
    rater = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=rater, role=Role.LABELER)
    done = assignment_next(project=project, rater=rater)
    assert done.task_id == open_task.pk
    # the first task gets an answer; the rater then holds a lease on the second
    ids = list(open_task.task_completions.values_list("completion_id", flat=True))
    judgment_submit(
        assignment_id=done.pk,
        rater=rater,
        client_key=uuid.uuid4(),
        ranking=[[i] for i in ids],
    )
    lease = assignment_next(project=project, rater=rater)
    assert lease.task_id == answered.pk

    response = api_as(researcher).post(f"/api/rounds/{training_round.pk}/cancel/")
    assert response.status_code == 200
    training_round.refresh_from_db()
    assert training_round.message.endswith("Its 1 open task(s) were closed.")
    statuses = dict(Task.objects.values_list("pk", "status"))
    # overlap 1: the answered task was already complete; the leased one is closed; the task
    # no round made is left alone
    assert statuses == {open_task.pk: "complete", answered.pk: "closed", other.pk: "open"}
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.RELEASED and "cancelled" in lease.release_reason
    # the rater is offered only what is still open
    assert assignment_next(project=project, rater=rater).task_id == other.pk

    assert api_as(researcher).post(f"/api/rounds/{training_round.pk}/retry/").status_code == 200
    assert Task.objects.get(pk=answered.pk).status == Task.Status.OPEN


def test_progress_bar_redraws_leave_only_their_last_state():
    raw = "loading\r 10%|#\r 50%|##\r100%|###\r\nstep 1\nstep 2\r"
    assert without_redraws(raw) == "100%|###\nstep 1\nstep 2"
    assert without_redraws("plain\nlines") == "plain\nlines"
