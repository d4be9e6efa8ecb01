"""The admin an operator works in: every list, search and change page answers."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.collection.leasing import assignment_next
from apps.collection.models import Judgment
from apps.collection.services import judgment_submit
from tests.factories import make_task

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


def test_changing_guidelines_in_the_admin_bumps_their_version(admin_client, project):
    url = reverse("admin:collection_project_change", args=[project.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "members"}
    data.update(guidelines="New rules", flag_set='[{"key": "x", "label": "X"}]')
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    project.refresh_from_db()
    assert project.guidelines_version == 2 and project.guidelines == "New rules"
