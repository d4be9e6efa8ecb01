"""The admin an operator works in: every list, search and change page answers."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.collection.leasing import assignment_next
from apps.collection.models import Assignment, Judgment, ProjectMembership
from apps.collection.services import judgment_submit
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db

MODELS = [
    "project",
    "prompt",
    "policyversion",
    "completion",
    "task",
    "assignment",
    "judgment",
    "demonstration",
    "projectmembership",
]


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(admin)
    return client


@pytest.fixture
def judgment(project, labeler):
    make_task(project)
    lease = assignment_next(project=project, rater=labeler)
    judgment, _ = judgment_submit(
        assignment_id=lease.pk,
        rater=labeler,
        client_key=uuid.uuid4(),
        ranking=[lease.display_order],
    )
    return judgment


@pytest.mark.parametrize("model", MODELS)
def test_changelists_search_and_filter(admin_client, judgment, model):
    url = reverse(f"admin:collection_{model}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "Answer"}).status_code == 200


def test_judgment_change_page_edits_only_the_review(admin_client, judgment):
    url = reverse("admin:collection_judgment_change", args=[judgment.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert set(form.fields) == {"review_status", "review_reason"}
    response = admin_client.post(url, {"review_status": "rejected", "review_reason": "Spam"})
    assert response.status_code == 302
    judgment.refresh_from_db()
    assert judgment.review_status == "rejected" and judgment.reviewed_by.username == "root"
    assert judgment.ranking and Judgment.objects.count() == 1


def test_judgments_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:collection_judgment_add")).status_code == 403


def project_form_data(admin_client, project, memberships=()) -> dict:
    """The project's change form as the admin shows it, with `memberships` as the inline's
    rows ((id or "", user id, role, delete))."""
    url = reverse("admin:collection_project_change", args=[project.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["flag_set"] = json.dumps(project.flag_set)
    data["task_kinds"] = json.dumps(project.task_kinds)
    prefix = "memberships"
    existing = [row for row in memberships if row[0]]
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": str(len(memberships)),
            f"{prefix}-INITIAL_FORMS": str(len(existing)),
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
    )
    for i, (pk, user_id, role, delete) in enumerate(memberships):
        data.update({f"{prefix}-{i}-id": pk, f"{prefix}-{i}-project": project.pk})
        data.update({f"{prefix}-{i}-user": user_id, f"{prefix}-{i}-role": role})
        if delete:
            data[f"{prefix}-{i}-DELETE"] = "on"
    return data


def test_changing_guidelines_in_the_admin_bumps_their_version(admin_client, project):
    url = reverse("admin:collection_project_change", args=[project.pk])
    data = project_form_data(admin_client, project)
    data.update(guidelines="New rules", flag_set='[{"key": "x", "label": "X"}]')
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    project.refresh_from_db()
    assert project.guidelines_version == 2 and project.guidelines == "New rules"


def test_members_are_added_and_removed_in_the_admin_and_removal_ends_leases(admin_client):
    project = ProjectFactory(open_to_all_labelers=False)
    rater = UserFactory(roles=[Role.LABELER])
    url = reverse("admin:collection_project_change", args=[project.pk])
    data = project_form_data(admin_client, project, [("", rater.pk, "labeler", False)])
    assert admin_client.post(url, data).status_code == 302
    membership = ProjectMembership.objects.get(project=project, user=rater)
    assert membership.role == "labeler" and membership.added_by.username == "root"

    task = make_task(project)
    lease = assignment_next(project=project, rater=rater)
    assert lease.task_id == task.pk
    data = project_form_data(admin_client, project, [(membership.pk, rater.pk, "labeler", True)])
    assert admin_client.post(url, data).status_code == 302
    assert not ProjectMembership.objects.filter(project=project).exists()
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.RELEASED
    assert lease.release_reason == f"you are no longer a labeler of {project.name}"


def test_closing_a_project_in_the_admin_ends_its_leases(admin_client, project, labeler):
    make_task(project)
    lease = assignment_next(project=project, rater=labeler)
    url = reverse("admin:collection_project_change", args=[project.pk])
    data = project_form_data(admin_client, project)
    data.pop("is_active")  # an unticked box is absent from the form
    response = admin_client.post(url, data, follow=True)
    assert response.status_code == 200
    assert "1 live leases in" in response.content.decode()
    lease.refresh_from_db()
    project.refresh_from_db()
    assert not project.is_active and lease.status == Assignment.Status.RELEASED
