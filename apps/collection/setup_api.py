"""REST endpoints for setting up a project: create, read and edit it; upload prompts,
preference data and gold items; follow an upload's job. Researchers of the project and staff
(creating one: any holder of the researcher role); a labeler gets 403.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collection import access, projects, uploads
from apps.collection.api import ProjectListApi
from apps.collection.models import TASK_KINDS, ImportJob, Project
from apps.collection.screening import screening
from apps.collection.selectors import project_get
from apps.core.errors import InvalidInput, NotFound
from apps.core.permissions import IsResearcher
from apps.core.roles import Role


class _Screening(serializers.Serializer):
    size = serializers.IntegerField(required=False, help_text="Gold tasks before regular work.")
    threshold = serializers.FloatField(required=False, help_text="Share of gold pairs to match.")
    min_judgments_for_flags = serializers.IntegerField(required=False)
    stats_max_age_seconds = serializers.IntegerField(required=False)


class ProjectSettingsInput(serializers.Serializer):
    """Every field optional on PATCH; `name` required on POST. Bounds in collection/projects.py."""

    name = serializers.CharField(required=False, trim_whitespace=False)
    slug = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    guidelines = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Markdown."
    )
    k = serializers.IntegerField(required=False)
    overlap = serializers.IntegerField(
        required=False, help_text="Raters per task (with dynamic overlap: where a task starts)."
    )
    dynamic_overlap = serializers.BooleanField(
        required=False, help_text="Add raters only while the consensus is unsure (off)."
    )
    overlap_max = serializers.IntegerField(
        required=False, help_text="Dynamic overlap: the most raters a task may get (1-15)."
    )
    confidence_target = serializers.FloatField(
        required=False, help_text="Dynamic overlap: complete at this confidence (0.5-0.999)."
    )
    lease_seconds = serializers.IntegerField(required=False)
    gold_rate = serializers.FloatField(required=False)
    likert_enabled = serializers.BooleanField(required=False)
    rationale_max_length = serializers.IntegerField(required=False)
    open_to_all_labelers = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    task_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=list(TASK_KINDS)), required=False
    )
    flag_set = serializers.ListField(child=serializers.DictField(), required=False)
    screening = _Screening(required=False)


def project_settings(project: Project) -> dict:
    return {
        "id": project.pk,
        "name": project.name,
        "slug": project.slug,
        "description": project.description,
        "guidelines": project.guidelines,
        "guidelines_version": project.guidelines_version,
        "k": project.k,
        "overlap": project.overlap,
        "dynamic_overlap": project.dynamic_overlap,
        "overlap_max": project.overlap_max,
        "confidence_target": project.confidence_target,
        "lease_seconds": project.lease_seconds,
        "gold_rate": project.gold_rate,
        "likert_enabled": project.likert_enabled,
        "rationale_max_length": project.rationale_max_length,
        "open_to_all_labelers": project.open_to_all_labelers,
        "is_active": project.is_active,
        "task_kinds": project.task_kinds,
        "flag_set": project.flag_set,
        "screening": screening().settings_read(project=project),
    }


def _settings_input(request) -> dict:
    serializer = ProjectSettingsInput(data=request.data)
    serializer.is_valid(raise_exception=True)
    unknown = set(request.data) - set(ProjectSettingsInput().fields)
    if unknown:
        raise InvalidInput(
            "Unknown settings; nothing was saved.",
            fields={name: ["Not a project setting."] for name in sorted(unknown)},
        )
    return serializer.validated_data


class ProjectsApi(ProjectListApi):
    """GET: the projects you may work on (any logged-in user). POST: a new project (the
    researcher role or staff); you become its researcher."""

    parser_classes = [JSONParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsResearcher()]
        return [IsAuthenticated()]

    @extend_schema(request=ProjectSettingsInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        project = projects.project_create(user=request.user, values=_settings_input(request))
        return Response(project_settings(project), status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """A project's settings (GET) and changing them (PATCH: only the fields given)."""

    permission_classes = [IsResearcher]
    parser_classes = [JSONParser]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        return Response(project_settings(project))

    @extend_schema(request=ProjectSettingsInput, responses=OpenApiTypes.OBJECT)
    def patch(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        project = projects.project_update(project=project, values=_settings_input(request))
        return Response(project_settings(project))


class _UploadInput(serializers.Serializer):
    file = serializers.FileField(help_text=".jsonl or .csv, optionally .gz")
    format = serializers.CharField(required=False)


def job_payload(job: ImportJob) -> dict:
    return {
        "id": job.pk,
        "project_id": job.project_id,
        "kind": job.kind,
        "format": job.format,
        "file_name": job.file_name,
        "size_bytes": job.size_bytes,
        "status": job.status,
        "phase": job.phase,
        "lines_read": job.lines_read,
        "lines_total": job.lines_total,
        "report": job.report or None,
        "error": job.error,
        "error_line": job.error_line,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


class _UploadApi(APIView):
    permission_classes = [IsResearcher]
    parser_classes = [MultiPartParser, FormParser]
    kind: str = ""
    default_format: str = ""

    def post(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("Attach the file as `file`.", fields={"file": ["Required."]})
        fmt = request.data.get("format") or self.default_format
        outcome = uploads.upload_receive(
            project=project, kind=self.kind, fmt=fmt, upload=upload, user=request.user
        )
        if "report" not in outcome:
            return Response(job_payload(outcome["job"]), status=status.HTTP_202_ACCEPTED)
        return Response(
            {**outcome["report"], "import_id": outcome["job"].pk}, status=status.HTTP_201_CREATED
        )


_UPLOAD_ANSWERS = {
    201: OpenApiResponse(OpenApiTypes.OBJECT, description="Imported: the report."),
    202: OpenApiResponse(
        OpenApiTypes.OBJECT, description="A large file: the import job (GET /api/imports/{id}/)."
    ),
}


class PromptsUploadApi(_UploadApi):
    """Prompts (JSONL or CSV with `prompt`, optional `category`, `split`, `id`, `reference`)."""

    kind = ImportJob.Kind.PROMPTS
    default_format = "prompts"

    @extend_schema(request={"multipart/form-data": _UploadInput}, responses=_UPLOAD_ANSWERS)
    def post(self, request, project_id: int):
        return super().post(request, project_id)


class PreferencesUploadApi(_UploadApi):
    """Preference data: `format` hh-rlhf, pairs ({prompt, chosen, rejected}) or rankings
    (PrefLoop's rankings.jsonl), stored as approved imported judgments."""

    kind = ImportJob.Kind.PREFERENCES

    @extend_schema(request={"multipart/form-data": _UploadInput}, responses=_UPLOAD_ANSWERS)
    def post(self, request, project_id: int):
        return super().post(request, project_id)


class GoldUploadApi(_UploadApi):
    """Gold items: rankings.jsonl-shaped lines whose ranking is the known answer."""

    kind = ImportJob.Kind.GOLD
    default_format = "rankings"

    @extend_schema(request={"multipart/form-data": _UploadInput}, responses=_UPLOAD_ANSWERS)
    def post(self, request, project_id: int):
        return super().post(request, project_id)


class ImportJobApi(APIView):
    """An upload's import job: where it is, and its report or error when done."""

    permission_classes = [IsResearcher]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, import_id: int):
        job = (
            access.in_scope(ImportJob.objects.all(), user=request.user, role=Role.RESEARCHER)
            .filter(pk=import_id)
            .first()
        )
        if job is None:
            raise NotFound("No such import, or you do not research its project.")
        return Response(job_payload(job))
