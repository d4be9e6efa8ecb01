"""API tokens: made at login, found by their digest, expired when idle, revoked by deletion."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.accounts.models import ApiToken

#: A token's last use is written at most this often (not on every request of the hot path).
TOUCH_SECONDS = 60


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def api_token_create(*, user) -> str:
    """A new token for `user`; returns its key (shown once, never stored). The user's tokens
    that have expired are deleted on the way."""
    api_tokens_expired(user=user).delete()
    key = secrets.token_hex(20)
    ApiToken.objects.create(digest=token_digest(key), user=user, prefix=key[:8])
    return key


def api_token_revoke(*, key: str) -> bool:
    """Delete the token with this key; whether there was one."""
    deleted, _ = ApiToken.objects.filter(digest=token_digest(key)).delete()
    return bool(deleted)


def api_tokens_revoke_all(*, user) -> int:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return deleted


def api_tokens_expired(*, user=None):
    tokens = ApiToken.objects.filter(last_used_at__lt=timezone.now() - idle_limit())
    return tokens.filter(user=user) if user is not None else tokens


def idle_limit() -> timedelta:
    return timedelta(seconds=settings.API_TOKEN_IDLE_SECONDS)


def is_expired(last_used_at: datetime, now: datetime) -> bool:
    return now - last_used_at > idle_limit()


def needs_touch(last_used_at: datetime, now: datetime) -> bool:
    return now - last_used_at > timedelta(seconds=TOUCH_SECONDS)
