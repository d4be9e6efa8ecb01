"""Template context shared by every page."""

from __future__ import annotations

from apps.core.roles import Role, user_roles


def roles(request) -> dict:
    """`nav_roles.labeler` / `.reviewer` / `.researcher`: which sections the nav links to."""
    held = user_roles(request.user) if hasattr(request, "user") else set()
    return {"nav_roles": {role.value: role in held for role in Role}}
