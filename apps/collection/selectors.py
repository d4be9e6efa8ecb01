"""Reads of the collection app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.collection import access, upcoming
from apps.collection.content import task_content
from apps.collection.leasing import live_assignment_for_rater, slot_holding, tasks_open_to_rater
from apps.collection.models import Assignment, Project, Task
from apps.collection.screening import ScreeningGate, screening
from apps.core import sql
from apps.core.errors import NotFound
from apps.core.roles import Role, user_roles


def project_get(*, project_id: int, user, role: Role) -> Project:
    """The project if `user` may act on it as `role` (apps/collection/access.py), else
    NotFound (404 in the API and on pages): the one "project or 404". Missing and out of
    scope answer alike."""
    project = access.projects_for(user=user, role=role).filter(pk=project_id).first()
    if project is None:
        raise NotFound(access.NOT_FOUND)
    return project


def projects_for_user(*, user) -> list[Project]:
    """The projects the user holds any role in (staff: all), each with `.roles`: the user's
    roles there, for the project list."""
    by_id: dict[int, Project] = {}
    for role in Role:
        for project in access.projects_for(user=user, role=role):
            by_id.setdefault(project.pk, project).__dict__.setdefault("roles", []).append(role)
    return sorted(by_id.values(), key=lambda project: (project.name, project.pk))


def project_for_labeler(*, project_id: int, user) -> Project:
    """The project, if this user may label it now, with the registered screening's settings
    (apps/collection/screening.py) read along.

    SQL (one statement) rather than the ORM: every `next` starts here.
    """
    if Role.LABELER not in user_roles(user):
        raise NotFound(access.NOT_FOUND)
    allowed, params = access.labeler_access_sql(user=user, alias="p")
    read = _project_read(screening().settings_model)
    rows = sql.fetch_models(
        f"{read.select} WHERE p.id = %s AND {allowed}", [project_id, *params], read.models
    )
    if not rows:
        raise NotFound(access.NOT_FOUND)
    project = rows[0][0]
    if read.cache is not None:  # `project.<settings>` then answers without a query
        read.cache.set_cached_value(project, rows[0][1])
    return project


@dataclass(frozen=True)
class _ProjectRead:
    select: str
    models: list
    cache: object | None  # the reverse one-to-one that caches the settings row on a project


@cache
def _project_read(settings_model) -> _ProjectRead:
    """The project's SELECT, with `settings_model` (one-to-one `project`) joined when given;
    built once per model: it runs on every `next`."""
    if settings_model is None:
        return _ProjectRead(
            f"SELECT {sql.columns(Project, 'p')} FROM {sql.table(Project)} p", [Project], None
        )
    link = settings_model._meta.get_field("project")
    select = f"""
        SELECT {sql.columns(Project, "p")}, {sql.columns(settings_model, "q")}
        FROM {sql.table(Project)} p
        LEFT JOIN {sql.table(settings_model)} q ON q.{link.column} = p.id"""
    accessor = getattr(Project, link.remote_field.get_accessor_name()).related
    return _ProjectRead(select, [Project, settings_model], accessor)


def assignment_view(*, assignment: Assignment) -> dict:
    """What the rater sees: prompt and completions in their own display order.

    A lease fresh from `next` carries its task's content already; others read it (one
    statement).
    """
    content = getattr(assignment, "_task_content", None) or task_content(task_id=assignment.task_id)
    return {
        "assignment_id": assignment.pk,
        "task_id": assignment.task_id,
        "kind": content.kind,
        "prompt": {"id": content.prompt_id, "text": content.prompt_text},
        "completions": [
            {"id": cid, "text": content.completions[cid]} for cid in assignment.display_order
        ],
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
    """The labeler's home: each project they may work on, their progress in it, whether
    they hold a live lease there (its task no longer counts as "left", but it can be
    resumed), and what they can do now and why (`state`, see `labeler_state`)."""
    now = timezone.now()
    profile = RaterProfile.objects.filter(user=user).first()
    rows = []
    for project in access.projects_for(user=user, role=Role.LABELER):
        progress = rater_progress(project=project, rater=user)
        holds_lease = live_assignment_for_rater(project=project, rater=user, now=now) is not None
        state = labeler_state(
            project=project,
            rater=user,
            profile=profile,
            tasks_left=progress["tasks_left"],
            holds_lease=holds_lease,
        )
        rows.append({"project": project, **progress, "holds_lease": holds_lease, "state": state})
    return rows


def labeler_state(*, project: Project, rater, profile, tasks_left: int, holds_lease: bool) -> dict:
    """What the labeler can do in `project` now, and a sentence saying why:
    {"kind": suspended | screening_failed | screening | work | sampling | done,
     "message": str, "can_start": bool}."""
    if profile is not None and profile.is_suspended:
        reason = f" ({profile.status_reason})" if profile.status_reason else ""
        return _state(
            "suspended", f"Your account is suspended{reason}. A reviewer can reinstate you."
        )
    gate = screening()
    progress = gate.progress(project=project, rater=rater)
    if progress is not None and progress.state == ScreeningGate.CLOSED:
        return _state("screening_failed", gate.failed_message)
    if holds_lease:
        return _state("work", "", can_start=True)
    if progress is not None and progress.state == ScreeningGate.GOLD_ONLY:
        gold_left = (
            tasks_open_to_rater(project=project, rater=rater, now=timezone.now())
            .filter(is_gold=True)
            .exists()
        )
        return _state(
            "screening",
            f"You are in screening: answer {progress.size} test tasks first "
            f"({progress.answered} of {progress.size} done); regular tasks open when you pass."
            + ("" if gold_left else " No test task is free right now; try again soon."),
            can_start=gold_left,
        )
    if tasks_left:
        return _state("work", "", can_start=True)
    wait = upcoming.seconds_until_new_tasks(project)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        return _state(
            "sampling",
            f"New tasks are being sampled: about {minutes} minute{'s' if minutes > 1 else ''}.",
        )
    return _state("done", "No tasks left in this project. Thank you! New ones will appear here.")


def _state(kind: str, message: str, *, can_start: bool = False) -> dict:
    return {"kind": kind, "message": message, "can_start": can_start}


def assignment_get_for_rater(*, assignment_id: int, rater) -> Assignment:
    """The rater's own assignment with its task and project; NotFound (404) when it is
    missing or another rater's, alike. One statement (SQL): every answer a rater submits
    starts here."""
    query = f"""
        SELECT {sql.columns(Assignment, "a")}, {sql.columns(Task, "t")}, {sql.columns(Project, "p")}
        FROM {sql.table(Assignment)} a
        JOIN {sql.table(Task)} t ON t.id = a.task_id
        JOIN {sql.table(Project)} p ON p.id = t.project_id
        WHERE a.id = %s AND a.rater_id = %s"""
    rows = sql.fetch_models(query, [assignment_id, rater.pk], [Assignment, Task, Project])
    if not rows:
        raise NotFound("No such assignment, or it is another rater's.")
    assignment, task, project = rows[0]
    task.project = project
    assignment.task = task
    return assignment
