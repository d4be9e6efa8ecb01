"""Production settings are safe by default: `check --deploy` is clean with the documented
environment (production.env.example), and a weak SECRET_KEY stops the start."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def documented_environment() -> dict[str, str]:
    """production.env.example, its blanks (the secrets) filled as its comments say."""
    env = {}
    for line in (ROOT / "production.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    assert env["SECRET_KEY"] == "" and env["POSTGRES_PASSWORD"] == "", "no secret in the example"
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DATABASE_URL"] = f"postgres://prefloop:{secrets.token_urlsafe(24)}@postgres:5432/prefloop"
    env["REDIS_URL"] = "redis://redis:6379/0"
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # The test run's own switches (browser tests allow async-unsafe calls) are not production's.
    dropped = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    base.update(PYTHONPATH=str(ROOT), PREFLOOP_VAR_DIR=str(ROOT / "var"))
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--settings=annotation_site.settings.production"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=documented_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("key", ["x", "short-but-not-fifty-characters", "a" * 60])
def test_a_weak_secret_key_is_refused(key):
    result = manage("check", env={**documented_environment(), "SECRET_KEY": key})
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 50 random characters" in result.stderr


def test_compose_has_no_default_password_and_secure_cookies():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD:-" not in compose and "${POSTGRES_PASSWORD:?" in compose
    assert "SECURE_COOKIES: ${SECURE_COOKIES:-true}" in compose
    assert "${SECRET_KEY:?" in compose
