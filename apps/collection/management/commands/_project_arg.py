"""Resolve a PROJECT argument (slug or numeric id) for management commands."""

from django.core.management.base import CommandError

from apps.collection.models import Project
from apps.core.ids import parse_id


def project_from_arg(value: str) -> Project:
    project = Project.objects.filter(slug=value).first()
    if project is None and parse_id(value) is not None:
        project = Project.objects.filter(pk=parse_id(value)).first()
    if project is None:
        raise CommandError(f"No project with slug or id {value!r}.")
    return project
