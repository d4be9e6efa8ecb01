from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.tokens import api_token_create
from apps.collection.services import membership_add
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def _empty_cache():
    """The login throttle counts in the cache: every test starts with none."""
    cache.clear()


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
def reviewer(db, project):
    """A reviewer of `project` (and of no other)."""
    user = UserFactory(roles=[Role.REVIEWER])
    membership_add(project=project, user=user, role=Role.REVIEWER)
    return user


@pytest.fixture
def researcher(db, project):
    """A researcher of `project` (and of no other)."""
    user = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=user, role=Role.RESEARCHER)
    return user


def api_client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user)}")
    return client


@pytest.fixture
def api_as():
    """`api_as(user)` → an APIClient authenticated with that user's token."""
    return api_client_for


@pytest.fixture
def client_key():
    return str(uuid.uuid4())


pytest_plugins = ["tests.browser"]
