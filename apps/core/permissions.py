"""DRF permission classes, one per role."""

from rest_framework.permissions import BasePermission

from apps.core.roles import Role, user_has_role


class _HasRole(BasePermission):
    role: Role
    message = "This needs a role you do not have."

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, self.role)


class IsLabeler(_HasRole):
    role = Role.LABELER
    message = "Only labelers may do this."


class IsReviewer(_HasRole):
    role = Role.REVIEWER
    message = "Only reviewers may do this."


class IsResearcher(_HasRole):
    role = Role.RESEARCHER
    message = "Only researchers may do this."
