"""The project settings page: dynamic overlap is set there like every other setting, each
field checked, nothing saved from a form with a bad value."""

from __future__ import annotations

import pytest

from apps.collection.models import Project
from apps.collection.services import membership_add
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(client):
    project = ProjectFactory(name="Kind", slug="kind", overlap=3)
    user = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=user, role=Role.RESEARCHER)
    client.force_login(user)
    return client, project


def _form(project: Project, **changes) -> dict:
    """The settings form as the page fills it, with `changes`."""
    form = {
        "name": project.name,
        "slug": project.slug,
        "description": project.description,
        "guidelines": project.guidelines,
        "k": str(project.k),
        "overlap": str(project.overlap),
        "overlap_max": str(project.overlap_max),
        "confidence_target": str(project.confidence_target),
        "lease_seconds": str(project.lease_seconds),
        "gold_rate": str(project.gold_rate),
        "rationale_max_length": str(project.rationale_max_length),
        "likert_enabled": "on",
        "open_to_all_labelers": "on",
        "is_active": "on",
        "kind_ranking": "on",
        "flags": "\n".join(f"{f['key']}: {f['label']}" for f in project.flag_set),
        "action": "save",
    }
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def test_the_page_shows_and_saves_dynamic_overlap(setup):
    client, project = setup
    url = f"/research/projects/{project.pk}/settings/"
    page = client.get(url).content.decode()
    assert 'name="dynamic_overlap"' in page and 'value="5"' in page and 'value="0.9"' in page
    saved = client.post(
        url,
        _form(project, dynamic_overlap="on", overlap="2", overlap_max="6", confidence_target="0.8"),
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    project.refresh_from_db()
    assert project.dynamic_overlap and (project.overlap, project.overlap_max) == (2, 6)
    assert project.confidence_target == 0.8
    page = client.get(url).content.decode()
    assert 'id="dynamic_overlap" name="dynamic_overlap" checked' in page
    # unticking turns it off; the maximum and target stay for next time
    client.post(url, _form(project, dynamic_overlap=None))
    project.refresh_from_db()
    assert not project.dynamic_overlap and project.overlap_max == 6


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"overlap_max": "16"}, "overlap_max"),
        ({"overlap_max": "two"}, "overlap_max"),
        ({"confidence_target": "1"}, "confidence_target"),
        ({"confidence_target": "0.3"}, "confidence_target"),
        ({"overlap": "7", "overlap_max": "5"}, "overlap_max"),
    ],
)
def test_a_bad_value_is_named_and_nothing_is_saved(setup, changes, field):
    client, project = setup
    response = client.post(
        f"/research/projects/{project.pk}/settings/",
        _form(project, dynamic_overlap="on", name="Renamed", **changes),
    )
    assert response.status_code == 200
    assert field in response.context["errors"]
    assert b'data-testid="form-errors"' in response.content
    project.refresh_from_db()
    assert (project.name, project.dynamic_overlap, project.overlap) == ("Kind", False, 3)
    assert (project.overlap_max, project.confidence_target) == (5, 0.9)
