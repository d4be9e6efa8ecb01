"""Dynamic overlap through the API: researchers set it, reviewers read each task's confidence
and the savings, labelers see none of it."""

from __future__ import annotations

import uuid

import pytest

from apps.collection.leasing import assignment_next
from apps.collection.models import Project
from apps.collection.services import judgment_submit, task_create
from apps.core.roles import Role
from tests.factories import CompletionFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def url(project) -> str:
    return f"/api/projects/{project.pk}/overlap/"


def test_researcher_turns_dynamic_overlap_on_and_reviewer_reads_it(
    project, researcher, reviewer, api_as
):
    answer = api_as(researcher).patch(
        url(project),
        {"dynamic_overlap": True, "overlap": 1, "overlap_max": 4, "confidence_target": 0.8},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    project.refresh_from_db()
    assert (project.dynamic_overlap, project.overlap, project.overlap_max) == (True, 1, 4)
    assert project.confidence_target == 0.8
    read = api_as(reviewer).get(url(project)).json()
    assert read["settings"]["dynamic_overlap"] is True
    assert "adjacent pair" in read["settings"]["confidence_measure"]
    assert read["summary"]["tasks"] == 0 and read["tasks"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dynamic_overlap": "yes"}, "dynamic_overlap"),
        ({"overlap": 0}, "overlap"),
        ({"overlap_max": 16}, "overlap_max"),
        ({"overlap": True}, "overlap"),
        ({"confidence_target": 1.0}, "confidence_target"),
        ({"confidence_target": "0.9"}, "confidence_target"),
        ({"dynamic_overlap": True, "overlap": 4, "overlap_max": 2}, "overlap_max"),
        ({"dynamic_overlap": True, "overlap": 1, "confidence_target": 0.7}, "confidence_target"),
        ({"k": 9}, "k"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(project, researcher, api_as, body, field):
    before = Project.objects.values().get(pk=project.pk)
    answer = api_as(researcher).patch(url(project), body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()["fields"]
    assert Project.objects.values().get(pk=project.pk) == before


def test_only_the_projects_researchers_may_change_it(project, reviewer, labeler, api_as):
    outsider = UserFactory(roles=[Role.RESEARCHER])
    for user in (reviewer, outsider):
        answer = api_as(user).patch(url(project), {"dynamic_overlap": True}, format="json")
        assert answer.status_code in (403, 404)
    assert api_as(labeler).get(url(project)).status_code == 403
    project.refresh_from_db()
    assert project.dynamic_overlap is False


def test_each_tasks_confidence_and_the_judgments_saved(project, reviewer, api_as):
    project.dynamic_overlap, project.overlap, project.overlap_max = True, 2, 4
    project.confidence_target = 0.85
    project.k = 2
    project.save()
    for _ in range(2):
        prompt = PromptFactory(project=project)
        task_create(
            project=project,
            prompt=prompt,
            completions=[CompletionFactory(prompt=prompt) for _ in range(2)],
        )
    raters = [UserFactory() for _ in range(3)]
    # Task 1: two raters agree (0.9, complete at 2). Task 2: they split (0.5, one more).
    for rater, flip in zip(raters[:2], [False, True], strict=True):
        for _ in range(2):
            lease = assignment_next(project=project, rater=rater)
            ids = sorted(lease.display_order)
            second_task = lease.task_id != min(t.pk for t in project.tasks.all())
            order = ids[::-1] if (flip and second_task) else ids
            judgment_submit(
                assignment_id=lease.pk,
                rater=rater,
                client_key=uuid.uuid4(),
                ranking=[[cid] for cid in order],
            )
    body = api_as(reviewer).get(url(project)).json()
    summary = body["summary"]
    assert (summary["tasks"], summary["complete"], summary["open"]) == (2, 1, 1)
    # The complete task took 2 judgments where fixed overlap at the maximum takes 4.
    assert (summary["judgments"], summary["fixed_at_max"], summary["saved"]) == (2, 4, 2)
    assert summary["extended"] == 1
    by_outcome = {t["outcome"]: t for t in body["tasks"]}
    assert by_outcome["complete"]["confidence"] == pytest.approx(0.9)
    assert by_outcome["extend"]["confidence"] == pytest.approx(0.5)
    assert by_outcome["extend"]["allowance"] == 3
    assert by_outcome["extend"]["reason"].startswith("One more rater (3 of at most 4)")


def test_raters_see_nothing_of_the_consensus(project, labeler, api_as):
    project.dynamic_overlap, project.overlap = True, 1
    project.save()
    prompt = PromptFactory(project=project)
    task_create(
        project=project,
        prompt=prompt,
        completions=[CompletionFactory(prompt=prompt) for _ in range(4)],
    )
    lease = api_as(labeler).post(f"/api/projects/{project.pk}/assignments/next/").json()
    assert set(lease) == {
        "assignment_id",
        "task_id",
        "kind",
        "prompt",
        "completions",
        "lease_expires_at",
        "status",
    }
    projects = api_as(labeler).get("/api/projects/").json()
    listed = projects["results"] if isinstance(projects, dict) else projects
    assert not {"dynamic_overlap", "confidence_target", "overlap_max"} & set(listed[0])
