"""Logging in resists guessing; tokens expire when idle and can be revoked."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import throttling
from apps.accounts.models import ApiToken
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-secret-123"  # tests/factories.py


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURE_WINDOW = 600
    return settings


def token_login(username: str, password: str, address: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_each_login_makes_its_own_token_stored_only_as_a_digest(labeler):
    first, second = token_login(labeler.username, PASSWORD), token_login(labeler.username, PASSWORD)
    assert first.status_code == second.status_code == 200
    keys = {first.json()["token"], second.json()["token"]}
    assert len(keys) == 2 and first.json()["idle_expiry_seconds"] == 7 * 24 * 3600
    stored = set(ApiToken.objects.filter(user=labeler).values_list("digest", flat=True))
    assert len(stored) == 2 and not stored & keys


def test_wrong_passwords_then_the_right_one_is_429_with_retry_after(labeler, limits):
    for _ in range(3):
        response = token_login(labeler.username, "wrong")
        assert response.status_code == 400 and response.json()["code"] == "invalid"
    locked = token_login(labeler.username, PASSWORD)
    assert locked.status_code == 429
    assert (
        locked.json()["code"] == "throttled"
        and "try again in 10 minutes" in locked.json()["detail"]
    )
    assert 590 <= int(locked["Retry-After"]) <= 600
    # The lock is on the username: from another address too, but not for another user.
    assert token_login(labeler.username, PASSWORD, address="10.9.9.9").status_code == 429
    other = UserFactory(roles=[Role.LABELER])
    assert token_login(other.username, PASSWORD, address="10.9.9.9").status_code == 200
    assert not ApiToken.objects.filter(user=labeler).exists()


def test_one_address_guessing_many_usernames_is_locked_out(labeler, limits):
    for i in range(5):
        assert token_login(f"guess{i}", "wrong").status_code == 400
    assert token_login(labeler.username, PASSWORD).status_code == 429
    assert token_login(labeler.username, PASSWORD, address="10.0.0.2").status_code == 200


def test_the_window_ends_and_a_success_clears_the_usernames_count(labeler, limits):
    for _ in range(2):
        token_login(labeler.username, "wrong")
    assert token_login(labeler.username, PASSWORD).status_code == 200
    for _ in range(2):
        token_login(labeler.username, "wrong", address="10.0.0.3")
    assert token_login(labeler.username, PASSWORD).status_code == 200  # 2 < 3 again
    limits.LOGIN_FAILURE_WINDOW = 1
    for _ in range(3):
        token_login(labeler.username, "wrong", address="10.0.0.4")
    wait = throttling.login_wait_seconds(username=labeler.username, address="10.0.0.4")
    assert wait == 1


def test_the_login_page_is_throttled_too(client, labeler, limits):
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": labeler.username, "password": "x"})
        assert response.status_code == 200  # the form again, with its error
    locked = client.post("/accounts/login/", {"username": labeler.username, "password": PASSWORD})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_admin_login_is_throttled_too(client, limits):
    admin = UserFactory(roles=[], is_staff=True, is_superuser=True)
    for _ in range(3):
        client.post("/admin/login/", {"username": admin.username, "password": "x"})
    locked = client.post("/admin/login/", {"username": admin.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL", "redis://"), reason="needs Redis")
def test_the_counts_live_in_redis_in_production(labeler, limits):
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
    }
    with override_settings(CACHES={"default": redis_cache}):
        try:
            for _ in range(3):
                token_login(labeler.username, "wrong")
            assert token_login(labeler.username, PASSWORD).status_code == 429
            key = "login-failures:addr:10.0.0.1"
            assert caches["default"].get(key) == 3
        finally:
            throttling.login_succeeded(username=labeler.username)
            caches["default"].delete_many(["login-failures:addr:10.0.0.1"])
            caches["default"].delete_many(["login-failures:addr:10.0.0.1:until"])


# --- tokens --------------------------------------------------------------------------------


def authed(key: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {key}")


def test_logout_revokes_the_callers_token_only(labeler):
    ProjectFactory()
    first = token_login(labeler.username, PASSWORD).json()["token"]
    second = token_login(labeler.username, PASSWORD).json()["token"]
    assert authed(first).post("/api/auth/logout/").status_code == 204
    refused = authed(first).get("/api/projects/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    assert authed(second).get("/api/projects/").status_code == 200


def test_a_token_idle_longer_than_the_limit_expires_and_is_deleted(labeler, settings):
    settings.API_TOKEN_IDLE_SECONDS = 3600
    key = token_login(labeler.username, PASSWORD).json()["token"]
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(seconds=3601))
    response = authed(key).get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Token expired after being idle; log in again."
    assert not ApiToken.objects.exists()


def test_use_keeps_a_token_alive_writing_at_most_once_a_minute(labeler):
    key = token_login(labeler.username, PASSWORD).json()["token"]
    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.update(last_used_at=recent)
    authed(key).get("/api/projects/")
    assert ApiToken.objects.get().last_used_at == recent
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(hours=1))
    authed(key).get("/api/projects/")
    assert timezone.now() - ApiToken.objects.get().last_used_at < timedelta(seconds=10)


def test_an_admin_revokes_anyones_token_in_the_admin(admin_client, labeler):
    key = token_login(labeler.username, PASSWORD).json()["token"]
    token = ApiToken.objects.get()
    response = admin_client.post(
        "/admin/accounts/apitoken/",
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert authed(key).get("/api/projects/").status_code == 401
