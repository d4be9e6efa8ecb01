"""Setting up a project without the admin: create and edit it, with its quality settings
(screening and the statistics' bounds, which apps/quality keeps: they pass through the
registered screening of apps/collection/screening.py).

`project_create` and `project_update` take plain values (from the API or a page), check
every one (InvalidInput names each field that is wrong, and nothing is saved), and write the
project and its quality settings in one transaction. Changing the guidelines raises their
version, which each judgment records.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from apps.collection.flags import default_flags
from apps.collection.models import MAX_DYNAMIC_OVERLAP, MAX_K, MIN_K, TASK_KINDS, Project
from apps.collection.screening import screening
from apps.collection.services import membership_add, overlap_problems, project_active_set
from apps.core.errors import InvalidInput
from apps.core.roles import Role, user_roles

MAX_GUIDELINES = 100_000
MAX_FLAGS = 32
FLAG_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Project fields: (kind, low, high) for numbers; kind alone for the rest.
PROJECT_FIELDS: dict[str, tuple] = {
    "name": ("text", 1, 200),
    "slug": ("slug",),
    "description": ("text", 0, 5000),
    "guidelines": ("text", 0, MAX_GUIDELINES),
    "k": ("int", MIN_K, MAX_K),
    "overlap": ("int", 1, 100),
    "dynamic_overlap": ("bool",),
    "overlap_max": ("int", 1, MAX_DYNAMIC_OVERLAP),
    "confidence_target": ("float", 0.5, 0.999),
    "lease_seconds": ("int", 30, 86_400),
    "gold_rate": ("float", 0.0, 1.0),
    "likert_enabled": ("bool",),
    "rationale_max_length": ("int", 0, 20_000),
    "open_to_all_labelers": ("bool",),
    "is_active": ("bool",),
    "task_kinds": ("kinds",),
    "flag_set": ("flags",),
}


@transaction.atomic
def project_create(*, user, values: dict[str, Any]) -> Project:
    """A new project from `values` (name required; the rest have defaults); its creator
    becomes a researcher of it (and a reviewer, when they hold that role)."""
    values = dict(values)
    values.setdefault("slug", slugify(str(values.get("name") or ""))[:100])
    fields, quality = _clean(values, partial=False)
    _check_overlap(Project(), fields, "created")
    if Project.objects.filter(slug=fields["slug"]).exists():
        raise InvalidInput(
            "A project with this slug exists already; nothing was created.",
            fields={"slug": ["Taken: choose another."]},
        )
    fields.setdefault("flag_set", default_flags())
    project = Project.objects.create(created_by=user, **fields)
    _screening_save(project, quality)
    for role in (Role.RESEARCHER, Role.REVIEWER):
        if role in user_roles(user):
            membership_add(project=project, user=user, role=role, added_by=user)
    return project


@transaction.atomic
def project_update(*, project: Project, values: dict[str, Any]) -> Project:
    """Change the fields given in `values` (the others stay). Closing a project withdraws
    its live leases; new guidelines get a new version."""
    fields, quality = _clean(values, partial=True)
    _check_overlap(project, fields, "changed")
    if (
        "slug" in fields
        and Project.objects.filter(slug=fields["slug"]).exclude(pk=project.pk).exists()
    ):
        raise InvalidInput(
            "A project with this slug exists already; nothing was changed.",
            fields={"slug": ["Taken: choose another."]},
        )
    active = fields.pop("is_active", None)
    if "guidelines" in fields and fields["guidelines"] != project.guidelines:
        fields["guidelines_version"] = project.guidelines_version + 1
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    if active is not None and active != project.is_active:
        project_active_set(project=project, active=active)
    _screening_save(project, quality)
    return project


def _check_overlap(project: Project, fields: dict, verb: str) -> None:
    """With dynamic overlap on, a task may not start with more raters than it may get."""
    problems = overlap_problems(
        dynamic=fields.get("dynamic_overlap", project.dynamic_overlap),
        start=fields.get("overlap", project.overlap),
        most=fields.get("overlap_max", project.overlap_max),
        target=fields.get("confidence_target", project.confidence_target),
    )
    if problems:
        raise InvalidInput(
            f"The project settings are not valid; nothing was {verb}.", fields=problems
        )


def _screening_save(project: Project, values: dict) -> None:
    """The quality settings, through the registered screening (apps/collection/screening.py)."""
    screening().settings_save(project=project, values=values)


def _clean(values: dict[str, Any], *, partial: bool) -> tuple[dict, dict]:
    errors: dict[str, list[str]] = {}
    unknown = set(values) - set(PROJECT_FIELDS) - {"screening"}
    for name in sorted(unknown):
        errors[name] = ["Not a project setting."]
    fields = {}
    for name, spec in PROJECT_FIELDS.items():
        if name not in values:
            if name == "name" and not partial:
                errors["name"] = ["Required."]
            continue
        value, problem = _value(spec, values[name])
        if problem:
            errors[name] = [problem]
        else:
            fields[name] = value
    quality = {}
    given = values.get("screening")
    if given is not None:
        if not isinstance(given, dict):
            errors["screening"] = ["Expected an object."]
        else:
            specs = screening().settings_fields
            for name in sorted(set(given) - set(specs)):
                errors[f"screening.{name}"] = ["Not a screening setting."]
            for name, spec in specs.items():
                if name in given:
                    value, problem = _value(spec, given[name])
                    if problem:
                        errors[f"screening.{name}"] = [problem]
                    else:
                        quality[name] = value
    if errors:
        raise InvalidInput("The project settings are not valid; nothing was saved.", fields=errors)
    return fields, quality


def _value(spec: tuple, value: Any) -> tuple[Any, str]:
    """(cleaned value, "") or (None, what is wrong)."""
    kind = spec[0]
    if kind == "text":
        if not isinstance(value, str):
            return None, "Expected text."
        value = value.strip() if spec[1] else value
        if not spec[1] <= len(value) <= spec[2]:
            return None, f"Between {spec[1]} and {spec[2]} characters."
        return value, ""
    if kind == "slug":
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", value):
            return None, "Lower-case letters, digits and hyphens (at most 100)."
        return value, ""
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None, "Expected a number."
        try:
            number = int(value) if kind == "int" else float(value)
        except ValueError:
            return None, "Expected a number."
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            return None, "Expected a whole number."
        if not spec[1] <= number <= spec[2]:
            return None, f"Between {spec[1]} and {spec[2]}."
        return number, ""
    if kind == "bool":
        if isinstance(value, bool):
            return value, ""
        if value in ("true", "on", "1"):
            return True, ""
        if value in ("false", "off", "0", ""):
            return False, ""
        return None, "Expected true or false."
    if kind == "kinds":
        if not isinstance(value, list) or not value or not all(v in TASK_KINDS for v in value):
            return None, f"A non-empty list of {', '.join(TASK_KINDS)}."
        return [k for k in TASK_KINDS if k in value], ""
    return _flags(value)


def _flags(value: Any) -> tuple[Any, str]:
    if not isinstance(value, list) or len(value) > MAX_FLAGS:
        return None, f'A list of at most {MAX_FLAGS} {{"key", "label"}} flags.'
    cleaned, keys = [], set()
    for flag in value:
        if not isinstance(flag, dict) or set(flag) - {"key", "label"}:
            return None, 'Each flag is {"key": ..., "label": ...}.'
        key, label = flag.get("key"), flag.get("label")
        if not isinstance(key, str) or not FLAG_KEY.fullmatch(key):
            return None, "A flag key is lower-case letters, digits and _ (at most 40)."
        if not isinstance(label, str) or not 1 <= len(label.strip()) <= 80:
            return None, f'The label of "{key}" is 1 to 80 characters.'
        if key in keys:
            return None, f'The key "{key}" is used twice.'
        keys.add(key)
        cleaned.append({"key": key, "label": label.strip()})
    return cleaned, ""
