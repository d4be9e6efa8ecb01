"""Only researchers start, watch, cancel and retry rounds or read snapshots."""

from __future__ import annotations

import pytest

from apps.collection.models import PolicyVersion
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(project):
    return PolicyVersion.objects.create(project=project, name="base", artifact_uri="/models/base")


@pytest.mark.parametrize("role", [Role.LABELER, Role.REVIEWER])
def test_labelers_and_reviewers_get_403(role, project, base, api_as, stages):
    client = api_as(UserFactory(roles=[role]))
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.COLLECTING, config={}
    )
    assert client.post(f"/api/projects/{project.pk}/rounds/", {}, format="json").status_code == 403
    assert client.get(f"/api/rounds/{training_round.pk}/").status_code == 403
    assert client.post(f"/api/rounds/{training_round.pk}/cancel/").status_code == 403
    assert client.post(f"/api/rounds/{training_round.pk}/retry/").status_code == 403
    assert client.get("/api/snapshots/1/").status_code == 403
    assert client.get(f"/api/projects/{project.pk}/policies/").status_code == 403
    training_round.refresh_from_db()
    assert training_round.stage == Stage.COLLECTING
    assert not TrainingRound.objects.filter(number=2).exists()
    assert stages.sent == []


def test_anonymous_is_refused(client, project):
    assert client.post(f"/api/projects/{project.pk}/rounds/").status_code in (401, 403)
    assert client.get("/research/").status_code == 302  # to the login page


def test_researcher_starts_and_cancels(project, base, researcher, api_as, stages):
    client = api_as(researcher)
    response = client.post(f"/api/projects/{project.pk}/rounds/", {"preset": "tiny"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["stage"] == "sampling" and body["start_policy"]["id"] == base.pk
    assert [s["status"] for s in body["stages"]][:2] == ["queued", "waiting"]
    again = client.post(f"/api/projects/{project.pk}/rounds/", {}, format="json")
    assert again.status_code == 409  # one running round per project
    cancelled = client.post(f"/api/rounds/{body['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["stage"] == "cancelled"
    assert client.post(f"/api/rounds/{body['id']}/cancel/").status_code == 409
    retried = client.post(f"/api/rounds/{body['id']}/retry/")
    assert retried.status_code == 200 and retried.json()["stage"] == "sampling"


def test_bad_settings_are_refused_with_field_messages(project, base, researcher, api_as, stages):
    client = api_as(researcher)
    response = client.post(
        f"/api/projects/{project.pk}/rounds/",
        {"config": {"target_judgments": -1, "nonsense": 1}},
        format="json",
    )
    assert response.status_code == 400
    assert "nonsense" in response.json()["detail"]
    assert not TrainingRound.objects.exists()


def test_a_researcher_of_another_project_gets_404(project, base, api_as, stages):
    outsider = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=ProjectFactory(), user=outsider, role=Role.RESEARCHER)
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.COLLECTING, config={}
    )
    client = api_as(outsider)
    assert client.post(f"/api/projects/{project.pk}/rounds/", {}, format="json").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/rounds/").status_code == 404
    assert client.get(f"/api/rounds/{training_round.pk}/").status_code == 404
    assert client.post(f"/api/rounds/{training_round.pk}/cancel/").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/policies/").status_code == 404
    training_round.refresh_from_db()
    assert training_round.stage == Stage.COLLECTING and stages.sent == []
