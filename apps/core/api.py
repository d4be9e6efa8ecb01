"""API plumbing shared by every app: one error shape for every failure, one input validator."""

from __future__ import annotations

from functools import cache

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import DomainError


def exception_handler(exc, context):
    """Map DomainError to `{"detail", "code", "fields"}`; leave the rest to DRF."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.fields:
            body["fields"] = exc.fields
        return Response(body, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        data = response.data
        if isinstance(data, dict) and "detail" not in data:
            response.data = {"detail": "Invalid input.", "code": "invalid", "fields": data}
    return response


def validated(serializer_class: type[serializers.Serializer], request) -> dict:
    """The request's data validated by `serializer_class`: a dict, or a 400 with field errors.

    One bound instance per class is reused: a new serializer deep-copies its fields, which
    cost more than validating on the rater's hot path. `run_validation` keeps no state on the
    instance, so the input serializers used here must not read `self.context` or
    `self.initial_data`."""
    return dict(_validator(serializer_class).run_validation(request.data))


@cache
def _validator(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    return serializer_class()


class AutoSchema(SpectacularAutoSchema):
    """OpenAPI schema whose component names stay unique for nested serializers.

    Each API class keeps its own small `InputSerializer` / `OutputSerializer` (STYLE.md); their
    components are named after the class that holds them: `JudgmentSubmitInput`, ...
    """

    def get_serializer_name(self, serializer, direction) -> str:
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, name = cls.__qualname__.rpartition(".")
        if outer:
            prefix = outer.rpartition(".")[2].removesuffix("Api")
            return name if name.startswith(prefix) else prefix + name
        return super().get_serializer_name(serializer, direction)
