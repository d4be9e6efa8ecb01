"""Researcher pages: start rounds, watch them live, policy lineage, snapshots and downloads.

Every view needs the researcher role (anonymous: the login page; anyone else: 403). The round
page polls GET /api/rounds/{id}/ and redraws its stage bar, plots and log (static/loop/round.js).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.collection.models import PolicyVersion, Project
from apps.core.errors import DomainError
from apps.core.roles import Role, user_has_role
from apps.loop import api, selectors, services
from apps.loop.config import DEFAULTS, PRESETS


def researcher_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_has_role(request.user, Role.RESEARCHER):
            raise PermissionDenied("Only researchers may open the research pages.")
        return view(request, *args, **kwargs)

    return wrapped


@researcher_required
def index(request):
    projects = []
    for project in Project.objects.filter(is_active=True).order_by("name"):
        projects.append(
            {
                "project": project,
                "policies": PolicyVersion.objects.filter(project=project).order_by("-pk"),
                "latest": services.policy_latest(project=project),
                "rounds": selectors.rounds_list(project=project)[:10],
            }
        )
    return render(
        request,
        "loop/index.html",
        {"projects": projects, "presets": sorted(PRESETS), "defaults": DEFAULTS},
    )


@researcher_required
@require_POST
def round_start(request, project_id: int):
    project = selectors.project_get(project_id=project_id)
    policy_id = request.POST.get("start_policy_id") or None
    policy = (
        PolicyVersion.objects.filter(pk=policy_id, project=project).first() if policy_id else None
    )
    overrides = {}
    for name in ("target_judgments", "prompts_per_round"):
        value = request.POST.get(name, "").strip()
        if value:
            if not value.isdigit():
                messages.error(request, f"{name.replace('_', ' ')} must be a whole number.")
                return redirect("loop:index")
            overrides[name] = int(value)
    overrides["require_review"] = request.POST.get("require_review") == "on"
    try:
        training_round = services.round_start(
            project=project,
            user=request.user,
            start_policy=policy,
            preset=request.POST.get("preset", ""),
            config=overrides,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("loop:index")
    return redirect("loop:round", round_id=training_round.pk)


@researcher_required
def round_page(request, round_id: int):
    training_round = selectors.round_get(round_id=round_id)
    return render(
        request,
        "loop/round.html",
        {"round": training_round, "detail": selectors.round_detail(training_round=training_round)},
    )


def _round_action(request, round_id: int, action, done: str):
    training_round = selectors.round_get(round_id=round_id)
    try:
        action(training_round=training_round, user=request.user)
        messages.success(request, done)
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("loop:round", round_id=round_id)


@researcher_required
@require_POST
def round_cancel(request, round_id: int):
    return _round_action(request, round_id, services.round_cancel, "Round cancelled.")


@researcher_required
@require_POST
def round_retry(request, round_id: int):
    return _round_action(request, round_id, services.round_retry, "Stage queued again.")


@researcher_required
@require_POST
def round_move_on(request, round_id: int):
    return _round_action(request, round_id, services.round_move_on, "Collecting ended.")


@researcher_required
def lineage(request, project_id: int):
    project = selectors.project_get(project_id=project_id)
    return render(
        request,
        "loop/lineage.html",
        {"project": project, "policies": selectors.policy_lineage(project=project)},
    )


@researcher_required
def snapshot_page(request, snapshot_id: int):
    snapshot = selectors.snapshot_get(snapshot_id=snapshot_id)
    files = [
        {"name": name, **snapshot.manifest.get("files", {}).get(name, {})}
        for name in (*api.exports.FILES, api.exports.MANIFEST)
    ]
    return render(request, "loop/snapshot.html", {"snapshot": snapshot, "files": files})


@researcher_required
def snapshot_download(request, snapshot_id: int, name: str):
    return api.snapshot_file_response(snapshot_id=snapshot_id, name=name)
