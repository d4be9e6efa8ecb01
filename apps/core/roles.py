"""The three roles of PrefLoop.

A user holds a role through a Django group (the account's kind of work: a labeler group
member may work on every project open to all labelers) or through a project membership
(`collection.ProjectMembership`: that role in that project only). Staff and superusers hold
every role. Which projects a role reaches is apps/collection/access.py's question; here we
only answer "does this user hold the role anywhere", which gates each section and API.
"""

from __future__ import annotations

from enum import StrEnum

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db.models import Value


class Role(StrEnum):
    LABELER = "labeler"
    REVIEWER = "reviewer"
    RESEARCHER = "researcher"

    @property
    def label(self) -> str:
        return self.value.title()


#: (value, label) pairs, for model fields, serializers and the schema's one RoleEnum.
ROLE_CHOICES = [(role.value, role.label) for role in Role]


def is_staff(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff and superusers see and act on every project (SECURITY.md)."""
    return bool(user.is_authenticated and (user.is_staff or user.is_superuser))


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[Role]:
    """The roles a user holds anywhere: groups and project memberships; staff hold all."""
    return _held(user)[0]


def user_group_roles(user: AbstractBaseUser | AnonymousUser) -> set[Role]:
    """The roles a user holds through groups (staff: all); a labeler group member may work on
    every project open to all labelers."""
    return _held(user)[1]


def _held(user) -> tuple[set[Role], set[Role]]:
    if not user.is_authenticated:
        return set(), set()
    if is_staff(user):
        return set(Role), set(Role)
    cached = getattr(user, "_prefloop_roles", None)
    if cached is None:
        membership = apps.get_model("collection", "ProjectMembership")
        groups = Group.objects.filter(user=user, name__in=list(Role))
        rows = (
            groups.annotate(group=Value(True))
            .values_list("name", "group")
            .union(
                membership.objects.filter(user=user)
                .annotate(group=Value(False))
                .values_list("role", "group")
            )
        )
        cached = remember_roles(user, [(name, group) for name, group in rows])
    return cached


def remember_roles(user: AbstractBaseUser, rows) -> tuple[set[Role], set[Role]]:
    """Keep the roles on this user object for the rest of the request. `rows` are
    (role name, held through a group) pairs; names that are no role are ignored."""
    held = {Role(name) for name, _ in rows if name in Role._value2member_map_}
    grouped = {Role(name) for name, group in rows if group and name in Role._value2member_map_}
    user._prefloop_roles = (held, grouped)
    return user._prefloop_roles


def forget_roles(user: AbstractBaseUser) -> None:
    """Drop the roles kept on this user object (after changing them)."""
    user.__dict__.pop("_prefloop_roles", None)


def user_has_role(user: AbstractBaseUser | AnonymousUser, role: Role) -> bool:
    return role in user_roles(user)
