from django.contrib import admin

from apps.quality.models import (
    OverlapDecision,
    ProjectQualitySettings,
    QualitySnapshot,
    RaterScreening,
    RaterStatusChange,
    ReviewDecision,
)


@admin.register(ProjectQualitySettings)
class ProjectQualitySettingsAdmin(admin.ModelAdmin):
    list_display = ["project", "screening_size", "screening_threshold", "min_judgments_for_flags"]


@admin.register(RaterScreening)
class RaterScreeningAdmin(admin.ModelAdmin):
    list_display = ["rater", "project", "state", "gold_answered", "gold_accuracy", "decided_at"]
    list_filter = ["state", "project"]


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(admin.ModelAdmin):
    list_display = ["judgment", "decision", "reviewer", "bulk", "created_at"]
    list_filter = ["decision", "bulk"]
    readonly_fields = [f.name for f in ReviewDecision._meta.fields]


@admin.register(RaterStatusChange)
class RaterStatusChangeAdmin(admin.ModelAdmin):
    list_display = [
        "rater",
        "action",
        "actor",
        "leases_released",
        "judgments_rejected",
        "created_at",
    ]
    readonly_fields = [f.name for f in RaterStatusChange._meta.fields]


@admin.register(QualitySnapshot)
class QualitySnapshotAdmin(admin.ModelAdmin):
    list_display = ["project", "computed_at", "judgments", "read_seconds", "compute_seconds"]
    exclude = ["data"]


@admin.register(OverlapDecision)
class OverlapDecisionAdmin(admin.ModelAdmin):
    """Dynamic overlap's decisions, one per filled allowance (read only: an audit trail)."""

    list_display = ["task", "judgments", "confidence", "target", "outcome", "created_at"]
    list_filter = ["outcome", "project"]
    readonly_fields = [f.name for f in OverlapDecision._meta.fields]
