"""Writes of rater quality: review decisions, suspensions, screening overrides, snapshots.

Every decision writes its audit row in the same transaction as the change it records.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.accounts.services import rater_profile_get_or_create
from apps.collection import access
from apps.collection.models import Judgment, Project, ReviewStatus
from apps.collection.services import assignments_release
from apps.core.errors import InvalidInput, NotFound, NotPermitted
from apps.core.roles import Role, is_staff
from apps.quality import reading, selectors
from apps.quality.measures import QualityOptions
from apps.quality.models import (
    ProjectQualitySettings,
    QualitySnapshot,
    RaterReliability,
    RaterScreening,
    RaterStatusChange,
    ReviewDecision,
)
from apps.quality.statistics import NeedsFullRecompute, QualityState, ReviewChanges

logger = logging.getLogger(__name__)

MAX_REASON = 2000
MAX_BULK = 5000
SNAPSHOTS_KEPT = 200
# Judgments committed up to this long after they were created are still read by the next
# incremental refresh (a judgment's transaction lasts well under a second).
STATE_LOOKBACK = timedelta(minutes=10)
FULL_RECOMPUTE_EVERY = timedelta(hours=24)
REFRESH_LOCK_CLASS = 0x5146  # advisory lock namespace of statistics refreshes
_STATUS_FOR = {
    ReviewDecision.Decision.APPROVE: ReviewStatus.APPROVED,
    ReviewDecision.Decision.REJECT: ReviewStatus.REJECTED,
}


def _clean_decision(decision, reason) -> tuple[str, str]:
    errors: dict[str, list[str]] = {}
    if decision not in _STATUS_FOR:
        errors["decision"] = ['Expected "approve" or "reject".']
    if not isinstance(reason, str):
        errors["reason"] = ["Expected text."]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [f"At most {MAX_REASON} characters."]
    elif decision == ReviewDecision.Decision.REJECT and not reason.strip():
        errors["reason"] = ["Say why the judgment is rejected."]
    if errors:
        raise InvalidInput("The review decision is not valid; nothing was changed.", fields=errors)
    return decision, reason.strip()


def _decide(judgments: list[Judgment], *, reviewer, decision: str, reason: str, bulk: bool) -> int:
    now = timezone.now()
    status = _STATUS_FOR[decision]
    audit = []
    for judgment in judgments:
        audit.append(
            ReviewDecision(
                judgment=judgment,
                reviewer=reviewer,
                decision=decision,
                reason=reason,
                previous_status=judgment.review_status,
                bulk=bulk,
            )
        )
    Judgment.objects.filter(pk__in=[j.pk for j in judgments]).update(
        review_status=status, reviewed_by=reviewer, reviewed_at=now, review_reason=reason
    )
    ReviewDecision.objects.bulk_create(audit)
    return len(judgments)


@transaction.atomic
def judgment_review(*, judgment_id: int, reviewer, decision, reason="") -> Judgment:
    """Approve or reject one judgment; a later decision replaces an earlier one."""
    decision, reason = _clean_decision(decision, reason)
    judgment = Judgment.objects.select_for_update().filter(pk=judgment_id).first()
    if judgment is None:
        raise NotFound("No such judgment.")
    if judgment.rater_id == reviewer.pk:
        raise NotPermitted("You may not review your own judgment.")
    _decide([judgment], reviewer=reviewer, decision=decision, reason=reason, bulk=False)
    judgment.refresh_from_db()
    return judgment


@transaction.atomic
def judgments_review_bulk(
    *, project: Project, judgment_ids: Iterable[int], reviewer, decision, reason=""
) -> int:
    """Approve or reject many judgments of one project at once (each gets an audit row)."""
    decision, reason = _clean_decision(decision, reason)
    ids = sorted({int(pk) for pk in judgment_ids})
    if not ids:
        raise InvalidInput("Choose at least one judgment.", fields={"judgment_ids": ["Empty."]})
    if len(ids) > MAX_BULK:
        raise InvalidInput(f"At most {MAX_BULK} judgments at once.")
    judgments = list(
        Judgment.objects.select_for_update()
        .filter(pk__in=ids, task__project=project)
        .exclude(rater=reviewer)
        .order_by("pk")
    )
    if len(judgments) != len(ids):
        raise InvalidInput(
            "Some judgments are not in this project or are your own; nothing was changed.",
            fields={"judgment_ids": ["Unknown, another project's, or your own."]},
        )
    return _decide(judgments, reviewer=reviewer, decision=decision, reason=reason, bulk=True)


def judgments_approve_reliable(
    *, project: Project, reviewer, min_agreement: float, reason: str = ""
) -> int:
    """Approve every pending judgment of raters whose agreement in the latest snapshot is
    at least `min_agreement` and who carry no flag. Returns how many were approved."""
    if not 0 <= min_agreement <= 1:
        raise InvalidInput("min_agreement is a share between 0 and 1.")
    snapshot = selectors.snapshot_latest(project=project)
    if snapshot is None:
        raise InvalidInput("There are no statistics yet; refresh them first.")
    raters = [
        row["rater_id"]
        for row in snapshot.data.get("raters", [])
        if row.get("agreement") is not None
        and row["agreement"] >= min_agreement
        and not row.get("flags")
    ]
    ids = list(
        Judgment.objects.filter(
            task__project=project, rater_id__in=raters, review_status=ReviewStatus.PENDING
        )
        .exclude(rater=reviewer)
        .values_list("pk", flat=True)[:MAX_BULK]
    )
    if not ids:
        return 0
    reason = reason or f"Bulk approval: rater agreement ≥ {min_agreement:.0%} and no flags."
    return judgments_review_bulk(
        project=project, judgment_ids=ids, reviewer=reviewer, decision="approve", reason=reason
    )


@transaction.atomic
def rater_suspend(*, rater, actor, reason, reject_pending: bool = False) -> RaterStatusChange:
    """Suspend a rater: no further tasks, their live leases are withdrawn at once, and
    (if asked) their unreviewed judgments are rejected with the same reason."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Say why the rater is suspended.", fields={"reason": ["Required."]})
    if rater.pk == actor.pk:
        raise NotPermitted("You may not suspend yourself.")
    if is_staff(rater) and not is_staff(actor):
        raise NotPermitted("Only staff may suspend a staff account.")
    profile = rater_profile_get_or_create(user=rater, lock=True)
    if profile.is_suspended:
        raise InvalidInput("This rater is already suspended.")
    reason = reason.strip()[:MAX_REASON]
    now = timezone.now()
    profile.status = RaterProfile.Status.SUSPENDED
    profile.status_reason = reason
    profile.status_changed_at = now
    profile.status_changed_by = actor
    profile.save(
        update_fields=[
            "status",
            "status_reason",
            "status_changed_at",
            "status_changed_by",
            "updated_at",
        ]
    )
    released = assignments_release(rater=rater, reason="your rater account was suspended")
    rejected = 0
    if reject_pending:
        pending = Judgment.objects.select_for_update().filter(
            rater=rater, review_status=ReviewStatus.PENDING
        )
        # Only in the projects this reviewer reviews: others' decisions are not theirs.
        pending = list(
            access.in_scope(pending, user=actor, role=Role.REVIEWER, via="task__project")
        )
        rejected = _decide(
            pending,
            reviewer=actor,
            decision=ReviewDecision.Decision.REJECT,
            reason=f"Rater suspended: {reason}",
            bulk=True,
        )
    return RaterStatusChange.objects.create(
        rater=rater,
        actor=actor,
        action=RaterStatusChange.Action.SUSPEND,
        reason=reason,
        leases_released=released,
        judgments_rejected=rejected,
    )


@transaction.atomic
def rater_reinstate(*, rater, actor, reason) -> RaterStatusChange:
    """Lift a suspension, and reopen work in every project this reviewer reviews whose
    screening the rater failed (the screening is marked passed by this reviewer)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Say why the rater is reinstated.", fields={"reason": ["Required."]})
    if is_staff(rater) and not is_staff(actor):
        raise NotPermitted("Only staff may reinstate a staff account.")
    profile = rater_profile_get_or_create(user=rater, lock=True)
    failed = access.in_scope(
        RaterScreening.objects.filter(rater=rater, state=RaterScreening.State.FAILED),
        user=actor,
        role=Role.REVIEWER,
    )
    if not profile.is_suspended and not failed.exists():
        raise InvalidInput("This rater is neither suspended nor failed in a screening.")
    reason = reason.strip()[:MAX_REASON]
    now = timezone.now()
    profile.status = RaterProfile.Status.ACTIVE
    profile.status_reason = reason
    profile.status_changed_at = now
    profile.status_changed_by = actor
    profile.save(
        update_fields=[
            "status",
            "status_reason",
            "status_changed_at",
            "status_changed_by",
            "updated_at",
        ]
    )
    failed.update(
        state=RaterScreening.State.PASSED,
        decided_by=actor,
        decided_at=now,
        reason=f"Reopened by a reviewer: {reason}",
        updated_at=now,
    )
    return RaterStatusChange.objects.create(
        rater=rater, actor=actor, action=RaterStatusChange.Action.REINSTATE, reason=reason
    )


def quality_snapshot_refresh(*, project_id: int, full: bool = False) -> QualitySnapshot | None:
    """Bring a project's statistics up to date and store them as a new snapshot.

    Incremental by default: the state the last refresh saved (statistics.QualityState,
    under ARTIFACT_ROOT/quality/) takes in the judgments added and the decisions taken
    since, read from the database by id and by decision time. The judgments committed up
    to STATE_LOOKBACK late are read again (and skipped when held), so none is missed. A full
    recompute reads every judgment: when asked (`full`), when there is no state the latest
    snapshot continues, when the last full one is older than FULL_RECOMPUTE_EVERY (edits
    that leave no trace, such as a deleted task, go in then), or when the change cannot be
    applied (statistics.NeedsFullRecompute).

    None when the project is gone, or when another refresh of it is running (its snapshot
    will be as fresh).
    """
    project = Project.objects.select_related("quality_settings").filter(pk=project_id).first()
    if project is None:
        return None
    with _refresh_lock(project.pk) as held:
        return _snapshot_refresh(project, full=full) if held else None


def _snapshot_refresh(project: Project, *, full: bool) -> QualitySnapshot:
    settings_row = selectors.quality_settings(project=project)
    started = time.perf_counter()
    read_at = timezone.now()
    state, meta, mode = None, {}, QualitySnapshot.Mode.FULL
    loaded = None if full else _state_load(project)
    if loaded is not None:
        state, meta = loaded
        try:
            new = reading.judgment_arrays(project=project, after_id=meta["id_floor"])
            since = datetime.fromisoformat(meta["read_at"]) - STATE_LOOKBACK
            reviews = ReviewChanges(**reading.review_changes(project=project, since=since))
            read_done = time.perf_counter()
            judgments_read = state.apply(new, reviews)
            mode = QualitySnapshot.Mode.INCREMENTAL
        except NeedsFullRecompute as reason:
            logger.info("quality of project %s: full recompute (%s)", project.pk, reason)
            state = None
    if state is None:
        arrays = reading.judgment_arrays(project=project)
        read_done = time.perf_counter()
        state = QualityState.build(arrays)
        judgments_read = state.judgments
        meta = {"full_at": read_at.isoformat()}
    options = QualityOptions(min_judgments=settings_row.min_judgments_for_flags)
    data = state.figures(options, names=reading.rater_names(state.arrays.rater_ids))
    computed = time.perf_counter()
    _decorate_raters(project, data["raters"])
    token = secrets.token_hex(8)
    snapshot = QualitySnapshot.objects.create(
        project=project,
        computed_at=timezone.now(),
        read_seconds=read_done - started,
        compute_seconds=computed - read_done,
        judgments=state.judgments,
        mode=mode,
        judgments_read=judgments_read,
        state_token=token,
        data=data,
    )
    reliabilities_store(project=project, raters=data["raters"], now=snapshot.computed_at)
    stale = QualitySnapshot.objects.filter(project=project).order_by("-computed_at", "-pk")[
        SNAPSHOTS_KEPT:
    ]
    QualitySnapshot.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    meta.update(token=token, read_at=read_at.isoformat(), id_floor=_id_floor(state, read_at))
    try:
        state.save(_state_path(project), meta, unchanged=judgments_read == 0)
    except OSError:  # the statistics are stored; the next refresh recomputes in full
        logger.exception("quality of project %s: the state could not be saved", project.pk)
    return snapshot


def reliabilities_store(*, project: Project, raters: list[dict], now) -> int:
    """Keep each rater's consensus weight in `RaterReliability` (dynamic overlap reads it on
    the submit path, where the snapshot's JSON would be too big to load)."""
    rows = [
        RaterReliability(
            project=project, rater_id=row["rater_id"], weight=row["weight"], updated_at=now
        )
        for row in raters
        if row.get("weight") is not None
    ]
    RaterReliability.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["project", "rater"],
        update_fields=["weight", "updated_at"],
        batch_size=1000,
    )
    return len(rows)


def _decorate_raters(project: Project, rows: list[dict]) -> None:
    """Each rater row's screening state and standing, as of now."""
    screenings = dict(
        RaterScreening.objects.filter(project=project).values_list("rater_id", "state")
    )
    suspended = set(
        RaterProfile.objects.filter(status=RaterProfile.Status.SUSPENDED).values_list(
            "user_id", flat=True
        )
    )
    for row in rows:
        row["screening"] = screenings.get(row["rater_id"], "")
        row["suspended"] = row["rater_id"] in suspended


def _state_path(project: Project) -> Path:
    return Path(django_settings.ARTIFACT_ROOT) / "quality" / f"project-{project.pk}.state"


def _state_load(project: Project) -> tuple[QualityState, dict] | None:
    """The saved state, if the latest snapshot was made from it and a full recompute is not
    due; None otherwise."""
    latest = selectors.snapshot_latest(project=project)
    if latest is None or not latest.state_token:
        return None
    loaded = QualityState.load(_state_path(project))
    if loaded is None:
        return None
    state, meta = loaded
    if meta.get("token") != latest.state_token or state.arrays.flag_keys != project.flag_keys[:32]:
        return None
    full_at = datetime.fromisoformat(meta["full_at"])
    if timezone.now() - full_at > FULL_RECOMPUTE_EVERY:
        return None
    return state, meta


def _id_floor(state: QualityState, read_at) -> int:
    """The largest id of a held judgment created STATE_LOOKBACK before this read: the next
    refresh reads the judgments above it (a judgment's id is drawn when its row is written,
    so one committed later than that is still above it)."""
    cutoff = (read_at - STATE_LOOKBACK).timestamp()
    ids = state.arrays.judgment_ids[state.arrays.created < cutoff]
    return int(ids.max()) if ids.size else 0


@contextmanager
def _refresh_lock(project_id: int):
    """One refresh of a project at a time (a PostgreSQL advisory lock, released when the
    refresh ends or its connection closes); yields whether this one holds it."""
    if connection.vendor != "postgresql":
        yield True  # the embedded setup runs one worker
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [REFRESH_LOCK_CLASS, project_id])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [REFRESH_LOCK_CLASS, project_id]
                )


def quality_refresh_request(*, project: Project, full: bool = False) -> None:
    """Ask a worker (queue `default`) to refresh the project's statistics after commit."""
    from apps.quality.tasks import quality_snapshot_refresh_task

    project_id = project.pk
    transaction.on_commit(lambda: quality_snapshot_refresh_task.delay(project_id, full))


def quality_refresh_if_stale(*, project: Project) -> dict:
    """What a reviewer page says about the figures' age, queueing a refresh when they are
    older than the project's bound (at most one queued per bound, however many open it).

    {"snapshot", "age_seconds", "max_age_seconds", "stale", "queued_at"}
    """
    settings_row, _ = ProjectQualitySettings.objects.get_or_create(project=project)
    snapshot = selectors.snapshot_latest(project=project)
    now = timezone.now()
    age = (now - snapshot.computed_at).total_seconds() if snapshot else None
    bound = settings_row.stats_max_age_seconds
    stale = snapshot is None or age > bound
    queued_at = settings_row.refresh_requested_at
    if stale:
        # One page's request stands for a bound's time; a worker that lost it is asked again.
        not_asked = Q(refresh_requested_at__isnull=True) | Q(
            refresh_requested_at__lt=now - timedelta(seconds=bound)
        )
        if snapshot is not None:  # a request the latest snapshot answered is spent
            not_asked |= Q(refresh_requested_at__lt=snapshot.computed_at)
        asked = ProjectQualitySettings.objects.filter(pk=settings_row.pk).filter(not_asked)
        if asked.update(refresh_requested_at=now):
            quality_refresh_request(project=project)
            queued_at = now
    if snapshot is not None and queued_at is not None and queued_at < snapshot.computed_at:
        queued_at = None  # answered already
    return {
        "snapshot": snapshot,
        "age_seconds": age,
        "max_age_seconds": bound,
        "stale": stale,
        "queued_at": queued_at,
    }
