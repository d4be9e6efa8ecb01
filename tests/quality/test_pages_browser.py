"""A reviewer in a real browser: reject a judgment, suspend its rater, see the effect."""

from __future__ import annotations

import pytest

from apps.collection import leasing
from apps.collection.models import Assignment, Judgment, ReviewStatus
from apps.collection.services import membership_add
from apps.core.errors import NotPermitted
from apps.core.roles import Role
from apps.quality import services
from tests.browser import log_in, screenshot
from tests.factories import ProjectFactory, UserFactory, make_task
from tests.quality.conftest import answer, by_id, by_id_reversed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_reviewer_rejects_a_judgment_and_suspends_the_rater(page, live_server, api_as):
    project = ProjectFactory(name="Summaries", k=3, overlap=3)
    for _ in range(5):
        make_task(project)
    honest = [UserFactory(roles=[Role.LABELER]) for _ in range(2)]
    clicker = UserFactory(username="clicker", roles=[Role.LABELER])
    for rater in honest:
        for _ in range(3):
            answer(project, rater, by_id)
    for _ in range(3):
        answer(project, clicker, by_id_reversed)
    lease = leasing.assignment_next(project=project, rater=clicker)
    assert lease is not None and lease.status == Assignment.Status.LEASED
    services.quality_snapshot_refresh(project_id=project.pk)
    rita = UserFactory(username="rita", roles=[Role.REVIEWER])
    membership_add(project=project, user=rita, role=Role.REVIEWER)
    target = Judgment.objects.filter(rater=clicker).order_by("pk").first()

    log_in(page, live_server, "rita", next_url=f"/review/projects/{project.pk}/")
    assert page.locator("[data-testid=agreement]").is_visible()
    assert page.locator(".q-chart[data-chart=agreement] svg").count() == 1
    assert "ago" in page.locator("[data-testid=freshness]").inner_text()
    screenshot(page, "review-dashboard")

    page.goto(f"{live_server.url}/review/projects/{project.pk}/queue/")
    row = page.locator(f"tr[data-judgment='{target.pk}']")
    row.locator("input[name=reason]").fill("Ranks in reverse of every other rater.")
    row.locator("button[value=reject]").click()
    page.wait_for_load_state("networkidle")
    assert f"Judgment {target.pk}: rejected." in page.locator(".messages").inner_text()
    target.refresh_from_db()
    assert target.review_status == ReviewStatus.REJECTED
    assert target.reviewed_by.username == "rita"

    page.goto(f"{live_server.url}/review/projects/{project.pk}/raters/")
    page.locator("button.q-sort[data-key=agreement]").click()
    first_row = page.locator("table.q-sortable tbody tr").first
    assert "clicker" not in first_row.inner_text()  # best agreement first: an honest rater
    page.locator("button.q-sort[data-key=agreement]").click()
    page.locator("table.q-sortable tbody tr").first.locator("a").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("text=consensus prefers").count() > 0
    page.fill("#suspend-reason", "Random clicking.")
    page.check("input[name=reject_pending]")
    page.click("[data-testid=suspend-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=rater-status]").inner_text() == "suspended"
    assert "1 leases released" in page.locator(".messages").inner_text()
    screenshot(page, "review-rater-suspended")

    lease.refresh_from_db()
    assert lease.status == Assignment.Status.RELEASED
    assert not Judgment.objects.filter(rater=clicker, review_status=ReviewStatus.PENDING).exists()
    with pytest.raises(NotPermitted):
        leasing.assignment_next(project=project, rater=clicker)
    refused = api_as(clicker).post(f"/api/projects/{project.pk}/assignments/next/")
    assert refused.status_code == 403
