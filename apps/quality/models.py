"""Rater quality: per-project settings, screening state, audit trails, stored statistics."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.collection.models import Judgment, Project, ReviewStatus, Task
from apps.core.models import TimeStampedModel


class ProjectQualitySettings(TimeStampedModel):
    """How a project screens new raters and when the statistics flag one.

    A project without this row (or with `screening_size` 0) screens nobody.
    """

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="quality_settings"
    )
    screening_size = models.PositiveSmallIntegerField(
        default=0,
        help_text="Gold tasks a new rater answers before regular work; 0 turns screening off.",
    )
    screening_threshold = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of the gold answers' pairwise comparisons a rater must match to pass.",
    )
    min_judgments_for_flags = models.PositiveIntegerField(
        default=10,
        help_text="Judgments a rater needs before a measure flags them; with fewer, only an "
        "agreement whose whole 95% interval lies below the honest raters' range flags them.",
    )
    stats_max_age_seconds = models.PositiveIntegerField(
        default=120,
        validators=[MinValueValidator(10), MaxValueValidator(86_400)],
        help_text="The reviewer pages never show statistics older than this without saying so: "
        "opening one queues a refresh when the figures are older.",
    )
    refresh_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a page last queued a refresh (one at a time)."
    )

    class Meta:
        verbose_name_plural = "project quality settings"

    def __str__(self) -> str:
        return f"quality settings of {self.project}"


class RaterScreening(TimeStampedModel):
    """Where one rater stands in one project's screening."""

    class State(models.TextChoices):
        SCREENING = "screening", "In screening"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        WAIVED = "waived", "Waived (worked here before screening began)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="screenings")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="screenings"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.SCREENING)
    gold_answered = models.PositiveIntegerField(default=0)
    gold_accuracy = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why the state is what it is (for reviewers).")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The reviewer who overrode the outcome, if one did.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "rater"], name="screening_once_per_rater"),
        ]

    def __str__(self) -> str:
        return f"{self.rater} in {self.project}: {self.state}"


class ReviewDecision(models.Model):
    """Audit: one reviewer's approve/reject of one judgment, and why."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason = models.TextField(blank=True)
    previous_status = models.CharField(max_length=10, choices=ReviewStatus.choices)
    bulk = models.BooleanField(default=False, help_text="Part of a bulk decision.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.decision} judgment {self.judgment_id} by {self.reviewer_id}"


class RaterStatusChange(models.Model):
    """Audit: a rater suspended or reinstated, by whom, why, and what it did."""

    class Action(models.TextChoices):
        SUSPEND = "suspend", "Suspend"
        REINSTATE = "reinstate", "Reinstate"

    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="status_changes"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField()
    leases_released = models.PositiveIntegerField(default=0)
    judgments_rejected = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.rater_id} by {self.actor_id}"


class QualitySnapshot(models.Model):
    """A project's statistics as computed at one moment; pages show the latest one.

    `data` is `statistics.compute_quality`'s output: {"project": {...}, "raters": [...]}.
    A full refresh reads every judgment; an incremental one only those added or reviewed
    since the refresh whose state it continues (`statistics.QualityState`).
    """

    class Mode(models.TextChoices):
        FULL = "full", "Full recompute"
        INCREMENTAL = "incremental", "Incremental"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_snapshots")
    computed_at = models.DateTimeField(db_index=True)
    read_seconds = models.FloatField(help_text="Reading the judgments from the database.")
    compute_seconds = models.FloatField(help_text="Computing the statistics.")
    judgments = models.PositiveIntegerField()
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    judgments_read = models.PositiveIntegerField(
        default=0, help_text="Judgments read: all of them (full), or the new and re-reviewed."
    )
    state_token = models.CharField(
        max_length=32,
        blank=True,
        help_text="Names the saved state an incremental refresh continues.",
    )
    data = models.JSONField()

    class Meta:
        ordering = ["-computed_at", "-pk"]
        indexes = [models.Index(fields=["project", "-computed_at"], name="snapshot_latest_idx")]

    def __str__(self) -> str:
        return f"quality of {self.project_id} at {self.computed_at:%Y-%m-%d %H:%M}"


class RaterReliability(models.Model):
    """A rater's consensus weight in a project, kept in a small table for quick reads.

    Written with every statistics refresh (`services.quality_snapshot_refresh`) from the
    snapshot's weights; dynamic overlap reads it on the submit that fills a task's allowance.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    weight = models.FloatField(
        help_text=(
            "Vote weight log(a / (1 − a)) of the rater's accuracy a, from their one-coin skill "
            "against every co-rater (measures.skill_reliability); a clipped to [0.5, 0.98], so ≥ 0."
        )
    )
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "rater"], name="reliability_once_per_rater"),
        ]

    def __str__(self) -> str:
        return f"{self.rater_id} in {self.project_id}: {self.weight:.2f}"


class OverlapDecision(models.Model):
    """Dynamic overlap: what the consensus decided when a task's allowance filled, and why.

    One row per decision, so every extra slot a task got has its reason. Reviewers see these;
    raters never do (nothing of the consensus reaches a rater).
    """

    class Outcome(models.TextChoices):
        COMPLETE = "complete", "Complete: confident"
        EXTEND = "extend", "One more rater"
        LIMIT = "limit", "Complete: maximum overlap reached"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="overlap_decisions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    judgments = models.PositiveSmallIntegerField(help_text="Judgments in when it was decided.")
    confidence = models.FloatField(help_text="Posterior of the consensus's weakest adjacent pair.")
    target = models.FloatField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    order = models.JSONField(default=list, help_text="The consensus order, best first.")
    reason = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["project", "task", "-created_at"], name="overlap_latest_idx")
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} at {self.judgments}: {self.outcome}"
