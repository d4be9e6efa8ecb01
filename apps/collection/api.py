"""REST endpoints for raters: parse, check access, call one service, serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collection import leasing, selectors, services
from apps.collection.models import Project
from apps.core.api import validated
from apps.core.permissions import IsLabeler


class ProjectListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Project
            fields = [
                "id",
                "name",
                "slug",
                "description",
                "k",
                "overlap",
                "lease_seconds",
                "flag_set",
                "likert_enabled",
                "rationale_max_length",
                "guidelines_version",
            ]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        projects = selectors.projects_for_user(user=request.user)
        return Response(self.OutputSerializer(projects, many=True).data)


class _PromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class _CompletionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class AssignmentOutputSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["ranking", "demonstration", "evaluation"])
    prompt = _PromptSerializer()
    completions = _CompletionSerializer(many=True)
    lease_expires_at = serializers.DateTimeField()
    status = serializers.CharField()


_lease_time = serializers.DateTimeField()


def assignment_payload(view: dict) -> dict:
    """`AssignmentOutputSerializer`'s output, built directly: the view is already plain data,
    and running the serializer over it cost a tenth of a `next` call."""
    return {**view, "lease_expires_at": _lease_time.to_representation(view["lease_expires_at"])}


class RaterApi(APIView):
    """The raters' hot path (`next`, answers, skips) speaks JSON only: choosing between JSON
    and the browsable API on every call cost about 3% of its CPU. The rest of the API keeps
    the browsable pages."""

    permission_classes = [IsLabeler]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]


class AssignmentNextApi(RaterApi):
    @extend_schema(
        request=None,
        responses={200: AssignmentOutputSerializer, 204: OpenApiResponse(description="No task")},
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_labeler(project_id=project_id, user=request.user)
        assignment = leasing.assignment_next(project=project, rater=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(assignment_payload(selectors.assignment_view(assignment=assignment)))


class AssignmentDetailApi(RaterApi):
    @extend_schema(responses=AssignmentOutputSerializer)
    def get(self, request, assignment_id: int):
        assignment = selectors.assignment_get_for_rater(
            assignment_id=assignment_id, rater=request.user
        )
        return Response(assignment_payload(selectors.assignment_view(assignment=assignment)))


class _SubmitOutputSerializer(serializers.Serializer):
    judgment_id = serializers.IntegerField()


class JudgmentSubmitApi(RaterApi):
    class InputSerializer(serializers.Serializer):
        ranking = serializers.JSONField(help_text="Best-first groups of completion ids.")
        likert = serializers.JSONField(required=False, default=dict)
        flags = serializers.JSONField(required=False, default=dict)
        rationale = serializers.CharField(
            required=False, allow_blank=True, default="", trim_whitespace=False
        )
        time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)
        both_bad = serializers.BooleanField(required=False, default=False)
        client_key = serializers.UUIDField()

    @extend_schema(
        request=InputSerializer,
        responses={200: _SubmitOutputSerializer, 201: _SubmitOutputSerializer},
    )
    def post(self, request, assignment_id: int):
        data = validated(self.InputSerializer, request)
        judgment, created = services.judgment_submit(
            assignment_id=assignment_id, rater=request.user, **data
        )
        return Response(
            {"judgment_id": judgment.pk},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DemonstrationSubmitApi(RaterApi):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(allow_blank=True, trim_whitespace=False)
        time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)
        client_key = serializers.UUIDField()

    class OutputSerializer(serializers.Serializer):
        demonstration_id = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer}
    )
    def post(self, request, assignment_id: int):
        data = validated(self.InputSerializer, request)
        demonstration, created = services.demonstration_submit(
            assignment_id=assignment_id, rater=request.user, **data
        )
        return Response(
            {"demonstration_id": demonstration.pk},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AssignmentSkipApi(RaterApi):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        assignment_id = serializers.IntegerField()
        status = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, assignment_id: int):
        data = validated(self.InputSerializer, request)
        assignment = services.assignment_skip(
            assignment_id=assignment_id, rater=request.user, reason=data["reason"]
        )
        return Response({"assignment_id": assignment.pk, "status": assignment.status})
