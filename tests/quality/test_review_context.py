"""A judgment in context: GET /api/judgments/{id}/ and the review page."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from apps.collection import leasing, services
from apps.collection.models import Judgment, ReviewStatus, Task
from apps.core.roles import Role
from apps.quality import services as quality_services
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db


def _rank(project, rater, order, **extra):
    """Lease the rater's next task; rank it with `order(display_order)` best first."""
    assignment = leasing.assignment_next(project=project, rater=rater)
    shown = list(assignment.display_order)
    ranking = order(shown)
    judgment, _ = services.judgment_submit(
        assignment_id=assignment.pk,
        rater=rater,
        client_key=uuid.uuid4(),
        ranking=ranking,
        time_spent_ms=41_000,
        **extra,
    )
    return judgment, shown


@pytest.fixture
def judged_task(db, project, reviewer):
    """One task of K = 4 answered by three raters; the first one with every detail."""
    task = make_task(project, overlap=3)
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(3)]
    ties = lambda shown: [[shown[2]], [shown[0], shown[3]], [shown[1]]]  # noqa: E731
    main, shown = _rank(
        project,
        raters[0],
        ties,
        likert={str(shown_id): 4 for shown_id in []},
        rationale="The third answer shown is the only correct one.",
    )
    Judgment.objects.filter(pk=main.pk).update(
        likert={str(shown[2]): 7, str(shown[1]): 1},
        flags={str(shown[1]): ["hallucination"]},
    )
    best = shown[2]  # the first rater's best; the others agree, then rank the rest by id
    for rater in raters[1:]:
        _rank(project, rater, lambda seen: [[best]] + [[c] for c in sorted(seen) if c != best])
    main.refresh_from_db()
    return task, main, shown, raters


def test_a_reviewer_sees_the_judgment_as_the_rater_saw_it(judged_task, api_as, reviewer):
    task, judgment, shown, raters = judged_task
    body = api_as(reviewer).get(f"/api/judgments/{judgment.pk}/").json()
    assert body["prompt"]["text"] == task.prompt.text
    assert [c["id"] for c in body["completions"]] == shown  # the rater's order
    assert [c["shown_at"] for c in body["completions"]] == [1, 2, 3, 4]
    assert [c["place"] for c in body["completions"]] == [2, 3, 1, 2]  # a tie shares 2nd
    texts = dict(task.task_completions.values_list("completion_id", "completion__text"))
    assert [c["text"] for c in body["completions"]] == [texts[cid] for cid in shown]
    assert body["completions"][2]["likert"] == 7 and body["completions"][1]["likert"] == 1
    assert body["completions"][1]["flags"] == ["hallucination"]
    assert body["rationale"] == "The third answer shown is the only correct one."
    assert body["time_spent_ms"] == 41_000
    assert body["rater"] == {"id": raters[0].pk, "pseudonym": raters[0].rater_profile.pseudonym}
    assert body["gold"] is None and body["review"]["status"] == "pending"
    assert {o["rater"]["id"] for o in body["others"]} == {r.pk for r in raters[1:]}
    assert all(o["ranking"] and o["time_spent_ms"] == 41_000 for o in body["others"])
    consensus = body["consensus"]
    assert consensus["judgments"] == 3 and consensus["raters"] == 3
    # every rater put the third answer shown first, so the consensus does too
    assert consensus["ranking"][0] == [shown[2]]
    assert 0 < consensus["tau_with_this"] <= 1


def test_a_gold_task_shows_its_answer(db, project, reviewer, api_as):
    gold = make_task(project, is_gold=True, overlap=1, gold_ranking="canonical")
    project.gold_rate = 1.0  # serve gold
    project.save()
    judgment, shown = _rank(project, UserFactory(roles=[Role.LABELER]), lambda s: [[c] for c in s])
    assert judgment.task_id == gold.pk
    body = api_as(reviewer).get(f"/api/judgments/{judgment.pk}/").json()
    canonical = list(
        gold.task_completions.order_by("position").values_list("completion_id", flat=True)
    )
    assert body["gold"]["ranking"] == [[cid] for cid in canonical]
    assert body["others"] == []


def test_the_review_page_shows_answers_side_by_side_and_walks_the_queue(judged_task, reviewer):
    task, judgment, shown, raters = judged_task
    browser = Client()
    browser.force_login(reviewer)
    html = browser.get(f"/review/judgments/{judgment.pk}/").content.decode()
    positions = [html.index(f'data-completion="{cid}"') for cid in shown]
    assert positions == sorted(positions)  # in the rater's order
    assert "ranked 1st" in html and "C ≻ A = D ≻ B" in html
    assert "The third answer shown is the only correct one." in html
    assert "41 s" in html and "hallucination" in html
    assert raters[0].rater_profile.pseudonym in html
    assert 'id="next-link"' in html  # two more pending judgments of the task

    # approving from the page goes on to the next judgment in the queue
    following = browser.post(
        f"/review/judgments/{judgment.pk}/review/",
        {"decision": "approve", "next": f"/review/judgments/{judgment.pk}/"},
    )
    assert following.status_code == 302
    judgment.refresh_from_db()
    assert judgment.review_status == ReviewStatus.APPROVED


def test_the_queue_lists_answers_in_each_raters_order(judged_task, reviewer, project):
    task, judgment, shown, raters = judged_task
    quality_services.quality_snapshot_refresh(project_id=project.pk)
    browser = Client()
    browser.force_login(reviewer)
    html = browser.get(f"/review/projects/{project.pk}/queue/").content.decode()
    assert html.count("in context</a>") == 3
    assert "C ≻ A = D ≻ B" in html
    first_answer = task.task_completions.get(completion_id=shown[0]).completion.text
    assert first_answer[:40] in html
    assert Task.objects.get(pk=task.pk).judgments.count() == 3
