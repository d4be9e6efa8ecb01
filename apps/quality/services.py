"""Writes of rater quality: review decisions, suspensions, screening overrides, snapshots.

Every decision writes its audit row in the same transaction as the change it records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.accounts.services import rater_profile_get_or_create
from apps.collection import access
from apps.collection.models import Judgment, Project, ReviewStatus
from apps.collection.services import assignments_release
from apps.core.errors import InvalidInput, NotFound, NotPermitted
from apps.core.roles import Role, is_staff
from apps.quality import selectors
from apps.quality.measures import QualityOptions, compute_quality
from apps.quality.models import (
    QualitySnapshot,
    RaterReliability,
    RaterScreening,
    RaterStatusChange,
    ReviewDecision,
)

MAX_REASON = 2000
MAX_BULK = 5000
SNAPSHOTS_KEPT = 200
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


def quality_snapshot_refresh(*, project_id: int) -> QualitySnapshot | None:
    """Recompute a project's statistics and store them; None if the project is gone."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    settings = selectors.quality_settings(project=project)
    started = time.perf_counter()
    arrays = selectors.judgment_arrays(project=project)
    read_done = time.perf_counter()
    data = compute_quality(arrays, QualityOptions(min_judgments=settings.min_judgments_for_flags))
    computed = time.perf_counter()
    screenings = dict(
        selectors.RaterScreening.objects.filter(project=project).values_list("rater_id", "state")
    )
    suspended = set(
        RaterProfile.objects.filter(status=RaterProfile.Status.SUSPENDED).values_list(
            "user_id", flat=True
        )
    )
    for row in data["raters"]:
        row["screening"] = screenings.get(row["rater_id"], "")
        row["suspended"] = row["rater_id"] in suspended
    snapshot = QualitySnapshot.objects.create(
        project=project,
        computed_at=timezone.now(),
        read_seconds=read_done - started,
        compute_seconds=computed - read_done,
        judgments=int(arrays.task.shape[0]),
        data=data,
    )
    reliabilities_store(project=project, raters=data["raters"], now=snapshot.computed_at)
    stale = QualitySnapshot.objects.filter(project=project).order_by("-computed_at", "-pk")[
        SNAPSHOTS_KEPT:
    ]
    QualitySnapshot.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
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


def quality_refresh_request(*, project: Project) -> None:
    """Ask a worker (queue `default`) to recompute the project's statistics after commit."""
    from apps.quality.tasks import quality_snapshot_refresh_task

    project_id = project.pk
    transaction.on_commit(lambda: quality_snapshot_refresh_task.delay(project_id))
