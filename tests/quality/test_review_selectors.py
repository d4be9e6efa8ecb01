"""The reads behind the reviewer pages (apps/quality/selectors.py)."""

from __future__ import annotations

import pytest

from apps.collection.models import Judgment, ReviewStatus
from apps.quality import selectors, services
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_pending_counts_per_project_and_per_rater(rated_project, reviewer):
    project, _, raters = rated_project
    assert selectors.pending_reviews_count(project=project) == 24  # 6 tasks × 4 raters
    first = Judgment.objects.filter(rater=raters[0]).order_by("pk").first()
    services.judgment_review(
        judgment_id=first.pk, reviewer=reviewer, decision="approve", reason="fine"
    )
    assert selectors.pending_reviews_count(project=project) == 23
    assert selectors.pending_reviews_count(project=project, rater=raters[0]) == 5
    assert selectors.pending_reviews_count(project=project, rater=raters[1]) == 6
    (decision,) = selectors.review_decisions_recent(project=project, limit=10)
    assert (decision.judgment_id, decision.reviewer) == (first.pk, reviewer)


def test_only_the_reviewers_projects_with_their_pending_counts(rated_project, reviewer):
    project, _, _ = rated_project
    ProjectFactory()  # not reviewed by this reviewer
    Judgment.objects.filter(task__project=project).update(review_status=ReviewStatus.APPROVED)
    rows = list(selectors.projects_with_pending_reviews(user=reviewer))
    assert [(p.pk, p.pending) for p in rows] == [(project.pk, 0)]
