"""The closed loop: training rounds, their per-stage runs, and frozen dataset snapshots.

Lineage lives here rather than on PolicyVersion: an SFT or PPO policy is `produced_policy` of
exactly one TrainingRun (a one-to-one, so a re-run can never register it twice); that run
belongs to a round, whose `start_policy` is the parent (of the SFT policy, or of the PPO
policy when the round fine-tuned none; else the SFT policy is) and whose `snapshot` is the
data it learned from.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.collection.models import PolicyVersion, Project
from apps.core.models import TimeStampedModel


class Stage(models.TextChoices):
    SAMPLING = "sampling", "Sampling"
    COLLECTING = "collecting", "Collecting"
    EXPORTING = "exporting", "Exporting"
    SFT = "sft", "Supervised fine-tuning"
    RM = "rm", "Reward model"
    PPO = "ppo", "PPO"
    EVALUATING = "evaluating", "Evaluating"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


#: The stages a round walks through, in order; each is one TrainingRun.
STAGE_ORDER = [
    Stage.SAMPLING,
    Stage.COLLECTING,
    Stage.EXPORTING,
    Stage.SFT,
    Stage.RM,
    Stage.PPO,
    Stage.EVALUATING,
]
#: Model work: run on the `gpu` queue as a `python -m trainer ...` subprocess.
GPU_STAGES = {Stage.SAMPLING, Stage.SFT, Stage.RM, Stage.PPO, Stage.EVALUATING}
ENDED = {Stage.DONE, Stage.FAILED, Stage.CANCELLED}


class DatasetSnapshot(TimeStampedModel):
    """A frozen, hashed export of judgments. Rows are written once and never changed."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="snapshots")
    uid = models.CharField(max_length=32, unique=True, help_text="The id written in manifest.json.")
    path = models.CharField(max_length=500, help_text="Folder, relative to ARTIFACT_ROOT.")
    manifest = models.JSONField()
    manifest_sha256 = models.CharField(max_length=64)
    row_counts = models.JSONField(default=dict)
    data_card = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("A dataset snapshot is immutable; export a new one instead.")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.uid[:8]})"


class TrainingRound(TimeStampedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_rounds")
    number = models.PositiveIntegerField()
    start_policy = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="rounds_started"
    )
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.SAMPLING)
    config = models.JSONField(default=dict)
    message = models.TextField(blank=True, help_text="Why the round ended, or what it waits for.")
    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, null=True, blank=True, related_name="rounds"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_unique_number"),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of {self.project}"

    @property
    def is_ended(self) -> bool:
        return self.stage in ENDED


class TrainingRun(TimeStampedModel):
    """One stage of one round. A retry re-runs the same row (attempt + 1), never a new one."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    round = models.ForeignKey(TrainingRound, on_delete=models.CASCADE, related_name="runs")
    stage = models.CharField(max_length=12, choices=Stage.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    config = models.JSONField(default=dict, help_text="The settings this stage ran with.")
    command = models.JSONField(default=list, blank=True, help_text="The trainer argv, if any.")
    queue = models.CharField(max_length=20, default="default")
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    out_dir = models.CharField(max_length=500, blank=True, help_text="Relative to ARTIFACT_ROOT.")
    log = models.TextField(blank=True, help_text="The last part of the stage's output.")
    error = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Final metrics.")
    artifacts = models.JSONField(default=dict, blank=True, help_text="name → path.")
    produced_policy = models.OneToOneField(
        PolicyVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="produced_by_run",
    )

    class Meta:
        ordering = ["round", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["round", "stage"], name="run_one_per_stage"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_status_idx")]

    def __str__(self) -> str:
        return f"{self.stage} run {self.pk} of round {self.round_id}"


class RunMetric(models.Model):
    """One line of a trainer's metrics.jsonl, streamed in while the subprocess runs."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metric_rows")
    step = models.PositiveIntegerField()
    values = models.JSONField()

    class Meta:
        ordering = ["run", "step"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="metric_unique_step"),
        ]

    def __str__(self) -> str:
        return f"step {self.step} of run {self.run_id}"
