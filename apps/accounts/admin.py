from django.contrib import admin

from apps.accounts.models import RaterProfile


@admin.register(RaterProfile)
class RaterProfileAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "user", "status", "status_changed_at", "created_at")
    list_filter = ("status",)
    search_fields = ("pseudonym", "user__username", "user__email")
    readonly_fields = ("pseudonym", "created_at", "updated_at", "status_changed_at")
    raw_id_fields = ("user", "status_changed_by")
