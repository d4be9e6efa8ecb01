from __future__ import annotations

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def labeler(db):
    return UserFactory(roles=[Role.LABELER])


@pytest.fixture
def other_labeler(db):
    return UserFactory(roles=[Role.LABELER])


@pytest.fixture
def reviewer(db):
    return UserFactory(roles=[Role.REVIEWER])


@pytest.fixture
def researcher(db):
    return UserFactory(roles=[Role.RESEARCHER])


def api_client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_as():
    """`api_as(user)` → an APIClient authenticated with that user's token."""
    return api_client_for


@pytest.fixture
def client_key():
    return str(uuid.uuid4())


pytest_plugins = ["tests.browser"]
