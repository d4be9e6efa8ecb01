"""REST endpoints for reviewers: parse, check the role, call one service, serialize.

Every class here requires the reviewer role somewhere (IsReviewer; anyone else gets 403), and
acts only on the projects the caller reviews: another project, its judgments, tasks and
raters answer 404 (apps/collection/access.py). The overlap settings are changed by the
project's researchers (PATCH needs IsResearcher).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collection import access
from apps.collection.models import Task
from apps.collection.selectors import project_get
from apps.collection.services import project_overlap_update
from apps.core.api import validated
from apps.core.errors import InvalidInput
from apps.core.ids import IdField
from apps.core.permissions import IsResearcher, IsReviewer
from apps.core.roles import Role
from apps.quality import overlap, review_context, selectors, services


def snapshot_summary(snapshot, freshness: dict | None = None) -> dict:
    """The snapshot's age and making; with `freshness` (services.quality_refresh_if_stale),
    whether it is older than the project's bound and when a refresh was queued."""
    summary = {"computed_at": None, "age_seconds": None, "judgments": 0}
    if snapshot is not None:
        summary = {
            "computed_at": snapshot.computed_at,
            "age_seconds": round((timezone.now() - snapshot.computed_at).total_seconds(), 1),
            "judgments": snapshot.judgments,
            "mode": snapshot.mode,
            "judgments_read": snapshot.judgments_read,
            "read_seconds": round(snapshot.read_seconds, 3),
            "compute_seconds": round(snapshot.compute_seconds, 3),
        }
    if freshness is not None:
        summary.update(
            stale=freshness["stale"],
            max_age_seconds=freshness["max_age_seconds"],
            refresh_queued_at=freshness["queued_at"],
        )
    return summary


class ProjectQualityApi(APIView):
    """The project's latest stored statistics, their age, and screening outcomes; asking
    for statistics older than the project's bound queues a refresh (`snapshot.stale`,
    `snapshot.refresh_queued_at`)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        freshness = services.quality_refresh_if_stale(project=project)
        snapshot = freshness["snapshot"]
        settings = selectors.quality_settings(project=project)
        failed = [
            {
                "rater_id": s.rater_id,
                "pseudonym": s.rater.rater_profile.pseudonym,
                "gold_accuracy": s.gold_accuracy,
                "reason": s.reason,
                "decided_at": s.decided_at,
            }
            for s in selectors.screenings_needing_attention(project=project)
        ]
        return Response(
            {
                "project_id": project.pk,
                "snapshot": snapshot_summary(snapshot, freshness),
                "stats": snapshot.data["project"] if snapshot else None,
                "screening": {
                    "size": settings.screening_size,
                    "threshold": settings.screening_threshold,
                    "failed": failed,
                },
            }
        )


class ProjectQualityRefreshApi(APIView):
    """Queue a refresh: incremental, or with {"full": true} a recompute from all judgments."""

    permission_classes = [IsReviewer]

    class RefreshInputSerializer(serializers.Serializer):
        full = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=RefreshInputSerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        data = validated(self.RefreshInputSerializer, request)
        services.quality_refresh_request(project=project, full=data["full"])
        return Response(
            {"queued": True, "project_id": project.pk, "full": data["full"]},
            status=status.HTTP_202_ACCEPTED,
        )


class ProjectRatersApi(APIView):
    """Per-rater measures from the latest snapshot (add ?trend=1 for their trends)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        snapshot = selectors.snapshot_latest(project=project)
        with_trend = request.query_params.get("trend") in {"1", "true", "yes"}
        raters = []
        for row in snapshot.data["raters"] if snapshot else []:
            row = dict(row)
            if not with_trend:
                row.pop("trend", None)
            raters.append(row)
        return Response({"snapshot": snapshot_summary(snapshot), "raters": raters})


class JudgmentDetailApi(APIView):
    """A judgment in context, for the reviewers of its project: the prompt, the completions
    in the order the rater saw them (with their place, Likert score and flags), the
    rationale and time spent, the rater's pseudonym, the gold answer of a gold task, the
    other raters' judgments of the task and the consensus (review_context.py)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, judgment_id: int):
        judgment = selectors.judgment_for_reviewer(judgment_id=judgment_id, user=request.user)
        return Response(review_context.judgment_in_context(judgment=judgment))


class JudgmentReviewApi(APIView):
    permission_classes = [IsReviewer]

    class JudgmentReviewInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["approve", "reject"])
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    class JudgmentReviewOutputSerializer(serializers.Serializer):
        judgment_id = serializers.IntegerField(source="pk")
        review_status = serializers.CharField()
        reviewed_by = serializers.CharField(source="reviewed_by.username")
        reviewed_at = serializers.DateTimeField()
        review_reason = serializers.CharField()

    @extend_schema(request=JudgmentReviewInputSerializer, responses=JudgmentReviewOutputSerializer)
    def post(self, request, judgment_id: int):
        data = validated(self.JudgmentReviewInputSerializer, request)
        selectors.judgment_for_reviewer(judgment_id=judgment_id, user=request.user)
        judgment = services.judgment_review(judgment_id=judgment_id, reviewer=request.user, **data)
        return Response(self.JudgmentReviewOutputSerializer(judgment).data)


class JudgmentBulkReviewApi(APIView):
    permission_classes = [IsReviewer]

    class JudgmentBulkReviewInputSerializer(serializers.Serializer):
        judgment_ids = serializers.ListField(
            child=IdField(), allow_empty=False, max_length=services.MAX_BULK
        )
        decision = serializers.ChoiceField(choices=["approve", "reject"])
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=JudgmentBulkReviewInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        data = validated(self.JudgmentBulkReviewInputSerializer, request)
        updated = services.judgments_review_bulk(project=project, reviewer=request.user, **data)
        return Response({"updated": updated})


class ApproveReliableApi(APIView):
    """Approve the pending judgments of raters at or above an agreement, without flags."""

    permission_classes = [IsReviewer]

    class ApproveReliableInputSerializer(serializers.Serializer):
        min_agreement = serializers.FloatField(min_value=0, max_value=1)
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=ApproveReliableInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        data = validated(self.ApproveReliableInputSerializer, request)
        updated = services.judgments_approve_reliable(
            project=project, reviewer=request.user, **data
        )
        return Response({"updated": updated})


class _StatusChangeOutput(serializers.Serializer):
    rater_id = serializers.IntegerField()
    action = serializers.CharField()
    reason = serializers.CharField()
    leases_released = serializers.IntegerField()
    judgments_rejected = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class RaterSuspendApi(APIView):
    permission_classes = [IsReviewer]

    class RaterSuspendInputSerializer(serializers.Serializer):
        reason = serializers.CharField()
        reject_pending = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=RaterSuspendInputSerializer, responses=_StatusChangeOutput)
    def post(self, request, user_id: int):
        data = validated(self.RaterSuspendInputSerializer, request)
        rater = selectors.rater_for_reviewer(user_id=user_id, user=request.user)
        change = services.rater_suspend(rater=rater, actor=request.user, **data)
        return Response(_StatusChangeOutput(change).data)


class RaterReinstateApi(APIView):
    permission_classes = [IsReviewer]

    class RaterReinstateInputSerializer(serializers.Serializer):
        reason = serializers.CharField()

    @extend_schema(request=RaterReinstateInputSerializer, responses=_StatusChangeOutput)
    def post(self, request, user_id: int):
        data = validated(self.RaterReinstateInputSerializer, request)
        rater = selectors.rater_for_reviewer(user_id=user_id, user=request.user)
        change = services.rater_reinstate(rater=rater, actor=request.user, **data)
        return Response(_StatusChangeOutput(change).data)


class TaskConsensusApi(APIView):
    """The reliability-weighted Bradley–Terry consensus of a task (see selectors)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, task_id: int):
        task = access.object_for(
            Task.objects.all(),
            user=request.user,
            role=Role.REVIEWER,
            pk=task_id,
            missing="No such task, or you do not review its project.",
        )
        return Response(selectors.task_consensus(task_id=task.pk))


def overlap_payload(project) -> dict:
    overview = overlap.overlap_overview(project=project)
    return {
        "settings": {
            "dynamic_overlap": project.dynamic_overlap,
            "overlap": project.overlap,
            "overlap_max": project.overlap_max,
            "confidence_target": project.confidence_target,
            "confidence_measure": CONFIDENCE_MEASURE,
        },
        "summary": {key: value for key, value in overview.items() if key != "recent"},
        "tasks": [
            {
                "task_id": d.task_id,
                "status": d.task.status,
                "judgments": d.judgments,
                "allowance": d.task.overlap,
                "max_overlap": d.task.max_overlap,
                "confidence": round(d.confidence, 4),
                "target": d.target,
                "outcome": d.outcome,
                "order": d.order,
                "reason": d.reason,
                "decided_at": d.created_at,
            }
            for d in overview["recent"]
        ],
    }


CONFIDENCE_MEASURE = (
    "Posterior probability, under each rater's measured reliability, that the consensus has "
    "every adjacent pair of its order the right way round (the weakest pair counts)."
)


class ProjectOverlapApi(APIView):
    """Dynamic overlap: the project's settings, what it saved, and each task's latest
    confidence with the reason for its last extra slot or completion. The project's
    reviewers read it (GET); its researchers change the settings (PATCH, which answers with
    the same body). Raters never see any of it."""

    def get_permissions(self):
        return [IsResearcher()] if self.request.method == "PATCH" else [IsReviewer()]

    class InputSerializer(serializers.Serializer):
        # Checked by the service, which names the field and changes nothing on a bad value.
        dynamic_overlap = serializers.JSONField(required=False)
        overlap = serializers.JSONField(required=False)
        overlap_max = serializers.JSONField(required=False)
        confidence_target = serializers.JSONField(required=False)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
        return Response(overlap_payload(project))

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def patch(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        if not isinstance(request.data, dict):
            raise InvalidInput("Expected an object of settings.")
        project_overlap_update(project=project, **dict(request.data))
        return Response(overlap_payload(project))
