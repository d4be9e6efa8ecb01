"""Labeler pages: home, the work loop, and one page per task kind.

Thin on purpose: check access, call a selector or service, render. The pages submit answers
through the REST API (session auth + CSRF) so browser and scripts share one write path.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.collection import leasing, selectors, services
from apps.collection.models import Assignment, Task
from apps.collection.rendering import markdown_to_safe_html
from apps.core.pages import role_required
from apps.core.roles import Role, user_has_role

TASK_TEMPLATES = {
    Task.Kind.RANKING: "collection/ranking.html",
    Task.Kind.DEMONSTRATION: "collection/demonstration.html",
    Task.Kind.EVALUATION: "collection/evaluation.html",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if not user_has_role(request.user, Role.LABELER):
        return render(request, "collection/home_other.html")
    rows = selectors.labeler_projects_with_progress(user=request.user)
    return render(request, "collection/home.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@role_required(Role.LABELER)
def project_work(request: HttpRequest, project_id: int) -> HttpResponse:
    """POST leases the next task (or the one already held); GET offers a Start button."""
    project = selectors.project_for_labeler(project_id=project_id, user=request.user)
    if request.method == "GET":
        return render(request, "collection/work_start.html", {"project": project})
    assignment = leasing.assignment_next(project=project, rater=request.user)
    if assignment is None:
        messages.info(request, f"Nothing left for you in {project.name} right now. Thank you!")
        return redirect("collection:home")
    return redirect("collection:assignment", assignment_id=assignment.pk)


@role_required(Role.LABELER)
def project_guidelines(request: HttpRequest, project_id: int) -> HttpResponse:
    project = selectors.project_for_labeler(project_id=project_id, user=request.user)
    return render(
        request,
        "collection/guidelines.html",
        {"project": project, "guidelines_html": markdown_to_safe_html(project.guidelines)},
    )


@role_required(Role.LABELER)
def assignment_page(request: HttpRequest, assignment_id: int) -> HttpResponse:
    # Another rater's assignment is NotFound → 404, as a missing one.
    assignment = selectors.assignment_get_for_rater(assignment_id=assignment_id, rater=request.user)
    project = assignment.task.project
    if assignment.status != Assignment.Status.LEASED:
        return render(
            request,
            "collection/assignment_closed.html",
            {"assignment": assignment, "project": project},
        )
    view = selectors.assignment_view(assignment=assignment)
    task_data = {
        "assignmentId": assignment.pk,
        "projectId": project.pk,
        "kind": view["kind"],
        "completions": view["completions"],
        "leaseExpiresAt": view["lease_expires_at"].isoformat(),
        "serverNow": timezone.now().isoformat(),
        "flags": project.flag_set,
        "likertEnabled": project.likert_enabled,
        "rationaleMaxLength": project.rationale_max_length,
        "demonstrationMaxLength": services.MAX_DEMONSTRATION_CHARS,
        "urls": {
            "submit": reverse(
                "collection-api:demonstration-submit"
                if view["kind"] == Task.Kind.DEMONSTRATION
                else "collection-api:judgment-submit",
                args=[assignment.pk],
            ),
            "skip": reverse("collection-api:skip", args=[assignment.pk]),
            "next": reverse("collection:work", args=[project.pk]),
            "login": f"{reverse('login')}?next={request.path}",
        },
    }
    return render(
        request,
        TASK_TEMPLATES[view["kind"]],
        {
            "assignment": assignment,
            "project": project,
            "prompt_text": view["prompt"]["text"],
            "completions": view["completions"],
            "task_data": task_data,
            "guidelines_html": markdown_to_safe_html(project.guidelines),
        },
    )
