from django.contrib import admin

from apps.accounts.models import ApiToken, RaterProfile


@admin.register(RaterProfile)
class RaterProfileAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "user", "status", "status_changed_at", "created_at")
    list_filter = ("status",)
    search_fields = ("pseudonym", "user__username", "user__email")
    readonly_fields = ("pseudonym", "created_at", "updated_at", "status_changed_at")
    raw_id_fields = ("user", "status_changed_by")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: deleting one revokes it at once (its key is never shown again)."""

    list_display = ("prefix", "user", "created_at", "last_used_at")
    search_fields = ("user__username", "prefix")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at")
    exclude = ("digest",)
    actions = ["delete_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are made by logging in (POST /api/auth/token/)
