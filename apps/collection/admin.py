"""Admin for collection: search, filters, useful columns; answers are read-only."""

from django.contrib import admin
from django.db.models import Count

from apps.collection.models import (
    Assignment,
    Completion,
    Demonstration,
    Judgment,
    PolicyVersion,
    Project,
    ProjectMembership,
    Prompt,
    Task,
    TaskCompletion,
)
from apps.collection.services import membership_add, membership_remove, project_active_set


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    fields = ("user", "role", "added_by", "created_at")
    readonly_fields = ("added_by", "created_at")
    raw_id_fields = ("user",)
    extra = 1


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "k", "overlap", "gold_rate", "is_active", "task_count")
    list_filter = ("is_active", "likert_enabled", "open_to_all_labelers")
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("guidelines_version", "created_at", "updated_at")
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_task_count=Count("tasks", distinct=True))

    @admin.display(ordering="_task_count", description="tasks")
    def task_count(self, obj) -> int:
        return obj._task_count

    def save_model(self, request, obj, form, change):
        if change and "guidelines" in form.changed_data:
            obj.guidelines_version += 1
        if not change:
            obj.created_by = request.user
        closing = change and "is_active" in form.changed_data and not obj.is_active
        super().save_model(request, obj, form, change)
        if closing:
            released = project_active_set(project=obj, active=False)
            if released:
                self.message_user(request, f"{released} live leases in {obj} were withdrawn.")

    def save_formset(self, request, form, formset, change):
        """Memberships go through the services: added_by is recorded, and a removed labeler
        loses their live leases."""
        if formset.model is not ProjectMembership:
            return super().save_formset(request, form, formset, change)
        for membership in formset.save(commit=False):
            if membership.pk is None:
                membership_add(
                    project=form.instance,
                    user=membership.user,
                    role=membership.role,
                    added_by=request.user,
                )
            else:
                membership.save()
        for membership in formset.deleted_objects:
            membership_remove(project=form.instance, user=membership.user, role=membership.role)


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role", "added_by", "created_at")
    list_filter = ("role", "project")
    search_fields = ("user__username", "project__name", "project__slug")
    raw_id_fields = ("user", "project")
    readonly_fields = ("added_by", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        membership, _ = membership_add(
            project=obj.project, user=obj.user, role=obj.role, added_by=request.user
        )
        obj.pk = membership.pk

    def delete_model(self, request, obj):
        membership_remove(project=obj.project, user=obj.user, role=obj.role)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user"):
            self.delete_model(request, membership)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("short_text", "project", "category", "split", "source", "created_at")
    list_filter = ("project", "category", "split", "source")
    search_fields = ("text", "external_id")
    readonly_fields = ("text_sha256", "created_at", "updated_at")

    @admin.display(description="text")
    def short_text(self, obj) -> str:
        return obj.text[:100]


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "kind", "parent", "round_number", "created_at")
    list_filter = ("project", "kind")
    search_fields = ("name", "artifact_uri")
    raw_id_fields = ("parent",)


@admin.register(Completion)
class CompletionAdmin(admin.ModelAdmin):
    list_display = ("short_text", "prompt_id", "source", "policy_version", "round_number")
    list_filter = ("source", "policy_version", "prompt__project")
    search_fields = ("text",)
    raw_id_fields = ("prompt", "policy_version")
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="text")
    def short_text(self, obj) -> str:
        return obj.text[:100]


class TaskCompletionInline(admin.TabularInline):
    model = TaskCompletion
    raw_id_fields = ("completion",)
    extra = 0


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ("rater", "status", "leased_at", "expires_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "kind",
        "status",
        "priority",
        "overlap",
        "is_gold",
        "created_at",
    )
    list_filter = ("project", "kind", "status", "is_gold")
    search_fields = ("prompt__text",)
    raw_id_fields = ("prompt",)
    inlines = [TaskCompletionInline, AssignmentInline]
    list_editable = ("priority",)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "rater", "status", "leased_at", "expires_at", "finished_at")
    list_filter = ("status", "task__project")
    search_fields = ("rater__username", "task__prompt__text")
    readonly_fields = [f.name for f in Assignment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


class _AnswerAdmin(admin.ModelAdmin):
    """Raters' answers are evidence: only the review fields may change."""

    review_fields = ("review_status", "review_reason")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.review_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        if "review_status" in form.changed_data:
            from django.utils import timezone

            obj.reviewed_by = request.user
            obj.reviewed_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(Judgment)
class JudgmentAdmin(_AnswerAdmin):
    list_display = ("id", "task", "rater", "source", "review_status", "time_spent_ms", "created_at")
    list_filter = ("review_status", "source", "task__project", "task__kind")
    search_fields = ("rater__username", "rationale", "task__prompt__text")
    date_hierarchy = "created_at"


@admin.register(Demonstration)
class DemonstrationAdmin(_AnswerAdmin):
    list_display = ("id", "prompt", "rater", "review_status", "created_at")
    list_filter = ("review_status", "prompt__project")
    search_fields = ("text", "rater__username", "prompt__text")
