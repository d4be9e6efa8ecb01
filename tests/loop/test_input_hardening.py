"""Research pages and the round API answer bad ids and numbers with a 4xx, never a 500."""

from __future__ import annotations

import pytest

from apps.collection.models import PolicyVersion
from apps.loop.models import TrainingRound

pytestmark = pytest.mark.django_db

HUGE = "9" * 23
DIGITS_5000 = "7" * 5000


@pytest.fixture
def research(project, researcher, client):
    client.force_login(researcher)
    PolicyVersion.objects.create(project=project, name="base", artifact_uri="/m")
    return client


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/research/rounds/99999/"),
        ("get", "/research/snapshots/99999/"),
        ("get", "/research/projects/99999/lineage/"),
        ("post", "/research/rounds/99999/cancel/"),
        ("post", "/research/rounds/99999/retry/"),
        ("get", f"/research/rounds/{HUGE}/"),
    ],
)
def test_missing_research_objects_are_404_pages(research, method, url):
    assert getattr(research, method)(url).status_code == 404


@pytest.mark.parametrize(
    "form",
    [{"start_policy_id": "abc"}, {"target_judgments": "²"}, {"prompts_per_round": DIGITS_5000}],
)
def test_round_start_page_refuses_bad_numbers_with_a_message(research, project, stages, form):
    response = research.post(f"/research/projects/{project.pk}/rounds/start/", form, follow=True)
    assert response.status_code == 200
    assert any(m.level_tag == "error" for m in response.context["messages"])
    assert not TrainingRound.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"start_policy_id": "abc"},
        {"start_policy_id": HUGE},
        {"config": {"target_judgments": "²"}},
        {"config": {"prompts_per_round": "²"}},
    ],
)
def test_round_start_api_refuses_bad_numbers(api_as, researcher, project, stages, body):
    response = api_as(researcher).post(f"/api/projects/{project.pk}/rounds/", body, format="json")
    assert response.status_code == 400 and response.json()["code"]
    assert not TrainingRound.objects.exists()
