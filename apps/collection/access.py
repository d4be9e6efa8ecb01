"""Who may act on which project, and in which role (the table is in SECURITY.md).

- Staff and superusers hold every role in every project.
- A labeler works on active projects that are open to all labelers (when they hold the
  labeler group: the workforce pool) or where they hold a labeler membership.
- A reviewer or researcher acts on the projects where they hold that membership, active or
  not: the data of a project closed to labelers can still be reviewed and trained on.

Out of scope answers as missing (NotFound, a 404), never as forbidden: another project's ids
tell nothing. Every project lookup by id from a request goes through
`apps.collection.selectors.project_get`.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.collection.models import Project, ProjectMembership
from apps.core import sql
from apps.core.errors import NotFound
from apps.core.roles import Role, is_staff, user_group_roles, user_roles

NOT_FOUND = "No such project, or you have no role in it."


def projects_for(*, user, role: Role) -> QuerySet[Project]:
    """The projects `user` may act on as `role`, by name."""
    projects = Project.objects.order_by("name", "pk")
    if role == Role.LABELER:
        projects = projects.filter(is_active=True)
    if is_staff(user):
        return projects
    if role not in user_roles(user):
        return projects.none()
    member = ProjectMembership.objects.filter(project_id=OuterRef("pk"), user=user, role=role)
    if role == Role.LABELER and Role.LABELER in user_group_roles(user):
        return projects.filter(Q(open_to_all_labelers=True) | Exists(member))
    return projects.filter(Exists(member))


def in_scope(queryset: QuerySet, *, user, role: Role, via: str = "project") -> QuerySet:
    """`queryset` narrowed to rows whose project (reached by the lookup path `via`) `user`
    may act on as `role`."""
    if is_staff(user) and role != Role.LABELER:
        return queryset
    return queryset.filter(**{f"{via}__in": projects_for(user=user, role=role).values("pk")})


def object_for(
    queryset: QuerySet, *, user, role: Role, pk: int, via: str = "project", missing: str
):
    """The row `pk` of `queryset` if its project is in `user`'s scope as `role`; NotFound
    with the message `missing` otherwise (missing and out of scope answer alike)."""
    found = in_scope(queryset, user=user, role=role, via=via).filter(pk=pk).first()
    if found is None:
        raise NotFound(missing)
    return found


def may_act(*, user, project: Project, role: Role) -> bool:
    return projects_for(user=user, role=role).filter(pk=project.pk).exists()


def labeler_access_sql(*, user, alias: str = "p") -> tuple[str, list]:
    """A SQL condition on the project row `alias`: `user` may label it now; and its params.

    For the raters' hot path, which folds it into statements it runs anyway.
    """
    if is_staff(user):
        return _labeler_condition(alias, "staff", connection.vendor), []
    kind = "pool" if Role.LABELER in user_group_roles(user) else "member"
    return _labeler_condition(alias, kind, connection.vendor), [user.pk, Role.LABELER.value]


@cache
def _labeler_condition(alias: str, kind: str, vendor: str) -> str:
    if kind == "staff":
        return f"{alias}.is_active"
    member = f"""EXISTS (SELECT 1 FROM {sql.table(ProjectMembership)} m
        WHERE m.project_id = {alias}.id AND m.user_id = %s AND m.role = %s)"""
    if kind == "pool":
        return f"{alias}.is_active AND ({alias}.open_to_all_labelers OR {member})"
    return f"{alias}.is_active AND {member}"


def members_of(*, project: Project) -> QuerySet[ProjectMembership]:
    return (
        ProjectMembership.objects.filter(project=project)
        .select_related("user")
        .order_by("role", "user__username")
    )
