"""One role check for every page (apps/core/pages.py): login, 403, and domain errors as 404."""

from __future__ import annotations

import pytest

from apps.core.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MISSING = 987_654

PAGES = {
    Role.LABELER: f"/projects/{MISSING}/work/",
    Role.REVIEWER: f"/review/projects/{MISSING}/",
    Role.RESEARCHER: f"/research/projects/{MISSING}/lineage/",
}


@pytest.mark.parametrize("role", list(PAGES))
def test_anonymous_users_are_sent_to_the_login_page_and_back(client, role):
    response = client.get(PAGES[role])
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={PAGES[role]}"


@pytest.mark.parametrize("role", list(PAGES))
def test_users_without_the_role_get_403(client, role):
    others = [r for r in Role if r != role]
    client.force_login(UserFactory(roles=others))
    assert client.get(PAGES[role]).status_code == 403


@pytest.mark.parametrize("role", list(PAGES))
def test_a_missing_project_is_a_404_page_not_a_500(client, role):
    # the page's selector raises NotFound; role_required answers it as a 404 page
    client.force_login(UserFactory(roles=[role]))
    response = client.get(PAGES[role])
    assert response.status_code == 404
