"""Create the role groups and their model permissions after every migrate (idempotent)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from apps.core.roles import Role

# app_label.codename: what each role may do in the admin and through model permissions.
ROLE_PERMISSIONS: dict[Role, list[str]] = {
    Role.LABELER: [
        "collection.view_project",
        "collection.add_judgment",
        "collection.add_demonstration",
    ],
    Role.REVIEWER: [
        "collection.view_project",
        "collection.view_task",
        "collection.view_judgment",
        "collection.change_judgment",
        "collection.view_demonstration",
        "collection.change_demonstration",
        "accounts.view_raterprofile",
        "accounts.change_raterprofile",
    ],
    Role.RESEARCHER: [
        "collection.view_project",
        "collection.add_project",
        "collection.change_project",
        "collection.view_prompt",
        "collection.add_prompt",
        "collection.change_prompt",
        "collection.view_completion",
        "collection.view_task",
        "collection.add_task",
        "collection.change_task",
        "collection.view_policyversion",
        "collection.view_judgment",
        "collection.view_demonstration",
    ],
}


def role_groups_sync(**_kwargs) -> None:
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.add(*wanted)
