"""Reviewer endpoints and pages: what reviewers can do, and that nobody else can."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import RaterProfile
from apps.collection.models import Judgment, ReviewStatus
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.quality import services
from apps.quality.models import ReviewDecision
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def _targets(project, judgment, rater, task):
    api = [
        ("get", f"/api/judgments/{judgment.pk}/", None),
        ("get", f"/api/projects/{project.pk}/quality/", None),
        ("post", f"/api/projects/{project.pk}/quality/refresh/", {}),
        ("get", f"/api/projects/{project.pk}/raters/", None),
        ("post", f"/api/judgments/{judgment.pk}/review/", {"decision": "approve"}),
        (
            "post",
            f"/api/projects/{project.pk}/judgments/review/",
            {"judgment_ids": [judgment.pk], "decision": "approve"},
        ),
        ("post", f"/api/projects/{project.pk}/judgments/approve-reliable/", {"min_agreement": 0}),
        ("post", f"/api/raters/{rater.pk}/suspend/", {"reason": "x"}),
        ("post", f"/api/raters/{rater.pk}/reinstate/", {"reason": "x"}),
        ("get", f"/api/tasks/{task.pk}/consensus/", None),
    ]
    pages = [
        ("get", f"/review/judgments/{judgment.pk}/", None),
        ("get", "/review/", None),
        ("get", f"/review/projects/{project.pk}/", None),
        ("get", f"/review/projects/{project.pk}/raters/", None),
        ("get", f"/review/projects/{project.pk}/raters/{rater.pk}/", None),
        ("get", f"/review/projects/{project.pk}/queue/", None),
        ("post", f"/review/projects/{project.pk}/queue/bulk/", {"decision": "approve"}),
        ("post", f"/review/projects/{project.pk}/queue/approve-reliable/", {"min_agreement": 0}),
        ("post", f"/review/projects/{project.pk}/refresh/", {}),
        ("post", f"/review/judgments/{judgment.pk}/review/", {"decision": "approve"}),
        ("post", f"/review/raters/{rater.pk}/suspend/", {"reason": "x"}),
        ("post", f"/review/raters/{rater.pk}/reinstate/", {"reason": "x"}),
    ]
    return api, pages


@pytest.mark.parametrize("role", [Role.LABELER, Role.RESEARCHER])
def test_everyone_but_reviewers_gets_403_on_every_reviewer_endpoint_and_page(
    rated_project, api_as, role
):
    project, tasks, raters = rated_project
    judgment = Judgment.objects.filter(rater=raters[0]).first()
    outsider = UserFactory(roles=[role])
    api, pages = _targets(project, judgment, raters[1], tasks[0])
    client = api_as(outsider)
    for method, url, body in api:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, (url, response.status_code)
    browser = Client()
    browser.force_login(outsider)
    for method, url, body in pages:
        response = getattr(browser, method)(url, body or {})
        assert response.status_code == 403, (url, response.status_code)
    judgment.refresh_from_db()
    assert judgment.review_status == ReviewStatus.PENDING
    assert not ReviewDecision.objects.exists()
    raters[1].rater_profile.refresh_from_db()
    assert not raters[1].rater_profile.is_suspended


def test_anonymous_callers_are_refused(rated_project):
    project, tasks, raters = rated_project
    judgment = Judgment.objects.first()
    api, pages = _targets(project, judgment, raters[1], tasks[0])
    client = Client()
    for method, url, body in api:
        assert getattr(client, method)(url, body or {}).status_code in {401, 403}, url
    for method, url, body in pages:
        response = getattr(client, method)(url, body or {})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_reviewer_sees_stats_raters_and_consensus_through_the_api(rated_project, api_as, reviewer):
    project, tasks, raters = rated_project
    client = api_as(reviewer)
    empty = client.get(f"/api/projects/{project.pk}/quality/").json()
    assert empty["stats"] is None and empty["snapshot"]["computed_at"] is None
    services.quality_snapshot_refresh(project_id=project.pk)
    body = client.get(f"/api/projects/{project.pk}/quality/").json()
    assert body["stats"]["pairwise_agreement"] == pytest.approx(0.5)
    assert body["snapshot"]["age_seconds"] >= 0 and body["snapshot"]["judgments"] == 24
    listed = client.get(f"/api/projects/{project.pk}/raters/").json()["raters"]
    assert {r["rater_id"] for r in listed} == {r.pk for r in raters}
    assert "trend" not in listed[0]
    with_trend = client.get(f"/api/projects/{project.pk}/raters/?trend=1").json()["raters"]
    assert with_trend[0]["trend"]["t"]
    consensus = client.get(f"/api/tasks/{tasks[0].pk}/consensus/").json()
    assert len(consensus["ranking"]) == 3
    assert client.get("/api/tasks/999999/consensus/").status_code == 404


def test_reviewer_reviews_and_suspends_through_the_api(rated_project, api_as, reviewer):
    project, _, raters = rated_project
    client = api_as(reviewer)
    judgment = Judgment.objects.filter(rater=raters[3]).first()
    response = client.post(
        f"/api/judgments/{judgment.pk}/review/",
        {"decision": "reject", "reason": "Reversed order."},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["review_status"] == "rejected"
    assert response.json()["reviewed_by"] == reviewer.username
    bad = client.post(
        f"/api/judgments/{judgment.pk}/review/", {"decision": "reject"}, format="json"
    )
    assert bad.status_code == 400 and "reason" in bad.json()["fields"]
    assert client.post("/api/judgments/0/review/", {"decision": "approve"}).status_code == 404
    ids = list(Judgment.objects.filter(rater=raters[0]).values_list("pk", flat=True))
    bulk = client.post(
        f"/api/projects/{project.pk}/judgments/review/",
        {"judgment_ids": ids, "decision": "approve", "reason": ""},
        format="json",
    )
    assert bulk.json() == {"updated": len(ids)}
    suspended = client.post(
        f"/api/raters/{raters[3].pk}/suspend/",
        {"reason": "Reverses every ranking.", "reject_pending": True},
        format="json",
    )
    assert suspended.status_code == 200 and suspended.json()["judgments_rejected"] == 5
    again = client.post(f"/api/raters/{raters[3].pk}/suspend/", {"reason": "x"}, format="json")
    assert again.status_code == 400
    reinstated = client.post(
        f"/api/raters/{raters[3].pk}/reinstate/", {"reason": "Retrained."}, format="json"
    )
    assert reinstated.status_code == 200 and reinstated.json()["action"] == "reinstate"


def test_reviewer_pages_render_with_and_without_statistics(rated_project, reviewer):
    project, _, raters = rated_project
    browser = Client()
    browser.force_login(reviewer)
    urls = [
        "/review/",
        f"/review/projects/{project.pk}/",
        f"/review/projects/{project.pk}/raters/",
        f"/review/projects/{project.pk}/raters/{raters[3].pk}/",
        f"/review/projects/{project.pk}/queue/",
    ]
    for url in urls:
        assert browser.get(url).status_code == 200, url
    services.quality_snapshot_refresh(project_id=project.pk)
    pages = {url: browser.get(url).content.decode() for url in urls}
    assert "pairwise agreement" in pages[urls[1]] and "q-series" in pages[urls[1]]
    assert raters[3].rater_profile.pseudonym in pages[urls[2]]
    assert "consensus prefers" in pages[urls[3]] and "trend-table" in pages[urls[3]]
    assert pages[urls[4]].count("data-judgment=") == 24


def test_a_reviewer_without_the_labeler_role_cannot_take_or_answer_tasks(
    rated_project, api_as, reviewer
):
    project, _, _ = rated_project
    client = api_as(reviewer)
    assert client.post(f"/api/projects/{project.pk}/assignments/next/").status_code == 403
    assignment = Judgment.objects.first().assignment
    response = client.post(
        f"/api/assignments/{assignment.pk}/judgment/",
        {"ranking": [], "client_key": "6f1c1f9e-8a53-4a3c-9d61-6f8e4a0f2a11"},
        format="json",
    )
    assert response.status_code == 403


def test_a_reviewer_of_another_project_gets_404_and_changes_nothing(rated_project, api_as):
    project, tasks, raters = rated_project
    outsider = UserFactory(roles=[Role.REVIEWER])
    membership_add(project=ProjectFactory(), user=outsider, role=Role.REVIEWER)
    client = api_as(outsider)
    judgment = Judgment.objects.filter(task__project=project).first()
    assert client.get(f"/api/projects/{project.pk}/quality/").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/raters/").status_code == 404
    assert client.get(f"/api/tasks/{tasks[0].pk}/consensus/").status_code == 404
    assert client.get(f"/api/judgments/{judgment.pk}/").status_code == 404
    review = {"decision": "reject", "reason": "x"}
    assert client.post(f"/api/judgments/{judgment.pk}/review/", review).status_code == 404
    suspend = {"reason": "x"}
    assert client.post(f"/api/raters/{raters[0].pk}/suspend/", suspend).status_code == 404
    judgment.refresh_from_db()
    assert judgment.review_status == "pending"
    assert not RaterProfile.objects.filter(status="suspended").exists()


def test_only_staff_suspend_staff_and_nobody_themselves(rated_project, api_as, reviewer):
    project, _, raters = rated_project
    admin = UserFactory(roles=[Role.LABELER], is_superuser=True, is_staff=True)
    membership_add(project=project, user=admin, role=Role.LABELER)
    client = api_as(reviewer)
    refused = client.post(f"/api/raters/{admin.pk}/suspend/", {"reason": "x"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only staff may suspend a staff account."
    membership_add(project=project, user=reviewer, role=Role.LABELER)
    itself = client.post(f"/api/raters/{reviewer.pk}/suspend/", {"reason": "x"})
    assert itself.status_code == 403
    assert not RaterProfile.objects.filter(status="suspended").exists()
    staff = api_as(UserFactory(roles=[], is_staff=True))
    assert staff.post(f"/api/raters/{admin.pk}/suspend/", {"reason": "x"}).status_code == 200
