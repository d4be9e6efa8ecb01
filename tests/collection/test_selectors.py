import pytest

from apps.collection.leasing import assignment_next
from apps.collection.selectors import assignment_view, projects_for_user, rater_progress
from apps.collection.services import judgment_submit, membership_add
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def test_reviewers_and_researchers_see_the_projects_they_hold_a_role_in():
    reviewer = UserFactory(roles=[Role.REVIEWER])
    researcher = UserFactory(roles=[Role.RESEARCHER])
    reviewed = ProjectFactory(name="A", open_to_all_labelers=False)
    closed = ProjectFactory(name="B", is_active=False)
    ProjectFactory(name="C")
    membership_add(project=reviewed, user=reviewer, role=Role.REVIEWER)
    membership_add(project=closed, user=researcher, role=Role.RESEARCHER)
    assert [(p.name, p.roles) for p in projects_for_user(user=reviewer)] == [("A", ["reviewer"])]
    assert [(p.name, p.roles) for p in projects_for_user(user=researcher)] == [
        ("B", ["researcher"])
    ]


def test_staff_see_every_project_in_every_role():
    ProjectFactory(name="A", is_active=False)
    ProjectFactory(name="B", open_to_all_labelers=False)
    staff = UserFactory(roles=[], is_staff=True)
    assert [(p.name, p.roles) for p in projects_for_user(user=staff)] == [
        ("A", ["reviewer", "researcher"]),
        ("B", ["labeler", "reviewer", "researcher"]),
    ]


def test_a_user_without_a_role_sees_nothing():
    ProjectFactory()
    assert projects_for_user(user=UserFactory(roles=[])) == []


def test_rater_progress_counts_done_and_left(project, labeler):
    for _ in range(3):
        make_task(project)
    make_task(project, is_gold=True, gold_ranking="canonical")
    lease = assignment_next(project=project, rater=labeler)
    judgment_submit(
        assignment_id=lease.pk,
        rater=labeler,
        client_key="7f0c1b8e-7d0e-4d4c-9d7b-3c3b1f0e0a01",
        ranking=[lease.display_order],
    )
    assert rater_progress(project=project, rater=labeler) == {
        "done_today": 1,
        "done_total": 1,
        "tasks_left": 2,
    }
    other = UserFactory(roles=[Role.LABELER])
    assert rater_progress(project=project, rater=other)["tasks_left"] == 3
    # A task whose slots are all held by others is not "left" for anyone else.
    project.tasks.filter(is_gold=False).update(overlap=1)
    assert rater_progress(project=project, rater=other)["tasks_left"] == 2


def test_assignment_view_follows_the_display_order(project, labeler):
    make_task(project, k=5)
    lease = assignment_next(project=project, rater=labeler)
    view = assignment_view(assignment=lease)
    assert [c["id"] for c in view["completions"]] == lease.display_order
    assert all(c["text"].startswith("Answer") for c in view["completions"])
