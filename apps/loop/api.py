"""Researcher REST endpoints: start, watch, cancel and retry rounds; read and download snapshots."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collection.models import PolicyVersion
from apps.collection.selectors import project_get
from apps.core.api import validated
from apps.core.errors import InvalidInput, NotFound
from apps.core.ids import IdField
from apps.core.permissions import IsResearcher
from apps.core.roles import Role
from apps.loop import exports, selectors, services
from apps.loop.config import PRESETS
from apps.loop.snapshots import snapshot_folder


class RoundOutputSerializer(serializers.Serializer):
    """The round as the page sees it (see selectors.round_detail)."""

    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    number = serializers.IntegerField()
    stage = serializers.CharField()
    message = serializers.CharField()
    config = serializers.JSONField()
    start_policy = serializers.JSONField()
    produced_policy = serializers.JSONField(allow_null=True)
    snapshot_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    stages = serializers.JSONField()
    actions = serializers.JSONField(help_text="Which of cancel, retry, move_on may act now.")
    runs = serializers.JSONField()
    ab_evaluation = serializers.JSONField()


def _round_response(training_round, code=status.HTTP_200_OK) -> Response:
    body = RoundOutputSerializer(selectors.round_detail(training_round=training_round)).data
    return Response(body, status=code)


class RoundCreateApi(APIView):
    permission_classes = [IsResearcher]

    class InputSerializer(serializers.Serializer):
        start_policy_id = IdField(required=False, allow_null=True, default=None)
        preset = serializers.ChoiceField(choices=[""] + sorted(PRESETS), required=False, default="")
        config = serializers.JSONField(required=False, default=dict)

    @extend_schema(request=InputSerializer, responses={201: RoundOutputSerializer})
    def post(self, request, project_id: int):
        data = validated(self.InputSerializer, request)
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        start_policy = None
        if data["start_policy_id"] is not None:
            start_policy = PolicyVersion.objects.filter(
                pk=data["start_policy_id"], project=project
            ).first()
            if start_policy is None:
                raise InvalidInput(
                    "No such policy in this project.",
                    fields={"start_policy_id": ["Not a policy of this project."]},
                )
        training_round = services.round_start(
            project=project,
            user=request.user,
            start_policy=start_policy,
            preset=data["preset"],
            config=data["config"],
        )
        return _round_response(training_round, status.HTTP_201_CREATED)


class RoundListApi(APIView):
    permission_classes = [IsResearcher]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        number = serializers.IntegerField()
        stage = serializers.CharField()
        message = serializers.CharField()
        start_policy_id = serializers.IntegerField()
        snapshot_id = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        rounds = selectors.rounds_list(project=project)
        return Response(self.OutputSerializer(rounds, many=True).data)


class RoundsApi(RoundListApi, RoundCreateApi):
    """GET lists a project's rounds, POST starts the next one (two operations, one URL)."""


class RoundDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=RoundOutputSerializer)
    def get(self, request, round_id: int):
        return _round_response(selectors.round_get(round_id=round_id, user=request.user))


class RoundCancelApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=RoundOutputSerializer)
    def post(self, request, round_id: int):
        training_round = selectors.round_get(round_id=round_id, user=request.user)
        return _round_response(
            services.round_cancel(training_round=training_round, user=request.user)
        )


class RoundRetryApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=RoundOutputSerializer)
    def post(self, request, round_id: int):
        training_round = selectors.round_get(round_id=round_id, user=request.user)
        return _round_response(
            services.round_retry(training_round=training_round, user=request.user)
        )


class RoundMoveOnApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=RoundOutputSerializer)
    def post(self, request, round_id: int):
        training_round = selectors.round_get(round_id=round_id, user=request.user)
        services.round_move_on(training_round=training_round, user=request.user)
        return _round_response(selectors.round_get(round_id=round_id, user=request.user))


class SnapshotDetailApi(APIView):
    permission_classes = [IsResearcher]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        uid = serializers.CharField()
        project_id = serializers.IntegerField()
        created_at = serializers.DateTimeField()
        manifest_sha256 = serializers.CharField()
        row_counts = serializers.JSONField()
        data_card = serializers.JSONField()
        manifest = serializers.JSONField()
        files = serializers.SerializerMethodField()

        def get_files(self, snapshot) -> list[dict]:
            request = self.context["request"]
            names = exports.FILES
            return [
                {
                    "name": name,
                    "url": request.build_absolute_uri(f"/api/snapshots/{snapshot.pk}/files/{name}"),
                    **snapshot.manifest.get("files", {}).get(name, {}),
                }
                for name in names
            ]

    @extend_schema(responses=OutputSerializer)
    def get(self, request, snapshot_id: int):
        snapshot = selectors.snapshot_get(snapshot_id=snapshot_id, user=request.user)
        return Response(self.OutputSerializer(snapshot, context={"request": request}).data)


class SnapshotFileApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses={200: OpenApiResponse(description="The file (JSONL or JSON).")})
    def get(self, request, snapshot_id: int, name: str):
        return snapshot_file_response(snapshot_id=snapshot_id, name=name, user=request.user)


def snapshot_file_response(*, snapshot_id: int, name: str, user) -> FileResponse:
    snapshot = selectors.snapshot_get(snapshot_id=snapshot_id, user=user)
    if name not in exports.FILES:
        raise NotFound(f"A snapshot has no file {name!r}.")
    path = snapshot_folder(snapshot) / name
    if not path.is_file():
        raise NotFound(f"{name} of snapshot {snapshot.pk} is missing on disk.")
    content_type = "application/json" if name.endswith(".json") else "application/x-ndjson"
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"snapshot-{snapshot.pk}-{name}",
        content_type=content_type,
    )


class PolicyLineageApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=OpenApiResponse(description="Policies with lineage and win rates."))
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        return Response(selectors.policy_lineage(project=project))
