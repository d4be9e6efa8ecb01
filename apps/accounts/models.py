"""Rater profiles: a pseudonym for exports and a standing that gates work."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel


def new_pseudonym() -> str:
    return f"rater-{secrets.token_hex(4)}"


class RaterProfile(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_profile"
    )
    pseudonym = models.CharField(
        max_length=32,
        unique=True,
        default=new_pseudonym,
        help_text="The name that exports and reviewers' statistics use instead of the username.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    def __str__(self) -> str:
        return f"{self.pseudonym} ({self.user})"

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED


class ApiToken(models.Model):
    """A key for `Authorization: Token <key>`. Only the key's SHA-256 is stored (a leaked
    table gives no usable key); the key itself is shown once, when the token is made.

    A token expires after API_TOKEN_IDLE_SECONDS without use, and is revoked by deleting it:
    `POST /api/auth/logout/` for the caller's own, the admin for anyone's.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    prefix = models.CharField(max_length=8, help_text="The key's first characters.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.user}"
