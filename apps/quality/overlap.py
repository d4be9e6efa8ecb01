"""Dynamic overlap, the quality side: is the consensus sure enough of a full task's order?

`task_slot_decide` is the slot decider collection calls (`apps/collection/allowance.py`) on
the submit that fills a dynamic-overlap task's allowance, inside that transaction with the
task row locked. It reads the task's judgments with their raters' weights (one statement),
computes the posterior of every adjacent pair of the consensus order (`confidence.py`), and
records the decision with its reason. Quick by construction: at most `max_overlap` rankings
of at most 9 items, and two statements on the database. `overlap_overview` is the read
reviewers and researchers get.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.db import connection
from django.db.models import Count, Max, Subquery, Sum

from apps.collection.allowance import FullTask
from apps.collection.models import Judgment, Project, ReviewStatus, Task
from apps.core import sql
from apps.quality.confidence import PRIOR_WEIGHT, OrderConfidence, order_confidence
from apps.quality.models import OverlapDecision, RaterReliability


def _judgments_with_weights(task_id: int, project_id: int) -> tuple[list, list[float], float]:
    """The task's rankings (rejected ones left out), each rater's weight (the prior where the
    statistics have not measured them yet) and the project's confidence target."""
    query = f"""
        SELECT j.ranking, COALESCE(w.weight, %s), p.confidence_target
        FROM {sql.table(Judgment)} j
        JOIN {sql.table(Project)} p ON p.id = %s
        LEFT JOIN {sql.table(RaterReliability)} w
          ON w.project_id = p.id AND w.rater_id = j.rater_id
        WHERE j.task_id = %s AND j.review_status <> %s
        ORDER BY j.id"""
    with connection.cursor() as cursor:
        cursor.execute(query, [PRIOR_WEIGHT, project_id, task_id, ReviewStatus.REJECTED])
        rows = cursor.fetchall()
    if not rows:
        target = Project.objects.filter(pk=project_id).values_list("confidence_target", flat=True)
        return [], [], float(target.first() or 0.9)
    rankings = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
    return rankings, [float(r[1]) for r in rows], float(rows[0][2])


def decision_reason(result: OrderConfidence, target: float, outcome: str, full: FullTask) -> str:
    """What a reviewer reads beside the decision."""
    sure = result.describe()
    if outcome == OverlapDecision.Outcome.COMPLETE:
        return f"Complete: {sure}; the target is {target:.0%}."
    if outcome == OverlapDecision.Outcome.EXTEND:
        return (
            f"One more rater ({full.submitted + 1} of at most {full.max_overlap}): {sure}, "
            f"below the target of {target:.0%}."
        )
    return (
        f"Complete at the maximum of {full.max_overlap} raters: {sure}, below the target of "
        f"{target:.0%}."
    )


def task_slot_decide(full: FullTask, now: datetime) -> bool:
    """Collection's slot decider: True when the task should get one more rater."""
    rankings, weights, target = _judgments_with_weights(full.task_id, full.project_id)
    ids = sorted({cid for ranking in rankings for group in ranking for cid in group})
    result = order_confidence(rankings, weights, ids)
    if result.confidence >= target:
        outcome = OverlapDecision.Outcome.COMPLETE
    elif full.can_extend:
        outcome = OverlapDecision.Outcome.EXTEND
    else:
        outcome = OverlapDecision.Outcome.LIMIT
    sql.insert(
        OverlapDecision(
            task_id=full.task_id,
            project_id=full.project_id,
            judgments=full.submitted,
            confidence=result.confidence,
            target=target,
            outcome=outcome,
            order=result.order,
            reason=decision_reason(result, target, outcome, full),
            created_at=now,
        )
    )
    return outcome == OverlapDecision.Outcome.EXTEND


# reads -------------------------------------------------------------------------------------


def overlap_overview(*, project: Project, limit: int = 50) -> dict:
    """Dynamic overlap in a project, for reviewers: what it saved and each task's confidence.

    "Saved" counts, over completed dynamic-overlap tasks, the judgments that fixed overlap
    at the project's maximum would have taken beyond the ones spent. Tasks list the latest
    decision of each (the most recent first), with the consensus's confidence and reason.
    """
    dynamic = Task.objects.filter(project=project, max_overlap__isnull=False)
    complete = dynamic.filter(status=Task.Status.COMPLETE)
    spent = Judgment.objects.filter(task__in=complete).count()
    ceiling = complete.aggregate(total=Sum("max_overlap"))["total"] or 0
    finished = complete.count()
    latest = (
        OverlapDecision.objects.filter(project=project)
        .values("task_id")
        .annotate(last=Max("pk"))
        .values("last")
    )
    decisions = list(
        OverlapDecision.objects.filter(pk__in=Subquery(latest))
        .select_related("task__prompt")
        .order_by("-created_at", "-pk")[:limit]
    )
    outcomes = dict(
        OverlapDecision.objects.filter(pk__in=Subquery(latest))
        .values_list("outcome")
        .annotate(n=Count("pk"))
    )
    return {
        "enabled": project.dynamic_overlap,
        "tasks": dynamic.count(),
        "open": dynamic.filter(status=Task.Status.OPEN).count(),
        "complete": finished,
        "judgments": spent,
        "per_task": round(spent / finished, 3) if finished else None,
        "fixed_at_max": ceiling,
        "saved": ceiling - spent,
        "extended": OverlapDecision.objects.filter(
            project=project, outcome=OverlapDecision.Outcome.EXTEND
        )
        .values("task_id")
        .distinct()
        .count(),
        "by_latest_outcome": {o: outcomes.get(o, 0) for o in OverlapDecision.Outcome.values},
        "recent": decisions,
    }
