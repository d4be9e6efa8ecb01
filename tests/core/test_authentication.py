"""Token authentication: the token, its user and the user's roles come from one statement."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.tokens import api_token_create
from apps.core.roles import Role, user_roles
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_roles_are_read_with_the_user_in_one_statement():
    from apps.core.authentication import TokenAuthentication

    user = UserFactory(roles=[Role.LABELER, Role.REVIEWER])
    key = api_token_create(user=user)
    with CaptureQueriesContext(connection) as queries:
        found, auth = TokenAuthentication().authenticate_credentials(key)
        roles = user_roles(found)
    assert len(queries) == 1
    assert found.pk == user.pk and found.username == user.username and auth.prefix == key[:8]
    assert roles == {Role.LABELER, Role.REVIEWER}
    assert found.date_joined == user.date_joined  # converted like the ORM does (aware datetime)


def test_a_user_without_groups_authenticates_with_no_roles():
    user = UserFactory(roles=[])
    key = api_token_create(user=user)
    response = client_with(key).get("/api/projects/")
    assert response.status_code == 200 and response.json() == []


def test_a_labeler_token_reaches_the_labeler_api():
    ProjectFactory()
    key = api_token_create(user=UserFactory(roles=[Role.LABELER]))
    assert len(client_with(key).get("/api/projects/").json()) == 1


def test_an_unknown_token_is_401():
    response = client_with("0" * 40).get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_an_inactive_users_token_is_401():
    user = UserFactory(roles=[Role.LABELER])
    key = api_token_create(user=user)
    user.is_active = False
    user.save()
    response = client_with(key).get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."
