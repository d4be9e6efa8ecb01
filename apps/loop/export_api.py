"""`GET /api/projects/{id}/export/?format=…`: a project's approved data in a dataset format.

The same rows a round's snapshot freezes (apps/loop/exports.py: approved judgments of
regular tasks, every round, rater pseudonyms), written on the fly as one JSONL file:
rankings, pairs (TRL's chosen/rejected), demonstrations (TRL's prompt/completion) or
prompts. A snapshot, by contrast, is frozen and hashed.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from apps.collection.selectors import project_get
from apps.core.errors import InvalidInput
from apps.core.permissions import IsResearcher
from apps.core.roles import Role
from apps.loop import exports
from trainer import contract

EXPORT_FORMATS = {
    "rankings": contract.RANKINGS,
    "pairs": contract.PAIRS,
    "demonstrations": contract.DEMONSTRATIONS,
    "prompts": contract.PROMPTS,
}


def export_body(*, project, fmt: str) -> str:
    """The JSONL text of one export format (InvalidInput for another format)."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            "Choose an export format.",
            fields={"format": [f"Expected one of {', '.join(EXPORT_FORMATS)}."]},
        )
    rows = exports.collect_rows(project=project, filters=exports.ExportFilters())
    records = rows.files()[EXPORT_FORMATS[fmt]]
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)


def export_response(*, project, fmt: str) -> HttpResponse:
    response = HttpResponse(
        export_body(project=project, fmt=fmt), content_type="application/x-ndjson"
    )
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{fmt}.jsonl"'
    return response


class _DatasetFormat(DefaultContentNegotiation):
    """Here `?format=` names a dataset format, not one of DRF's renderers (which would
    answer 404 to a format it does not know): answers and errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ProjectExportApi(APIView):
    permission_classes = [IsResearcher]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _DatasetFormat

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), required=True),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON object per line."
            )
        },
    )
    def get(self, request, project_id: int):
        project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
        return export_response(project=project, fmt=request.query_params.get("format", ""))
