"""Reads of rater quality: judgments as arrays, the latest statistics, consensus."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from apps.collection import access
from apps.collection.models import (
    Assignment,
    Judgment,
    Project,
    ProjectMembership,
    ReviewStatus,
    Task,
    TaskCompletion,
)
from apps.core.errors import NotFound
from apps.core.roles import Role, is_staff
from apps.quality import agreement as ag
from apps.quality.measures import JudgmentArrays, consensus_scores
from apps.quality.models import (
    ProjectQualitySettings,
    QualitySnapshot,
    RaterScreening,
    RaterStatusChange,
    ReviewDecision,
)
from apps.quality.reading import RANKED_KINDS, judgment_arrays  # the readers: reading.py


def quality_settings(*, project: Project) -> ProjectQualitySettings:
    """The project's settings row, or unsaved defaults (no screening) when it has none.

    A project read with `select_related("quality_settings")` answers without a query.
    """
    try:
        return project.quality_settings
    except ProjectQualitySettings.DoesNotExist:
        return ProjectQualitySettings(project=project)


def snapshot_latest(*, project: Project) -> QualitySnapshot | None:
    return QualitySnapshot.objects.filter(project=project).order_by("-computed_at", "-pk").first()


def rater_weights(*, project: Project) -> dict[int, float]:
    """Each rater's consensus weight from the latest snapshot (absent: weight 1)."""
    snapshot = snapshot_latest(project=project)
    if snapshot is None:
        return {}
    return {
        row["rater_id"]: row["weight"]
        for row in snapshot.data.get("raters", [])
        if row.get("weight") is not None
    }


def project_consensus(*, project: Project, task_ids: list[int] | None = None) -> dict[int, dict]:
    """`task_consensus` for many tasks of a project at once (one read, one batched fit)."""
    arrays = (
        judgment_arrays(project=project)
        if task_ids is None
        else judgment_arrays(task_ids=list(task_ids))
    )
    return _consensus_from_arrays(arrays, rater_weights(project=project))


def task_consensus(*, task_id: int) -> dict:
    """The consensus of one task's raters, for reviewers and the export stage.

    A Bradley–Terry model (Bradley & Terry 1952) fitted to every pairwise outcome the task's
    judgments imply, each judgment weighted by its rater's reliability (log-odds of agreeing
    with the other raters, from the latest quality snapshot; weight 1 before there is one).
    Rejected judgments are left out. Returns:

        {"task_id": int,
         "completion_ids": [int, ...]           canonical order,
         "scores": {completion_id: float}       log-strengths, mean 0,
         "ranking": [[completion_id, ...], ...] best-first groups (equal scores tie),
         "p_prefer": {i: {j: P(i ≻ j)}}          soft labels σ(s_i − s_j), i ≠ j,
         "judgments": int, "raters": int, "weight": float  (total rater weight used)}

    With no judgments, every score is 0 and every P(i ≻ j) is ½.
    """
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise NotFound("No such task.")
    if task.kind not in RANKED_KINDS:
        raise NotFound("This task has no completions to rank, so it has no consensus.")
    arrays = judgment_arrays(task_ids=[task_id])
    return _consensus_from_arrays(arrays, rater_weights(project=task.project))[task_id]


def _consensus_from_arrays(arrays: JudgmentArrays, weights_by_id: dict[int, float]) -> dict:
    weight = np.array([weights_by_id.get(int(pk), 1.0) for pk in arrays.rater_ids])
    scores = consensus_scores(arrays, weight) if arrays.n_tasks else np.zeros((0, 0))
    slots = defaultdict(list)
    for task_id, completion_id in (
        TaskCompletion.objects.filter(task_id__in=arrays.task_ids.tolist())
        .order_by("task_id", "position")
        .values_list("task_id", "completion_id")
    ):
        slots[task_id].append(completion_id)
    used = arrays.included
    judgments = np.bincount(arrays.task[used], minlength=arrays.n_tasks)
    total_weight = np.bincount(
        arrays.task[used], weights=weight[arrays.rater[used]], minlength=arrays.n_tasks
    )
    raters = defaultdict(set)
    for t, r in zip(arrays.task[used].tolist(), arrays.rater[used].tolist(), strict=True):
        raters[t].add(r)
    result = {}
    for t, task_id in enumerate(arrays.task_ids.tolist()):
        ids = slots[task_id]
        task_scores = scores[t, : len(ids)] if len(ids) else np.zeros(0)
        probabilities = ag.preference_probabilities(task_scores)
        result[task_id] = {
            "task_id": task_id,
            "completion_ids": ids,
            "scores": {cid: round(float(s), 6) for cid, s in zip(ids, task_scores, strict=True)},
            "ranking": [[ids[i] for i in group] for group in ag.scores_to_groups(task_scores)],
            "p_prefer": {
                a: {b: round(float(probabilities[i, j]), 6) for j, b in enumerate(ids) if i != j}
                for i, a in enumerate(ids)
            },
            "judgments": int(judgments[t]),
            "raters": len(raters[t]),
            "weight": round(float(total_weight[t]), 4),
        }
    return result


def screening_for(*, project: Project, rater) -> RaterScreening | None:
    return RaterScreening.objects.filter(project=project, rater=rater).first()


def screenings_needing_attention(*, project: Project) -> QuerySet[RaterScreening]:
    return RaterScreening.objects.filter(
        project=project, state=RaterScreening.State.FAILED
    ).select_related("rater__rater_profile")


def review_queue(
    *, project: Project, status: str = ReviewStatus.PENDING, rater_id: int | None = None
) -> QuerySet[Judgment]:
    """Judgments of the project awaiting (or past) review, oldest first."""
    judgments = Judgment.objects.filter(task__project=project, rater__isnull=False)
    if status:
        judgments = judgments.filter(review_status=status)
    if rater_id is not None:
        judgments = judgments.filter(rater_id=rater_id)
    return judgments.select_related("rater__rater_profile", "task__prompt", "reviewed_by").order_by(
        "created_at", "pk"
    )


def rater_judgments_with_consensus(*, project: Project, rater, limit: int = 50) -> list[dict]:
    """The rater's latest judgments on regular tasks beside the consensus of all raters,
    with the comparisons where they differ."""
    judgments = list(
        Judgment.objects.filter(task__project=project, rater=rater, task__is_gold=False)
        .select_related("task__prompt")
        .order_by("-created_at", "-pk")[:limit]
    )
    consensus = project_consensus(project=project, task_ids=[j.task_id for j in judgments])
    texts = dict(
        TaskCompletion.objects.filter(task_id__in=[j.task_id for j in judgments]).values_list(
            "completion_id", "completion__text"
        )
    )
    rows = []
    for judgment in judgments:
        agreed = consensus.get(judgment.task_id)
        ids = agreed["completion_ids"] if agreed else []
        own = ag.ranking_to_positions(judgment.ranking, ag.slot_index(ids), len(ids))
        theirs = np.array(
            [next(g for g, group in enumerate(agreed["ranking"]) if cid in group) for cid in ids]
            if agreed
            else [],
            dtype=np.int8,
        )
        disagreements = []
        if len(ids) >= 2:
            first, second = ag.slot_pairs(len(ids))
            for a, b in zip(first.tolist(), second.tolist(), strict=True):
                mine, consensus_sign = np.sign(own[b] - own[a]), np.sign(theirs[b] - theirs[a])
                if mine != consensus_sign and consensus_sign != 0:
                    winner, loser = (ids[a], ids[b]) if consensus_sign > 0 else (ids[b], ids[a])
                    disagreements.append(
                        {
                            "consensus_prefers": winner,
                            "over": loser,
                            "p": agreed["p_prefer"][winner][loser],
                            "rater_said": "tie" if mine == 0 else "the other way",
                        }
                    )
        rows.append(
            {
                "judgment": judgment,
                "ranking": judgment.ranking,
                "consensus": agreed["ranking"] if agreed else [],
                "consensus_judgments": agreed["judgments"] if agreed else 0,
                "disagreements": disagreements,
                "texts": texts,
                "tau_b": ag.kendall_tau_b(own, theirs) if len(ids) >= 2 else None,
            }
        )
    return rows


# --- scope: what a reviewer may act on (apps/collection/access.py) -------------------------


def judgment_for_reviewer(*, judgment_id: int, user) -> Judgment:
    """The judgment if its project is one `user` reviews; NotFound otherwise."""
    return access.object_for(
        Judgment.objects.select_related("task", "reviewed_by"),
        user=user,
        role=Role.REVIEWER,
        pk=judgment_id,
        via="task__project",
        missing="No such judgment, or you do not review its project.",
    )


def raters_in_scope(*, user) -> QuerySet:
    """Accounts a reviewer may act on: every account for staff; otherwise the labelers of
    the projects they review (members, or anyone who took a task there)."""
    users = get_user_model().objects.all()
    if is_staff(user):
        return users
    reviewed = access.projects_for(user=user, role=Role.REVIEWER).values("pk")
    member = ProjectMembership.objects.filter(
        user_id=OuterRef("pk"), project__in=reviewed, role=Role.LABELER
    )
    worked = Assignment.objects.filter(rater_id=OuterRef("pk"), task__project__in=reviewed)
    return users.filter(Exists(member) | Exists(worked))


def rater_for_reviewer(*, user_id: int, user):
    """The account `user_id` if `user` may act on it as a reviewer; NotFound otherwise."""
    rater = raters_in_scope(user=user).filter(pk=user_id).first()
    if rater is None:
        raise NotFound("No such rater, or not one who works on your projects.")
    return rater


def projects_with_pending_reviews(*, user) -> QuerySet[Project]:
    """The projects `user` reviews, by name, each with `.pending`: judgments awaiting review."""
    return (
        access.projects_for(user=user, role=Role.REVIEWER)
        .annotate(
            pending=Count(
                "tasks__judgments", filter=Q(tasks__judgments__review_status=ReviewStatus.PENDING)
            )
        )
        .order_by("name")
    )


def pending_reviews_count(*, project: Project, rater=None) -> int:
    """Judgments of the project (of one rater, when given) awaiting review."""
    pending = Judgment.objects.filter(task__project=project, review_status=ReviewStatus.PENDING)
    return (pending.filter(rater=rater) if rater is not None else pending).count()


def rater_status_changes(*, rater, limit: int) -> QuerySet[RaterStatusChange]:
    """The rater's latest suspensions and reinstatements, newest first, with who made them."""
    return RaterStatusChange.objects.filter(rater=rater).select_related("actor")[:limit]


def review_decisions_recent(*, project: Project, limit: int) -> QuerySet[ReviewDecision]:
    """The project's latest review decisions, newest first, with their reviewers."""
    return ReviewDecision.objects.filter(judgment__task__project=project).select_related(
        "reviewer"
    )[:limit]
