"""API plumbing shared by every app: one error shape for every failure."""

from __future__ import annotations

from rest_framework import status
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
