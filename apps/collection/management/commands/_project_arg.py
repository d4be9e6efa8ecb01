"""Resolve a PROJECT argument (slug or numeric id) for management commands."""

from django.core.management.base import CommandError

from apps.collection.models import Project


def project_from_arg(value: str) -> Project:
    project = Project.objects.filter(slug=value).first()
    if project is None and value.isdigit():
        project = Project.objects.filter(pk=int(value)).first()
    if project is None:
        raise CommandError(f"No project with slug or id {value!r}.")
    return project
