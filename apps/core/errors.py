"""Errors a user can cause. Services raise them; the API maps them to HTTP answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base for errors caused by a request: they carry a message and change nothing."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(DomainError):
    """The request is malformed; `fields` says which field is wrong and why."""


class NotPermitted(DomainError):
    status_code = 403
    code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    """The request was well formed but the state of the data refuses it."""

    status_code = 409
    code = "conflict"
