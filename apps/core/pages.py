"""What every HTML page shares: the role check, and domain errors as HTTP answers.

The REST API maps `DomainError`s in `apps.core.api.exception_handler`; a page gets the same
errors through `role_required`, which turns `NotFound` into a 404 page and `NotPermitted`
into a 403 page (docs/design.md, "Roles and access").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from apps.core.errors import NotFound, NotPermitted
from apps.core.roles import Role, user_has_role

ROLE_PAGES = {
    Role.LABELER: "Only labelers may do this.",
    Role.REVIEWER: "Only reviewers may open the review pages.",
    Role.RESEARCHER: "Only researchers may open the research pages.",
}


def role_required(role: Role) -> Callable[[Callable], Callable]:
    """A page for one role: anonymous users go to the login page (and come back after),
    anyone without the role gets 403; `NotFound` and `NotPermitted` raised by the view's
    selectors and services become 404 and 403 pages."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_role(request.user, role):
                raise PermissionDenied(ROLE_PAGES[role])
            try:
                return view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc
            except NotPermitted as exc:
                raise PermissionDenied(exc.message) from exc

        return wrapped

    return decorator
