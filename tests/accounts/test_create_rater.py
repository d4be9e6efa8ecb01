from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.accounts.models import RaterProfile
from apps.collection.models import ProjectMembership
from apps.core.roles import Role, user_roles
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_create_rater_with_roles_and_token():
    out = StringIO()
    call_command(
        "create_rater",
        "rita",
        "--role",
        "labeler",
        "--role",
        "reviewer",
        "--password",
        "a-long-password",
        "--token",
        stdout=out,
    )
    user = get_user_model().objects.get(username="rita")
    assert user.check_password("a-long-password")
    assert user_roles(user) == {Role.LABELER, Role.REVIEWER}
    assert RaterProfile.objects.get(user=user).pseudonym.startswith("rater-")
    key = out.getvalue().split("API token: ")[1].strip()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/projects/").status_code == 200


def test_create_rater_refuses_a_taken_username():
    call_command("create_rater", "sam", "--password", "pw-secret-123", stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_rater", "sam", "--password", "pw-secret-123", stdout=StringIO())
    assert get_user_model().objects.filter(username="sam").count() == 1


def test_role_groups_exist_with_permissions():
    from django.contrib.auth.models import Group

    labeler = Group.objects.get(name="labeler")
    assert labeler.permissions.filter(codename="add_judgment").exists()
    reviewer = Group.objects.get(name="reviewer")
    assert reviewer.permissions.filter(codename="change_judgment").exists()
    assert not labeler.permissions.filter(codename="change_judgment").exists()
    assert Group.objects.filter(name="researcher").exists()


@pytest.mark.parametrize(
    ("password", "why"),
    [("short1", "too short"), ("password123", "too common"), ("8234567890123", "entirely numeric")],
)
def test_create_rater_runs_the_password_validators(password, why):
    with pytest.raises(CommandError, match=why):
        call_command("create_rater", "weak", "--password", password, stdout=StringIO())
    assert not get_user_model().objects.filter(username="weak").exists()


def test_create_rater_gives_the_roles_in_the_projects_named():
    project = ProjectFactory(slug="summaries")
    out = StringIO()
    call_command(
        "create_rater",
        "rev",
        "--role",
        "reviewer",
        "--project",
        "summaries",
        "--password",
        "a-long-password",
        stdout=out,
    )
    assert "in summaries" in out.getvalue()
    membership = ProjectMembership.objects.get(user__username="rev")
    assert (membership.project, membership.role) == (project, "reviewer")
