"""Reads of the collection app."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.collection.leasing import live_assignment_for_rater, slot_holding, tasks_open_to_rater
from apps.collection.models import Assignment, Completion, Project, Task
from apps.core.errors import NotFound, NotPermitted
from apps.core.roles import Role, user_has_role, user_roles


def projects_for_user(*, user) -> QuerySet[Project]:
    """Projects the user may work on: all for reviewers/researchers, open or joined for labelers."""
    projects = Project.objects.filter(is_active=True).order_by("name")
    roles = user_roles(user)
    if roles & {Role.REVIEWER, Role.RESEARCHER}:
        return projects
    if Role.LABELER in roles:
        return projects.filter(Q(open_to_all_labelers=True) | Q(members=user)).distinct()
    return projects.none()


def project_for_labeler(*, project_id: int, user) -> Project:
    project = (
        projects_for_user(user=user).filter(pk=project_id).first()
        if user_has_role(user, Role.LABELER)
        else None
    )
    if project is None:
        raise NotFound("No such project, or you may not work on it.")
    return project


def assignment_view(*, assignment: Assignment) -> dict:
    """What the rater sees: prompt and completions in their own display order."""
    task = assignment.task
    by_id = {
        c.pk: c.text
        for c in Completion.objects.filter(pk__in=assignment.display_order).only("pk", "text")
    }
    return {
        "assignment_id": assignment.pk,
        "task_id": task.pk,
        "kind": task.kind,
        "prompt": {"id": task.prompt_id, "text": task.prompt.text},
        "completions": [{"id": cid, "text": by_id[cid]} for cid in assignment.display_order],
        "lease_expires_at": assignment.expires_at,
        "status": assignment.status,
    }


def rater_progress(*, project: Project, rater) -> dict[str, int]:
    """Done today, done in total, and tasks this rater could be given now (gold not shown)."""
    now = timezone.now()
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    finished = Assignment.objects.filter(
        rater=rater, task__project=project, status=Assignment.Status.SUBMITTED
    )
    left = tasks_open_to_rater(project=project, rater=rater, now=now).filter(is_gold=False).count()
    return {
        "done_today": finished.filter(finished_at__gte=start_of_day).count(),
        "done_total": finished.count(),
        "tasks_left": left,
    }


def task_slot_usage(*, task: Task, now=None) -> int:
    return task.assignments.filter(slot_holding(now or timezone.now())).count()


def stale_leases(*, older_than: timedelta) -> QuerySet[Assignment]:
    return Assignment.objects.filter(
        status=Assignment.Status.LEASED, expires_at__lt=timezone.now() - older_than
    )


def labeler_projects_with_progress(*, user) -> list[dict]:
    """The labeler's home: each project they may work on, their progress in it, and whether
    they hold a live lease there (its task no longer counts as "left", but it can be resumed).
    """
    now = timezone.now()
    return [
        {
            "project": project,
            **rater_progress(project=project, rater=user),
            "holds_lease": live_assignment_for_rater(project=project, rater=user, now=now)
            is not None,
        }
        for project in projects_for_user(user=user)
    ]


def assignment_get_for_rater(*, assignment_id: int, rater) -> Assignment:
    """The rater's own assignment: 404 when missing, 403 when it is another rater's."""
    assignment = (
        Assignment.objects.select_related("task__project", "task__prompt")
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None:
        raise NotFound("No such assignment.")
    if assignment.rater_id != rater.pk:
        raise NotPermitted("This assignment belongs to another rater.")
    return assignment
