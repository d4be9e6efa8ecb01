"""Rater profiles: a pseudonym for exports and a standing that gates work."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

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
