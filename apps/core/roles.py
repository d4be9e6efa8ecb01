"""The three roles of PrefLoop, kept as Django groups."""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    LABELER = "labeler"
    REVIEWER = "reviewer"
    RESEARCHER = "researcher"


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[Role]:
    """The roles a user holds; a superuser holds all of them."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(Role)
    cached = getattr(user, "_prefloop_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = remember_roles(user, {role for role in Role if role.value in names})
    return cached


def remember_roles(user: AbstractBaseUser, roles: set[Role]) -> set[Role]:
    """Keep the roles on this user object for the rest of the request."""
    user._prefloop_roles = roles
    return roles


def user_has_role(user: AbstractBaseUser | AnonymousUser, role: Role) -> bool:
    return role in user_roles(user)
