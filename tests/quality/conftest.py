from __future__ import annotations

import uuid

import pytest

from apps.collection import leasing, services
from apps.core.roles import Role
from apps.quality.models import ProjectQualitySettings
from tests.factories import UserFactory, make_task


def answer(project, rater, order=lambda shown: shown):
    """Lease the rater's next task and rank it: `order(display_order)` best first."""
    assignment = leasing.assignment_next(project=project, rater=rater)
    if assignment is None:
        return None
    ranking = [[cid] for cid in order(list(assignment.display_order))]
    judgment, _ = services.judgment_submit(
        assignment_id=assignment.pk,
        rater=rater,
        client_key=uuid.uuid4(),
        ranking=ranking,
        time_spent_ms=30_000,
    )
    return judgment


def by_id(shown):
    return sorted(shown)


def by_id_reversed(shown):
    return sorted(shown, reverse=True)


@pytest.fixture
def rated_project(project):
    """Six tasks, four raters: three rank by completion id, one reverses it. It is the
    `project` fixture's project, the one the `reviewer` fixture reviews."""
    project.k, project.overlap = 3, 4
    project.save(update_fields=["k", "overlap"])
    tasks = [make_task(project) for _ in range(6)]
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(4)]
    for rater, order in zip(raters, [by_id, by_id, by_id, by_id_reversed], strict=True):
        for _ in tasks:
            assert answer(project, rater, order) is not None
    return project, tasks, raters


@pytest.fixture
def screened_project(project):
    """Screening of 2 gold tasks at a 0.7 threshold, 3 gold tasks, 4 regular ones (in the
    `project` fixture's project)."""
    project.k, project.overlap = 3, 2
    project.save(update_fields=["k", "overlap"])
    ProjectQualitySettings.objects.create(
        project=project, screening_size=2, screening_threshold=0.7
    )
    gold = [
        make_task(project, is_gold=True, overlap=50, priority=i, gold_ranking="canonical")
        for i in range(3)
    ]
    regular = [make_task(project) for _ in range(4)]
    return project, gold, regular
