"""The nouns of collection: projects, prompts, policies, completions, tasks, leases, answers."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.collection.flags import default_flags
from apps.core.models import TimeStampedModel
from apps.core.roles import ROLE_CHOICES

MIN_K, MAX_K = 2, 9
MAX_DYNAMIC_OVERLAP = 15
TASK_KINDS = ("ranking", "demonstration", "evaluation")


def default_task_kinds() -> list[str]:
    return list(TASK_KINDS)


LIKERT_MIN, LIKERT_MAX = 1, 7


class Category(models.TextChoices):
    """InstructGPT's use-case categories (Ouyang et al. 2022, table 1)."""

    GENERATION = "generation", "Generation"
    OPEN_QA = "open_qa", "Open QA"
    BRAINSTORMING = "brainstorming", "Brainstorming"
    CHAT = "chat", "Chat"
    REWRITE = "rewrite", "Rewrite"
    SUMMARIZATION = "summarization", "Summarization"
    CLASSIFICATION = "classification", "Classification"
    CLOSED_QA = "closed_qa", "Closed QA"
    EXTRACTION = "extraction", "Extraction"
    OTHER = "other", "Other"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALID = "valid", "Validation"
    TEST = "test", "Test"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Project(TimeStampedModel):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to raters.")
    guidelines_version = models.PositiveIntegerField(
        default=1, help_text="Raised whenever the guidelines change; stored with each judgment."
    )
    k = models.PositiveSmallIntegerField(
        "completions per ranking task (K)",
        default=4,
        validators=[MinValueValidator(MIN_K), MaxValueValidator(MAX_K)],
    )
    overlap = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="Distinct raters per task (with dynamic overlap: the number it starts with).",
    )
    # Dynamic overlap (docs/adaptive-collection.md): a ranking task starts with `overlap`
    # raters; once their judgments are in, the reliability-weighted consensus decides
    # whether it is sure enough of the order or gets one more rater, up to overlap_max.
    dynamic_overlap = models.BooleanField(
        default=False,
        help_text="Add raters to a ranking task only while the consensus is unsure of it.",
    )
    overlap_max = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DYNAMIC_OVERLAP)],
        help_text="Dynamic overlap: the most raters a task may get.",
    )
    confidence_target = models.FloatField(
        default=0.9,
        validators=[MinValueValidator(0.5), MaxValueValidator(0.999)],
        help_text="Dynamic overlap: a task is complete once the consensus is this sure of "
        "every adjacent pair of its order (posterior probability).",
    )
    lease_seconds = models.PositiveIntegerField(
        default=900, validators=[MinValueValidator(10)], help_text="How long a rater holds a task."
    )
    flag_set = models.JSONField(
        default=default_flags, help_text='List of {"key", "label"} flags raters may set.'
    )
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of regular work served from gold (known-answer) tasks.",
    )
    likert_enabled = models.BooleanField(default=True)
    rationale_max_length = models.PositiveIntegerField(default=2000)
    task_kinds = models.JSONField(
        default=default_task_kinds,
        help_text="Kinds of task the project makes: ranking (from rounds and preference "
        "uploads), demonstration (one per uploaded train prompt), evaluation (a round's A/B).",
    )
    is_active = models.BooleanField(default=True)
    open_to_all_labelers = models.BooleanField(
        default=True,
        help_text="Every holder of the labeler role may work on it; otherwise only its labeler "
        "members.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(k__gte=MIN_K) & Q(k__lte=MAX_K), name="project_k_between_2_and_9"
            ),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"
            ),
            models.CheckConstraint(
                condition=Q(confidence_target__gte=0.5) & Q(confidence_target__lt=1),
                name="project_confidence_target_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.dynamic_overlap and self.overlap_max < self.overlap:
            raise ValidationError(
                {"overlap_max": "Cannot be below the overlap a task starts with."}
            )

    @property
    def flag_keys(self) -> list[str]:
        return [flag["key"] for flag in self.flag_set]


class ProjectMembership(TimeStampedModel):
    """A user's role in one project: what they may see and do there (SECURITY.md).

    A user may hold several roles in one project (one row each). Staff hold every role in
    every project without rows; apps/collection/access.py answers who may do what.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.CharField(max_length=12, choices=ROLE_CHOICES)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user", "role"], name="membership_once_per_role"
            ),
        ]
        indexes = [models.Index(fields=["user", "role"], name="membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.project}"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Prompt(TimeStampedModel):
    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported"
        LABELER = "labeler", "Written by a labeler"
        API = "api", "API"
        DEMO = "demo", "Demo content"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64, editable=False)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.OTHER)
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.TRAIN)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.IMPORTED)
    external_id = models.CharField(max_length=200, blank=True)
    reference = models.TextField(blank=True, help_text="A reference answer, for automatic metrics.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "text_sha256"], name="prompt_unique_text"),
        ]
        indexes = [models.Index(fields=["project", "split", "category"])]

    def save(self, *args, **kwargs) -> None:
        self.text_sha256 = text_digest(self.text)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.text[:80]


class PolicyVersion(TimeStampedModel):
    class Kind(models.TextChoices):
        BASE = "base", "Base"
        SFT = "sft", "Supervised fine-tuned"
        PPO = "ppo", "PPO"
        EXTERNAL = "external", "External"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BASE)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    round_number = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="policy_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Completion(TimeStampedModel):
    class Source(models.TextChoices):
        POLICY = "policy", "Sampled from a policy"
        DEMONSTRATION = "demonstration", "Human demonstration"
        IMPORTED = "imported", "Imported"
        PLACEHOLDER = "placeholder", "Placeholder (not model output)"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="completions")
    text = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="completions"
    )
    sampling_params = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    round_number = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.text[:80]


class Task(TimeStampedModel):
    class Kind(models.TextChoices):
        RANKING = "ranking", "Ranking"
        DEMONSTRATION = "demonstration", "Demonstration"
        EVALUATION = "evaluation", "A/B evaluation"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        CLOSED = "closed", "Closed (its round was cancelled)"
        ARCHIVED = "archived", "Archived"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RANKING)
    completions = models.ManyToManyField(
        Completion, through="TaskCompletion", related_name="tasks", blank=True
    )
    overlap = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1)],
        help_text="Raters the task is open to now (with dynamic overlap it may grow).",
    )
    max_overlap = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Dynamic overlap: the most raters it may get; empty: fixed at overlap.",
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher is served first.")
    is_gold = models.BooleanField(default=False)
    gold_ranking = models.JSONField(
        null=True, blank=True, help_text="Best-first groups of completion ids (gold tasks)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    round_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="task_overlap_positive"),
            models.CheckConstraint(
                condition=Q(max_overlap__isnull=True) | Q(max_overlap__gte=F("overlap")),
                name="task_overlap_within_max",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "status", "is_gold", "-priority", "id"], name="task_queue_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} task {self.pk}"


class TaskCompletion(models.Model):
    """A completion's place in a task, in canonical (not display) order."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="task_completions")
    completion = models.ForeignKey(Completion, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["task", "completion"], name="task_completion_unique"),
            models.UniqueConstraint(fields=["task", "position"], name="task_position_unique"),
        ]

    def __str__(self) -> str:
        return f"completion {self.completion_id} at {self.position} in task {self.task_id}"


class Assignment(models.Model):
    """A lease of one task to one rater. Live while LEASED and not yet expired."""

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        RELEASED = "released", "Withdrawn (suspension, membership or project closed)"

    # No single-column indexes on the two keys: the composite indexes below lead with them,
    # and every lease and answer would pay for two more index entries.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    display_order = models.JSONField(
        default=list, help_text="Completion ids in the order this rater was shown them."
    )
    skip_reason = models.TextField(blank=True)
    release_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the lease was withdrawn (status released)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="assignment_once_per_rater"),
        ]
        indexes = [
            models.Index(fields=["task", "status", "expires_at"], name="assignment_slot_idx"),
            models.Index(fields=["rater", "status", "expires_at"], name="assignment_rater_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} of task {self.task_id} to {self.rater_id}"

    def is_live(self, now=None) -> bool:
        return self.status == self.Status.LEASED and self.expires_at > (now or timezone.now())

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.LEASED and self.expires_at <= timezone.now()


class ReviewedModel(TimeStampedModel):
    review_status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.TextField(blank=True)

    class Meta:
        abstract = True


class Judgment(ReviewedModel):
    """One rater's answer to a ranking or evaluation task."""

    class Source(models.TextChoices):
        HUMAN = "human", "Rater"
        IMPORTED = "imported", "Imported"

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, null=True, blank=True, related_name="judgment"
    )
    # Indexed by judgment_task_idx and judgment_rater_idx, which lead with these keys.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="judgments", db_index=False
    )
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="judgments",
        db_index=False,
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HUMAN)
    ranking = models.JSONField(help_text="Best-first groups of completion ids; a group is a tie.")
    likert = models.JSONField(default=dict, blank=True)
    flags = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True)
    both_bad = models.BooleanField(default=False, help_text="A/B evaluation: neither is good.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    display_order = models.JSONField(default=list)
    guidelines_version = models.PositiveIntegerField(null=True, blank=True)
    client_key = models.UUIDField(null=True, blank=True, unique=True)

    class Meta:
        indexes = [
            models.Index(fields=["task", "review_status"], name="judgment_task_idx"),
            models.Index(fields=["rater", "created_at"], name="judgment_rater_idx"),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} on task {self.task_id}"


class Demonstration(ReviewedModel):
    """An ideal answer written by a rater for a prompt."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, null=True, blank=True, related_name="demonstration"
    )
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, null=True, blank=True, related_name="demonstrations"
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demonstrations")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="demonstrations",
    )
    text = models.TextField()
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    client_key = models.UUIDField(null=True, blank=True, unique=True)

    def __str__(self) -> str:
        return f"demonstration {self.pk} for prompt {self.prompt_id}"


class ImportJob(TimeStampedModel):
    """An uploaded file imported by a worker, with its progress and its report.

    Small files are imported while the upload waits; larger ones become a job
    (apps/collection/uploads.py). The file sits under ARTIFACT_ROOT with a name the server
    chose, and is deleted when the job ends.
    """

    class Kind(models.TextChoices):
        PROMPTS = "prompts", "Prompts"
        PREFERENCES = "preferences", "Preference data"
        GOLD = "gold", "Gold items"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    format = models.CharField(max_length=12)
    file_name = models.CharField(max_length=255, help_text="As uploaded, for people to read.")
    stored_path = models.CharField(max_length=500, help_text="Relative to ARTIFACT_ROOT.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=20, blank=True, help_text="reading, storing")
    lines_read = models.PositiveIntegerField(default=0)
    lines_total = models.PositiveIntegerField(default=0, help_text="0 until counted.")
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.pk} into {self.project_id}: {self.status}"

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
