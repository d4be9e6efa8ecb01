"""Project memberships: who may act on which project, and what removing one ends."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.collection import access
from apps.collection.leasing import assignment_next
from apps.collection.models import Assignment, ProjectMembership
from apps.collection.selectors import project_get
from apps.collection.services import (
    judgment_submit,
    membership_add,
    membership_remove,
    project_active_set,
)
from apps.core.errors import Conflict, NotFound
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def names(projects) -> list[str]:
    return [project.name for project in projects]


def test_labelers_reach_open_projects_through_the_group_and_closed_ones_by_membership():
    open_project = ProjectFactory(name="A open")
    closed = ProjectFactory(name="B closed", open_to_all_labelers=False)
    joined = ProjectFactory(name="C joined", open_to_all_labelers=False)
    ProjectFactory(name="D inactive", is_active=False)
    pooled = UserFactory(roles=[Role.LABELER])
    membership_add(project=joined, user=pooled, role=Role.LABELER)
    assert names(access.projects_for(user=pooled, role=Role.LABELER)) == ["A open", "C joined"]
    # A labeler of one project only (no group) sees that project, not the open ones.
    member_only = UserFactory(roles=[])
    membership_add(project=joined, user=member_only, role=Role.LABELER)
    assert names(access.projects_for(user=member_only, role=Role.LABELER)) == ["C joined"]
    # Reviewing a closed project gives no right to label it.
    both = UserFactory(roles=[Role.LABELER, Role.REVIEWER])
    membership_add(project=closed, user=both, role=Role.REVIEWER)
    assert names(access.projects_for(user=both, role=Role.LABELER)) == ["A open"]
    assert names(access.projects_for(user=both, role=Role.REVIEWER)) == ["B closed"]
    assert open_project.pk not in {p.pk for p in access.projects_for(user=both, role="reviewer")}


def test_reviewers_and_researchers_keep_their_projects_after_closing_staff_see_all():
    closed = ProjectFactory(name="A", is_active=False)
    ProjectFactory(name="B")
    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=closed, user=researcher, role=Role.RESEARCHER)
    assert names(access.projects_for(user=researcher, role=Role.RESEARCHER)) == ["A"]
    assert names(access.projects_for(user=researcher, role=Role.REVIEWER)) == []
    staff = UserFactory(roles=[], is_staff=True)
    assert names(access.projects_for(user=staff, role=Role.REVIEWER)) == ["A", "B"]
    assert names(access.projects_for(user=staff, role=Role.LABELER)) == ["B"]


def test_project_get_answers_not_found_out_of_scope():
    mine, theirs = ProjectFactory(), ProjectFactory()
    reviewer = UserFactory(roles=[Role.REVIEWER])
    membership_add(project=mine, user=reviewer, role=Role.REVIEWER)
    assert project_get(user=reviewer, role=Role.REVIEWER, project_id=mine.pk) == mine
    for project_id in (theirs.pk, 10**9):
        with pytest.raises(NotFound):
            project_get(user=reviewer, role=Role.REVIEWER, project_id=project_id)


def test_adding_twice_keeps_one_membership_and_records_who_added_it():
    project, user, admin = ProjectFactory(), UserFactory(roles=[]), UserFactory(is_staff=True)
    first, created = membership_add(project=project, user=user, role="reviewer", added_by=admin)
    again, created_again = membership_add(project=project, user=user, role=Role.REVIEWER)
    assert created and not created_again and first.pk == again.pk
    assert ProjectMembership.objects.get().added_by == admin


def test_removing_a_labeler_ends_their_lease_and_their_answer_gets_409(client_key):
    project = ProjectFactory(name="Closed", open_to_all_labelers=False)
    rater = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=rater, role=Role.LABELER)
    make_task(project)
    lease = assignment_next(project=project, rater=rater)
    assert membership_remove(project=project, user=rater, role=Role.LABELER) == (1, 1)
    with pytest.raises(Conflict) as refused:
        judgment_submit(
            assignment_id=lease.pk,
            rater=rater,
            client_key=client_key,
            ranking=[[cid] for cid in lease.display_order],
        )
    assert refused.value.message == (
        "This task was withdrawn: you are no longer a labeler of Closed."
    )
    assert not lease.task.judgments.exists()


def test_removing_a_membership_leaves_the_lease_of_a_labeler_the_project_is_open_to():
    project = ProjectFactory()
    rater = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=rater, role=Role.LABELER)
    make_task(project)
    lease = assignment_next(project=project, rater=rater)
    assert membership_remove(project=project, user=rater) == (1, 0)
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.LEASED


def test_closing_a_project_ends_every_live_lease_in_it(client_key):
    project, other = ProjectFactory(name="Shut"), ProjectFactory()
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(2)]
    make_task(project)
    make_task(other)
    leases = [assignment_next(project=project, rater=rater) for rater in raters]
    elsewhere = assignment_next(project=other, rater=raters[0])
    assert project_active_set(project=project, active=False) == 2
    assert {a.status for a in Assignment.objects.filter(pk__in=[a.pk for a in leases])} == {
        Assignment.Status.RELEASED
    }
    elsewhere.refresh_from_db()
    assert elsewhere.status == Assignment.Status.LEASED
    with pytest.raises(Conflict, match="the project Shut was closed"):
        judgment_submit(
            assignment_id=leases[0].pk,
            rater=raters[0],
            client_key=client_key,
            ranking=[leases[0].display_order],
        )


def test_a_lease_that_outlived_its_membership_cannot_be_answered(client_key):
    """A lease taken while the removal committed (it missed the withdrawal) is refused at
    submit: the locking statement checks the membership again."""
    project = ProjectFactory(open_to_all_labelers=False)
    rater = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=rater, role=Role.LABELER)
    make_task(project)
    lease = assignment_next(project=project, rater=rater)
    ProjectMembership.objects.filter(user=rater).delete()  # as if the lease came after
    with pytest.raises(Conflict, match="you may no longer work on this project"):
        judgment_submit(
            assignment_id=lease.pk,
            rater=rater,
            client_key=client_key,
            ranking=[lease.display_order],
        )


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_members_and_global_roles_into_memberships():
    """Existing deployments keep working: old members label, holders of the reviewer and
    researcher groups get that role in every project that existed."""
    executor = MigrationExecutor(connection)
    before = [("collection", "0002_drop_indexes_covered_by_composites")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    project_model = old.get_model("collection", "Project")
    user_model, group_model = old.get_model("auth", "User"), old.get_model("auth", "Group")
    project = project_model.objects.create(name="Old", slug=f"old-{uuid.uuid4().hex[:6]}")
    labeler, reviewer = (user_model.objects.create(username=n) for n in ("l-old", "r-old"))
    project.members.add(labeler)
    group_model.objects.get_or_create(name="reviewer")[0].user_set.add(reviewer)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    rows = set(ProjectMembership.objects.values_list("project_id", "user__username", "role"))
    assert rows == {(project.pk, "l-old", "labeler"), (project.pk, "r-old", "reviewer")}


# --- the members API -----------------------------------------------------------------------


def test_researchers_of_a_project_manage_its_members_through_the_api(api_as, project):
    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    rater = UserFactory(username="rhea", roles=[])
    client = api_as(researcher)
    url = f"/api/projects/{project.pk}/members/"
    added = client.post(url, {"username": "rhea", "role": "labeler"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "labeler"
    again = client.post(url, {"username": "rhea", "role": "labeler"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == added.json()["id"]
    assert ProjectMembership.objects.get(user=rater).added_by == researcher
    listed = client.get(url).json()
    assert [(m["username"], m["role"]) for m in listed] == [
        ("rhea", "labeler"),
        (researcher.username, "researcher"),
    ]
    make_task(project)
    lease = assignment_next(project=project, rater=rater)
    project.open_to_all_labelers = False
    project.save()
    removed = client.delete(f"{url}?username=rhea&role=labeler")
    assert removed.status_code == 200
    assert removed.json() == {"removed": 1, "leases_released": 1}
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.RELEASED
    assert client.delete(f"{url}?username=rhea").json() == {"removed": 0, "leases_released": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "nobody", "role": "labeler"}, "username"),
        ({"username": "rhea", "role": "admin"}, "role"),
        ({"role": "labeler"}, "username"),
    ],
)
def test_adding_a_member_refuses_bad_input_and_stores_nothing(
    api_as, researcher, project, body, field
):
    UserFactory(username="rhea", roles=[])
    response = api_as(researcher).post(f"/api/projects/{project.pk}/members/", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not ProjectMembership.objects.exclude(user=researcher).exists()


def test_only_researchers_of_the_project_and_staff_manage_members(api_as, project, reviewer):
    other_researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=ProjectFactory(), user=other_researcher, role=Role.RESEARCHER)
    UserFactory(username="rhea", roles=[])
    url = f"/api/projects/{project.pk}/members/"
    body = {"username": "rhea", "role": "reviewer"}
    for outsider, status in ((reviewer, 403), (other_researcher, 404)):
        assert api_as(outsider).post(url, body, format="json").status_code == status
        assert api_as(outsider).get(url).status_code == status
    assert not ProjectMembership.objects.filter(user__username="rhea").exists()
    staff = UserFactory(roles=[], is_staff=True)
    assert api_as(staff).post(url, body, format="json").status_code == 201
