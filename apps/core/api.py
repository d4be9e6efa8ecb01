"""API plumbing shared by every app: one error shape for every failure, one input validator,
and the schema's names. The JSON parser is in apps/core/parsers.py."""

from __future__ import annotations

from functools import cache

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import DomainError
from apps.core.parsers import BodyTooLarge


def exception_handler(exc, context):
    """Every refusal as `{"detail", "code"[, "fields"]}`: DomainError, DRF's own exceptions,
    and a form body over Django's limits (which Django would answer with an HTML page)."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.fields:
            body["fields"] = exc.fields
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(str(exc))
    elif isinstance(exc, SuspiciousOperation):
        exc = ParseError(str(exc), code="suspicious")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data:
        codes = exc.get_codes() if isinstance(exc, APIException) else {}
        if isinstance(codes, str):
            data.setdefault("code", codes)
        elif response.status_code == status.HTTP_404_NOT_FOUND:
            data.setdefault("code", "not_found")
    elif response.status_code == status.HTTP_400_BAD_REQUEST:
        # A body that is no object at all (null, a list) fails as a whole, not per field.
        fields = data if isinstance(data, dict) else {"non_field_errors": data}
        response.data = {"detail": "Invalid input.", "code": "invalid", "fields": fields}
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


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API."""

    detail = serializers.CharField()
    code = serializers.CharField()
    fields = serializers.DictField(
        required=False, help_text="What is wrong with each field, when a field is to blame."
    )


#: The refusals an operation may answer, documented on every operation they apply to.
ERRORS = {
    400: "The request is malformed; nothing was changed (`fields` says what to fix).",
    401: "Not logged in, or the token is unknown, expired or revoked.",
    403: "You hold the role this needs in no project, or the object refuses you.",
    404: "No such object, or it lies outside your projects.",
    409: "The state of the data refuses the request; nothing was changed.",
    415: "The body is in a content type this operation does not read; nothing was changed.",
}


class AutoSchema(SpectacularAutoSchema):
    """OpenAPI schema whose component names stay unique for nested serializers.

    Each API class keeps its own small `InputSerializer` / `OutputSerializer` (STYLE.md); their
    components are named after the class that holds them: `JudgmentSubmitInput`, ...
    """

    def _get_response_bodies(self, direction="response"):
        """The operation's own answers plus the refusals it can give, in the error shape:
        401/403 where it needs a login, 404 where its path names an object, 400 and 409
        where it takes input or changes data, 415 where it reads a body."""
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            described = OpenApiResponse(response=ErrorSerializer, description=ERRORS[code])
            responses.setdefault(
                str(code), self._get_response_for_code(described, str(code), direction=direction)
            )
        return responses

    def _error_codes(self) -> list[int]:
        method = self.method.upper()
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        codes = []
        if method != "GET" or self._has_query_parameters():
            codes.append(400)
        if not public:
            codes += [401, 403]
        if "{" in self.path:
            codes.append(404)
        if method in {"POST", "PUT", "PATCH", "DELETE"} and not public:
            codes.append(409)
        if method in {"POST", "PUT", "PATCH"}:
            codes.append(415)
        return codes

    def _has_query_parameters(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())

    def get_serializer_name(self, serializer, direction) -> str:
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, name = cls.__qualname__.rpartition(".")
        if outer:
            prefix = outer.rpartition(".")[2].removesuffix("Api")
            return name if name.startswith(prefix) else prefix + name
        return super().get_serializer_name(serializer, direction)
