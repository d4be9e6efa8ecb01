"""Setting up a project in pages (under /research/): create it, edit its settings with a
preview of the guidelines, upload data and follow the import, download approved data, and
manage its members. Researchers of the project and staff; creating one: the researcher role.
The pages call the same services as the API (collection/projects.py, uploads.py).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.collection import access, projects, uploads
from apps.collection.models import TASK_KINDS, ImportJob, Project
from apps.collection.rendering import markdown_to_safe_html
from apps.collection.screening import screening
from apps.collection.selectors import project_get
from apps.collection.services import membership_add, membership_remove
from apps.core.errors import DomainError, InvalidInput
from apps.core.pages import role_required
from apps.core.roles import Role

EXPORTS = ("rankings", "pairs", "demonstrations", "prompts")
NUMBER_FIELDS = (
    "k",
    "overlap",
    "overlap_max",
    "confidence_target",
    "lease_seconds",
    "gold_rate",
    "rationale_max_length",
)
CHECKBOXES = ("dynamic_overlap", "likert_enabled", "open_to_all_labelers", "is_active")
SCREENING_INPUTS = {
    "screening_size": "size",
    "screening_threshold": "threshold",
    "min_judgments_for_flags": "min_judgments_for_flags",
    "stats_max_age_seconds": "stats_max_age_seconds",
}


def _values_from(post) -> dict:
    """The settings form's fields as `projects` values (text as typed; checked there)."""
    values = {name: post.get(name, "") for name in ("name", "slug", "description", "guidelines")}
    if not values["slug"]:
        values.pop("slug")
    for name in NUMBER_FIELDS:
        if post.get(name, "") != "":
            values[name] = post.get(name)
    for name in CHECKBOXES:
        values[name] = post.get(name) == "on"
    values["task_kinds"] = [kind for kind in TASK_KINDS if post.get(f"kind_{kind}") == "on"]
    values["flag_set"] = _flags_from(post.get("flags", ""))
    values["screening"] = {
        key: post.get(name) for name, key in SCREENING_INPUTS.items() if post.get(name, "") != ""
    }
    return values


def _flags_from(text: str) -> list[dict] | str:
    """One flag per line, "key: label"; a malformed line is passed on as is, to be refused."""
    flags = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, separator, label = line.partition(":")
        if not separator:
            return line
        flags.append({"key": key.strip(), "label": label.strip()})
    return flags


def _form_context(project: Project | None, values: dict | None = None) -> dict:
    """What the settings form shows: the project's settings, or what was just typed."""
    if values is None and project is not None:
        values = {
            **{
                name: getattr(project, name)
                for name in ("name", "slug", "description", "guidelines", *NUMBER_FIELDS)
            },
            **{name: getattr(project, name) for name in CHECKBOXES},
            "task_kinds": project.task_kinds,
            "flag_set": project.flag_set,
            "screening": screening().settings_read(project=project),
        }
    values = values or {
        "k": 4,
        "overlap": 3,
        "dynamic_overlap": False,
        "overlap_max": 5,
        "confidence_target": 0.9,
        "lease_seconds": 900,
        "gold_rate": 0.0,
        "rationale_max_length": 2000,
        "likert_enabled": True,
        "open_to_all_labelers": True,
        "is_active": True,
        "task_kinds": list(TASK_KINDS),
        "flag_set": None,
        "screening": screening().settings_read(project=Project()),  # the defaults
    }
    flags = values.get("flag_set")
    return {
        "values": values,
        "flags_text": flags
        if isinstance(flags, str)
        else "\n".join(f"{f['key']}: {f['label']}" for f in flags or []),
        "task_kinds": TASK_KINDS,
        "screening": values.get("screening") or {},
    }


@role_required(Role.RESEARCHER)
def project_new(request):
    context = {"project": None, "errors": {}, "preview": None}
    if request.method == "POST":
        values = _values_from(request.POST)
        if values["flag_set"] == []:
            values.pop("flag_set")  # none given: the default set
        if request.POST.get("action") == "preview":
            context["preview"] = markdown_to_safe_html(values.get("guidelines", ""))
        else:
            try:
                project = projects.project_create(user=request.user, values=values)
            except InvalidInput as error:
                context["errors"] = error.fields
                messages.error(request, error.message)
            else:
                messages.success(request, f"Project {project.name} created; now add its data.")
                return redirect("setup:data", project_id=project.pk)
        context.update(_form_context(None, values))
    else:
        context.update(_form_context(None))
    return render(request, "collection/setup_settings.html", context)


@role_required(Role.RESEARCHER)
def project_settings(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    context = {"project": project, "errors": {}, "preview": None}
    if request.method == "POST":
        values = _values_from(request.POST)
        if request.POST.get("action") == "preview":
            context["preview"] = markdown_to_safe_html(values.get("guidelines", ""))
        else:
            try:
                projects.project_update(project=project, values=values)
            except InvalidInput as error:
                context["errors"] = error.fields
                messages.error(request, error.message)
            else:
                messages.success(request, "Settings saved.")
                return redirect("setup:settings", project_id=project.pk)
        context.update(_form_context(project, values))
    else:
        context.update(_form_context(project))
    return render(request, "collection/setup_settings.html", context)


@role_required(Role.RESEARCHER)
def project_data(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    jobs = ImportJob.objects.filter(project=project).select_related("created_by")[:20]
    return render(
        request,
        "collection/setup_data.html",
        {
            "project": project,
            "jobs": jobs,
            "formats": uploads.FORMATS,
            "exports": EXPORTS,
            "counts": {
                "prompts": project.prompts.count(),
                "tasks": project.tasks.count(),
                "gold": project.tasks.filter(is_gold=True).count(),
            },
        },
    )


@require_POST
@role_required(Role.RESEARCHER)
def project_upload(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    kind = request.POST.get("kind", "")
    upload = request.FILES.get("file")
    if kind not in uploads.FORMATS or upload is None:
        messages.error(request, "Choose what the file holds, and the file.")
        return redirect("setup:data", project_id=project.pk)
    fmt = request.POST.get("format") or uploads.FORMATS[kind][0]
    try:
        outcome = uploads.upload_receive(
            project=project, kind=kind, fmt=fmt, upload=upload, user=request.user
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        if "report" in outcome:
            report = outcome["report"]
            messages.success(
                request,
                f"{upload.name}: {_rows(report['rows_read'])} read, {report['added']} added, "
                f"{report['already_there']} already there, "
                f"{sum(report['skipped'].values())} skipped.",
            )
        else:
            messages.info(request, f"{upload.name} is being imported: follow it below.")
    return redirect("setup:data", project_id=project.pk)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


@role_required(Role.RESEARCHER)
def project_members(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        role = request.POST.get("role", "")
        user = get_user_model().objects.filter(username=username).first()
        if role not in {r.value for r in Role}:
            messages.error(request, "Choose a role.")
        elif user is None:
            messages.error(request, f"No account {username!r}: create it first (admin).")
        elif request.POST.get("action") == "remove":
            removed, released = membership_remove(project=project, user=user, role=Role(role))
            messages.success(
                request, f"{username} is no longer {role} ({released} leases withdrawn)."
            )
        else:
            _, created = membership_add(
                project=project, user=user, role=Role(role), added_by=request.user
            )
            messages.success(
                request,
                f"{username} is {role} of {project.name}."
                if created
                else f"{username} was {role} already.",
            )
        return redirect(reverse("setup:members", args=[project.pk]))
    return render(
        request,
        "collection/setup_members.html",
        {"project": project, "members": access.members_of(project=project), "roles": list(Role)},
    )
