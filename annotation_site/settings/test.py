"""Test settings: the real PostgreSQL and Redis on 127.0.0.1 unless told otherwise."""

import os

import dj_database_url

from .base import *  # noqa: F403
from .base import BROKER_VISIBILITY_TIMEOUT, VAR_DIR, postgres_options

SECRET_KEY = "prefloop-test-key"
DEBUG = False
DATABASES = {
    "default": postgres_options(
        dj_database_url.parse(
            os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        )
    )
}
# Several suites may run side by side on one server: each names its own test database.
DATABASES["default"]["TEST"] = {
    "NAME": "test_prefloop" + os.environ.get("PREFLOOP_TEST_DB_SUFFIX", "")
}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
CELERY_TASK_ALWAYS_EAGER = False
# The login throttle's counts: one process's memory, emptied before every test (conftest);
# tests/accounts/test_throttling.py runs it on Redis too.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ARTIFACT_ROOT = VAR_DIR / "test-artifacts"
