"""REST endpoints for raters: parse, check access, call one service, serialize."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collection import access, leasing, selectors, services
from apps.collection.models import Project
from apps.core.api import validated
from apps.core.errors import InvalidInput
from apps.core.parsers import JSONParser
from apps.core.permissions import IsLabeler, IsResearcher
from apps.core.roles import ROLE_CHOICES, Role


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
                "is_active",
                "roles",
            ]

        roles = serializers.ListField(
            child=serializers.ChoiceField(choices=ROLE_CHOICES),
            help_text="Your roles in this project.",
        )

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        projects = selectors.projects_for_user(user=request.user)
        return Response(self.OutputSerializer(projects, many=True).data)


class _MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    created_at = serializers.DateTimeField()


class ProjectMembersApi(APIView):
    """A project's members and their roles: researchers of the project and staff manage them
    (anyone else: 404 for the project). Adding a member twice changes nothing; removing a
    labeler withdraws their live leases in the project."""

    permission_classes = [IsResearcher]

    class AddInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=ROLE_CHOICES)

    class RemoveOutputSerializer(serializers.Serializer):
        removed = serializers.IntegerField()
        leases_released = serializers.IntegerField()

    def _project(self, request, project_id: int):
        return selectors.project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)

    @extend_schema(responses=_MemberSerializer(many=True))
    def get(self, request, project_id: int):
        members = access.members_of(project=self._project(request, project_id))
        return Response(_MemberSerializer(members, many=True).data)

    @extend_schema(
        request=AddInputSerializer, responses={201: _MemberSerializer, 200: _MemberSerializer}
    )
    def post(self, request, project_id: int):
        project = self._project(request, project_id)
        data = validated(self.AddInputSerializer, request)
        membership, created = services.membership_add(
            project=project,
            user=_user_named(data["username"]),
            role=data["role"],
            added_by=request.user,
        )
        return Response(
            _MemberSerializer(membership).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("username", str, required=True, description="The member."),
            OpenApiParameter(
                "role",
                str,
                enum=[role.value for role in Role],
                description="The role to take away; all of the member's roles when absent.",
            ),
        ],
        responses={200: RemoveOutputSerializer},
    )
    def delete(self, request, project_id: int):
        project = self._project(request, project_id)
        params = _valid_query(self.AddInputSerializer, request, partial_role=True)
        removed, released = services.membership_remove(
            project=project, user=_user_named(params["username"]), role=params.get("role")
        )
        return Response({"removed": removed, "leases_released": released})


def _user_named(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput("No such user.", fields={"username": [f"No user {username!r}."]})
    return user


def _valid_query(serializer_class, request, *, partial_role: bool) -> dict:
    """The query string validated by `serializer_class` (role optional when `partial_role`)."""
    serializer = serializer_class(data=request.query_params.dict())
    if partial_role:
        serializer.fields["role"].required = False
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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
