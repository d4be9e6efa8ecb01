"""Reviewing in context in a real browser: the queue shows answers, a judgment opens with the
answers side by side in the rater's order, and the keyboard approves, rejects and moves on.
The dashboard of stale statistics says so and shows the new ones when they land."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.collection.models import Judgment, ReviewStatus
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.quality import services
from tests.browser import log_in, screenshot
from tests.factories import ProjectFactory, UserFactory, make_task
from tests.quality.conftest import answer, by_id, by_id_reversed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def judged(db):
    project = ProjectFactory(name="Summaries", k=3, overlap=3)
    for _ in range(2):
        task = make_task(project)
        for i, tc in enumerate(task.task_completions.order_by("position")):
            tc.completion.text = f"Answer {'ABC'[i]} of task {task.pk}: " + "words " * (i + 2)
            tc.completion.save()
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(3)]
    for rater, order in zip(raters, [by_id, by_id, by_id_reversed], strict=True):
        for _ in range(2):
            answer(project, rater, order)
    reviewer = UserFactory(username="rita", roles=[Role.REVIEWER])
    membership_add(project=project, user=reviewer, role=Role.REVIEWER)
    return project


def test_a_reviewer_reviews_in_context_by_keyboard(page, live_server, judged):
    project = judged
    services.quality_snapshot_refresh(project_id=project.pk)
    log_in(page, live_server, "rita", next_url=f"/review/projects/{project.pk}/queue/")
    table = page.get_by_test_id("queue-table")
    first = Judgment.objects.order_by("created_at", "pk").first()
    first_text = first.task.task_completions.get(completion_id=first.display_order[0])
    expect(table).to_contain_text(first_text.completion.text[:30])  # answers, not ids
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/review/judgments/{first.pk}/.*"))

    # the answers side by side, in the order this rater saw them
    shown = page.eval_on_selector_all(
        "[data-testid=answers] [data-completion]",
        "cards => cards.map(c => Number(c.dataset.completion))",
    )
    assert shown == first.display_order
    boxes = [page.locator(f"[data-completion='{cid}']").bounding_box() for cid in shown]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]  # side by side
    expect(page.get_by_test_id("prompt")).to_have_text(first.task.prompt.text)
    expect(page.get_by_test_id("others")).to_contain_text(
        Judgment.objects.exclude(pk=first.pk)
        .filter(task=first.task)
        .first()
        .rater.rater_profile.pseudonym
    )
    screenshot(page, "review-in-context")

    # typing in the reason box does not approve; r asks for the reason, Enter rejects
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    expect(page.locator("#decide-reason")).to_be_focused()
    page.keyboard.type("a reversed ranking")
    first.refresh_from_db()
    assert first.review_status == ReviewStatus.PENDING  # the a typed here approved nothing
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/review/judgments/(?!{first.pk}/)\d+/.*"))
    first.refresh_from_db()
    assert first.review_status == ReviewStatus.REJECTED
    assert first.review_reason == "a reversed ranking"

    # a approves and goes on
    second_id = int(re.search(r"/review/judgments/(\d+)/", page.url).group(1))
    page.keyboard.press("a")
    page.wait_for_url(re.compile(rf".*/review/judgments/(?!{second_id}/)\d+/.*"))
    assert Judgment.objects.get(pk=second_id).review_status == ReviewStatus.APPROVED
    page.keyboard.press("q")
    page.wait_for_url(re.compile(rf".*/review/projects/{project.pk}/queue/.*"))


def test_stale_statistics_say_so_and_show_the_new_ones_when_they_land(page, live_server, judged):
    project = judged
    log_in(page, live_server, "rita", next_url=f"/review/projects/{project.pk}/")
    freshness = page.get_by_test_id("freshness")
    expect(freshness).to_contain_text("No statistics computed yet: a refresh is queued")
    services.quality_snapshot_refresh(project_id=project.pk)  # what the worker does
    expect(freshness).to_contain_text("Statistics computed", timeout=15_000)  # page reloaded
    expect(page.get_by_test_id("agreement")).to_be_visible()
