"""Writes of the collection app: projects, prompts, tasks, and raters' answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.collection import access, validation
from apps.collection.allowance import task_settle
from apps.collection.leasing import task_taken_slots
from apps.collection.models import (
    MAX_DYNAMIC_OVERLAP,
    MAX_K,
    MIN_K,
    Assignment,
    Completion,
    Demonstration,
    Judgment,
    Project,
    ProjectMembership,
    Prompt,
    Task,
    TaskCompletion,
    text_digest,
)
from apps.collection.selectors import assignment_get_for_rater
from apps.core import sql
from apps.core.errors import Conflict, InvalidInput
from apps.core.roles import Role, forget_roles

MAX_TIME_SPENT_MS = 24 * 3600 * 1000
MAX_DEMONSTRATION_CHARS = 20_000


def project_create(*, name: str, slug: str = "", created_by=None, **settings: Any) -> Project:
    project = Project(
        name=name, slug=slug or slugify(name)[:100], created_by=created_by, **settings
    )
    project.full_clean()
    project.save()
    return project


def project_guidelines_update(*, project: Project, guidelines: str) -> Project:
    """Change the guidelines; judgments keep the version their rater saw."""
    if guidelines != project.guidelines:
        project.guidelines = guidelines
        project.guidelines_version += 1
        project.save(update_fields=["guidelines", "guidelines_version", "updated_at"])
    return project


OVERLAP_FIELDS = ("dynamic_overlap", "overlap", "overlap_max", "confidence_target")


# What one rater whose reliability has not been measured yet is taken to be right with (the
# quality module's prior, apps/quality/confidence.py PRIOR_WEIGHT = log 3).
UNMEASURED_ACCURACY = 0.75


def overlap_problems(*, dynamic: bool, start: int, most: int, target: float) -> dict:
    """What is wrong with a project's overlap settings taken together ({} when nothing)."""
    if not dynamic:
        return {}
    if most < start:
        return {"overlap_max": ["Cannot be below the overlap a task starts with."]}
    if start == 1 and target <= UNMEASURED_ACCURACY:
        return {
            "confidence_target": [
                "Tasks starting with 1 rater need a target above 0.75: one unmeasured rater "
                "already reaches 0.75, so no task would get a second rater and no rater's "
                "reliability would ever be measured."
            ]
        }
    return {}


def project_overlap_update(*, project: Project, **changes: Any) -> Project:
    """Change how many raters a project's tasks get: `overlap` (where tasks start),
    `dynamic_overlap`, `overlap_max` and `confidence_target`. Bad values change nothing and
    name the field. Tasks created from now on follow the new settings; existing tasks keep
    the allowance and maximum they were created with."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(changes) - set(OVERLAP_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown setting(s): {', '.join(unknown)}.",
            fields={name: [f"One of {', '.join(OVERLAP_FIELDS)}."] for name in unknown},
        )
    values = {name: getattr(project, name) for name in OVERLAP_FIELDS}
    for name, value in changes.items():
        if name == "dynamic_overlap":
            if not isinstance(value, bool):
                errors[name] = ["true or false."]
        elif name == "confidence_target":
            number = (
                value if isinstance(value, int | float) and not isinstance(value, bool) else None
            )
            if number is None or not 0.5 <= number <= 0.999:
                errors[name] = ["A probability from 0.5 to 0.999."]
            else:
                value = float(number)
        elif (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= MAX_DYNAMIC_OVERLAP
        ):
            errors[name] = [f"A whole number from 1 to {MAX_DYNAMIC_OVERLAP}."]
        values[name] = value
    if not errors:
        errors = overlap_problems(
            dynamic=values["dynamic_overlap"],
            start=values["overlap"],
            most=values["overlap_max"],
            target=values["confidence_target"],
        )
    if errors:
        raise InvalidInput(
            "The overlap settings are not valid; nothing was changed.", fields=errors
        )
    changed = [name for name in OVERLAP_FIELDS if getattr(project, name) != values[name]]
    for name in changed:
        setattr(project, name, values[name])
    if changed:
        project.save(update_fields=[*changed, "updated_at"])
    return project


@dataclass(frozen=True)
class PromptInput:
    text: str
    category: str = "other"
    split: str = "train"
    external_id: str = ""
    reference: str = ""


@dataclass
class PromptImportResult:
    created: list[Prompt]
    existing: list[Prompt]

    @property
    def prompts(self) -> list[Prompt]:
        return self.created + self.existing


@transaction.atomic
def prompts_import(
    *, project: Project, items: Sequence[PromptInput], source: str = Prompt.Source.IMPORTED
) -> PromptImportResult:
    """Add prompts; one already in the project (same text) is kept, not duplicated."""
    digests = [text_digest(item.text) for item in items]
    distinct = sorted(set(digests))
    existing = {}
    for start in range(0, len(distinct), 10_000):  # PostgreSQL binds ≤ 65,535 parameters
        batch = distinct[start : start + 10_000]
        existing.update(
            (p.text_sha256, p)
            for p in Prompt.objects.filter(project=project, text_sha256__in=batch)
        )
    created: list[Prompt] = []
    found: list[Prompt] = []
    for item, digest in zip(items, digests, strict=True):
        if digest in existing:
            found.append(existing[digest])
            continue
        prompt = Prompt(
            project=project,
            text=item.text,
            text_sha256=digest,
            category=item.category,
            split=item.split,
            source=source,
            external_id=item.external_id,
            reference=item.reference,
        )
        existing[digest] = prompt
        created.append(prompt)
    Prompt.objects.bulk_create(created, batch_size=500)
    return PromptImportResult(created=created, existing=found)


def completion_create(
    *,
    prompt: Prompt,
    text: str,
    source: str,
    policy_version=None,
    sampling_params: dict | None = None,
    seed: int | None = None,
    round_number: int | None = None,
) -> Completion:
    return Completion.objects.create(
        prompt=prompt,
        text=text,
        source=source,
        policy_version=policy_version,
        sampling_params=sampling_params or {},
        seed=seed,
        round_number=round_number,
    )


def task_create(
    *,
    project: Project,
    prompt: Prompt,
    completions: Sequence[Completion] = (),
    kind: str = Task.Kind.RANKING,
    overlap: int | None = None,
    priority: int = 0,
    is_gold: bool = False,
    gold_ranking: list[list[int]] | None = None,
    round_number: int | None = None,
) -> Task:
    """A task over `completions` (ranking: 2–9 of them, evaluation: exactly 2)."""
    if prompt.project_id != project.pk:
        raise InvalidInput("The prompt belongs to another project.")
    if any(c.prompt_id != prompt.pk for c in completions):
        raise InvalidInput("Every completion must answer the task's prompt.")
    count = len(completions)
    if kind == Task.Kind.RANKING and not MIN_K <= count <= MAX_K:
        raise InvalidInput(f"A ranking task needs {MIN_K} to {MAX_K} completions, not {count}.")
    if kind == Task.Kind.EVALUATION and count != 2:
        raise InvalidInput("An A/B evaluation task needs exactly 2 completions.")
    if kind == Task.Kind.DEMONSTRATION and count:
        raise InvalidInput("A demonstration task has no completions.")
    if gold_ranking is not None:
        errors: validation.Errors = {}
        gold_ranking = validation.clean_ranking(gold_ranking, [c.pk for c in completions], errors)
        if errors:
            raise InvalidInput(
                "The gold ranking is not valid.", fields={"gold_ranking": errors["ranking"]}
            )
    # Dynamic overlap applies to the project's own ranking tasks; gold (screening) tasks and
    # tasks given an explicit overlap (A/B evaluation) keep a fixed one.
    dynamic = project.dynamic_overlap and kind == Task.Kind.RANKING and not is_gold and not overlap
    with transaction.atomic():
        task = Task.objects.create(
            project=project,
            prompt=prompt,
            kind=kind,
            overlap=overlap or project.overlap,
            max_overlap=max(project.overlap_max, project.overlap) if dynamic else None,
            priority=priority,
            is_gold=is_gold,
            gold_ranking=gold_ranking,
            round_number=round_number,
        )
        TaskCompletion.objects.bulk_create(
            TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
        )
    return task


# --- answers -------------------------------------------------------------------------------


def _lock_for_answer(*, assignment: Assignment, rater) -> tuple[Assignment, Task, datetime]:
    """Lock the assignment and its task (one statement), and check the answer may be taken.

    The clock is read once the task is locked: read earlier, a lease that ran out while we
    waited for the lock would look live here, although `next` has already given its slot to
    someone else (and that rater's lease would then be one too many). The same statement
    asks whether the rater may still label the project: removing a member or closing a
    project withdraws their leases, and this catches a lease taken while that committed.
    """
    lock = " FOR UPDATE OF a, t" if connection.features.has_select_for_update_of else ""
    allowed, params = access.labeler_access_sql(user=rater, alias="p")
    query = f"""
        SELECT {sql.columns(Assignment, "a")}, {sql.columns(Task, "t")}, {allowed}
        FROM {sql.table(Assignment)} a JOIN {sql.table(Task)} t ON t.id = a.task_id
        JOIN {sql.table(Project)} p ON p.id = t.project_id
        WHERE a.id = %s{lock}"""
    ((locked, task, may_label),) = sql.fetch_models(
        query, [*params, assignment.pk], [Assignment, Task]
    )
    now = timezone.now()
    if locked.status == Assignment.Status.SUBMITTED:
        raise _AlreadyAnswered
    if locked.status == Assignment.Status.SKIPPED:
        raise Conflict("This assignment was skipped.")
    if locked.status == Assignment.Status.RELEASED:
        raise Conflict(f"This task was withdrawn: {locked.release_reason or 'by a reviewer'}.")
    if not may_label:
        raise Conflict("This task was withdrawn: you may no longer work on this project.")
    if locked.expires_at <= now:
        taken = task_taken_slots(task_id=task.pk, now=now, excluding=locked.pk)
        if taken >= task.overlap:
            raise Conflict("Your lease expired and the task has since been given to other raters.")
    return locked, task, now


class _AlreadyAnswered(Exception):
    """The assignment holds an answer: a replay of it, or a conflict (`_store_answer`)."""


def _finish(*, assignment: Assignment, task: Task, now) -> None:
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {sql.table(Assignment)} SET status = %s, finished_at = %s WHERE id = %s",
            [assignment.status, connection.ops.adapt_datetimefield_value(now), assignment.pk],
        )
    task_settle(task=task, now=now)


def _replayed(model, *, client_key: uuid.UUID, assignment: Assignment):
    """The earlier answer with this client key, if the client is retrying."""
    earlier = model.objects.filter(client_key=client_key).first()
    if earlier is None:
        return None
    if earlier.assignment_id != assignment.pk:
        raise InvalidInput(
            "This client_key was already used for another answer.",
            fields={"client_key": ["Already used for another assignment; send a new uuid."]},
        )
    return earlier


def _store_answer(model, *, assignment: Assignment, rater, client_key: uuid.UUID, create):
    """Run `create(locked_assignment, task, now)` under the locks; (answer, created).

    A retry is recognised without an extra read on the usual path: the earlier answer is
    looked up only when the assignment turns out answered already, or when the insert hits
    the unique client_key (two copies of one request raced, or the key was reused).
    """
    try:
        with transaction.atomic():
            locked, task, now = _lock_for_answer(assignment=assignment, rater=rater)
            answer = create(locked, task, now)
            _finish(assignment=locked, task=task, now=now)
    except _AlreadyAnswered:
        earlier = _replayed(model, client_key=client_key, assignment=assignment)
        if earlier is None:
            raise Conflict("This assignment has already been answered.") from None
        return earlier, False
    except IntegrityError:
        earlier = _replayed(model, client_key=client_key, assignment=assignment)
        if earlier is None:
            raise
        return earlier, False
    return answer, True


def _replay_or_refuse(model, *, message: str, errors: validation.Errors, **replay):
    """(earlier answer, False) if this invalid request retries a stored answer; else the 400."""
    earlier = _replayed(model, **replay)
    if earlier is None:
        raise InvalidInput(message, fields=errors)
    return earlier, False


def _clean_time_spent(value: Any, errors: validation.Errors) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIME_SPENT_MS:
        errors.setdefault("time_spent_ms", []).append(
            f"Expected whole milliseconds between 0 and {MAX_TIME_SPENT_MS}."
        )
        return None
    return value


def judgment_submit(
    *,
    assignment_id: int,
    rater,
    client_key: uuid.UUID,
    ranking: Any,
    likert: Any = None,
    flags: Any = None,
    rationale: Any = "",
    time_spent_ms: Any = None,
    both_bad: bool = False,
) -> tuple[Judgment, bool]:
    """Store a rater's ranking. Returns (judgment, created); a retried client_key replays."""
    assignment = assignment_get_for_rater(assignment_id=assignment_id, rater=rater)
    task = assignment.task
    project = task.project
    if task.kind == Task.Kind.DEMONSTRATION:
        raise InvalidInput("This task asks for a demonstration, not a ranking.")
    replay = {"client_key": client_key, "assignment": assignment}

    shown = list(assignment.display_order)
    errors: validation.Errors = {}
    groups = validation.clean_ranking(ranking, shown, errors)
    likert_clean = validation.clean_likert(likert, shown, project.likert_enabled, errors)
    flags_clean = validation.clean_flags(flags, shown, project.flag_keys, errors)
    rationale_clean = validation.clean_rationale(rationale, project.rationale_max_length, errors)
    time_clean = _clean_time_spent(time_spent_ms, errors)
    if both_bad and task.kind != Task.Kind.EVALUATION:
        errors.setdefault("both_bad", []).append("Only A/B evaluation tasks take both_bad.")
    if errors:
        return _replay_or_refuse(
            Judgment,
            message="The judgment is not valid; nothing was stored.",
            errors=errors,
            **replay,
        )

    def create(locked: Assignment, task: Task, now) -> Judgment:
        judgment = Judgment(
            assignment=locked,
            task=task,
            rater=rater,
            ranking=groups,
            likert=likert_clean,
            flags=flags_clean,
            rationale=rationale_clean,
            both_bad=bool(both_bad),
            time_spent_ms=time_clean,
            display_order=shown,
            guidelines_version=project.guidelines_version,
            client_key=client_key,
        )
        return sql.insert(judgment)

    return _store_answer(Judgment, create=create, rater=rater, **replay)


def demonstration_submit(
    *, assignment_id: int, rater, client_key: uuid.UUID, text: Any, time_spent_ms: Any = None
) -> tuple[Demonstration, bool]:
    """Store a rater's ideal answer for a demonstration task (idempotent by client_key)."""
    assignment = assignment_get_for_rater(assignment_id=assignment_id, rater=rater)
    task = assignment.task
    if task.kind != Task.Kind.DEMONSTRATION:
        raise InvalidInput("This task asks for a ranking, not a demonstration.")
    replay = {"client_key": client_key, "assignment": assignment}
    errors: validation.Errors = {}
    if not isinstance(text, str) or not text.strip():
        errors.setdefault("text", []).append("Write the answer; it may not be empty.")
    elif len(text) > MAX_DEMONSTRATION_CHARS:
        errors.setdefault("text", []).append(
            f"At most {MAX_DEMONSTRATION_CHARS} characters; this one has {len(text)}."
        )
    time_clean = _clean_time_spent(time_spent_ms, errors)
    if errors:
        return _replay_or_refuse(
            Demonstration,
            message="The demonstration is not valid; nothing was stored.",
            errors=errors,
            **replay,
        )

    def create(locked: Assignment, task: Task, now) -> Demonstration:
        return Demonstration.objects.create(
            assignment=locked,
            task=task,
            prompt_id=task.prompt_id,
            rater=rater,
            text=text.strip(),
            time_spent_ms=time_clean,
            client_key=client_key,
        )

    return _store_answer(Demonstration, create=create, rater=rater, **replay)


MAX_SKIP_REASON = 500


def assignment_skip(*, assignment_id: int, rater, reason: Any) -> Assignment:
    """Give a task back; its slot frees at once and this rater will not see it again."""
    assignment = assignment_get_for_rater(assignment_id=assignment_id, rater=rater)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Say why you skip.", fields={"reason": ["Required."]})
    if len(reason) > MAX_SKIP_REASON:
        raise InvalidInput(
            "The reason is too long.", fields={"reason": [f"At most {MAX_SKIP_REASON} characters."]}
        )
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status == Assignment.Status.SKIPPED:
            return locked  # a retried skip
        if locked.status != Assignment.Status.LEASED:
            raise Conflict("Only a task you still hold can be skipped.")
        locked.status = Assignment.Status.SKIPPED
        locked.skip_reason = reason.strip()
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "skip_reason", "finished_at"])
    return locked


def assignments_release(*, rater, reason: str, projects: Iterable[Project] | None = None) -> int:
    """Withdraw a rater's live leases (optionally only in `projects`); their slots free at
    once, and an answer sent on one gets a 409 that gives `reason`."""
    leases = Assignment.objects.filter(rater=rater, status=Assignment.Status.LEASED)
    if projects is not None:
        leases = leases.filter(task__project__in=list(projects))
    return leases.update(
        status=Assignment.Status.RELEASED, finished_at=timezone.now(), release_reason=reason
    )


# --- memberships ---------------------------------------------------------------------------


@transaction.atomic
def membership_add(
    *, project: Project, user, role: Role, added_by=None
) -> tuple[ProjectMembership, bool]:
    """Give `user` `role` in `project`; (membership, created). Adding it again changes nothing."""
    membership, created = ProjectMembership.objects.get_or_create(
        project=project, user=user, role=Role(role), defaults={"added_by": added_by}
    )
    forget_roles(user)
    return membership, created


@transaction.atomic
def membership_remove(*, project: Project, user, role: Role | None = None) -> tuple[int, int]:
    """Take `role` (every role when None) in `project` from `user`; (memberships removed,
    leases withdrawn). A labeler who may no longer work there loses their live leases."""
    memberships = ProjectMembership.objects.filter(project=project, user=user)
    if role is not None:
        memberships = memberships.filter(role=Role(role))
    removed, _ = memberships.delete()
    forget_roles(user)
    released = 0
    if not access.may_act(user=user, project=project, role=Role.LABELER):
        released = assignments_release(
            rater=user,
            projects=[project],
            reason=f"you are no longer a labeler of {project.name}",
        )
    return removed, released


@transaction.atomic
def project_active_set(*, project: Project, active: bool) -> int:
    """Open or close a project for labeling; closing withdraws every live lease in it.
    Returns how many leases were withdrawn."""
    Project.objects.filter(pk=project.pk).update(is_active=active, updated_at=timezone.now())
    project.is_active = active
    if active:
        return 0
    return Assignment.objects.filter(task__project=project, status=Assignment.Status.LEASED).update(
        status=Assignment.Status.RELEASED,
        finished_at=timezone.now(),
        release_reason=f"the project {project.name} was closed",
    )
