"""Site-wide views: health, and the error answers (JSON under /api/)."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.views import defaults

from annotation_site.celery import app as celery_app


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def _broker_ok() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def healthz(request):
    """200 when the database and the broker answer, 503 otherwise, with the reason."""
    db_ok, db_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    healthy = db_ok and broker_ok
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "database": db_detail,
            "broker": broker_detail,
        },
        status=200 if healthy else 503,
    )


# --- error pages: the API's error shape under /api/, HTML pages elsewhere -----------------


def _api_or_page(request, status: int, code: str, detail: str, page_view, *args):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    return page_view(request, *args)


def not_found(request, exception):
    """404 for a URL no view takes (an id beyond a bigint, a typo)."""
    return _api_or_page(
        request, 404, "not_found", "No such address.", defaults.page_not_found, exception
    )


def bad_request(request, exception):
    return _api_or_page(request, 400, "invalid", "Bad request.", defaults.bad_request, exception)


def permission_denied(request, exception):
    return _api_or_page(
        request, 403, "permission_denied", "Not allowed.", defaults.permission_denied, exception
    )


def server_error(request):
    return _api_or_page(request, 500, "error", "Server error.", defaults.server_error)
