"""Adaptive collection in the browser: a researcher turns dynamic overlap on, raters work, a
reviewer reads each task's confidence and the judgments saved; a round page shows how its
prompts were chosen and how uncertain they were."""

from __future__ import annotations

import uuid

import pytest

from apps.collection.leasing import assignment_next
from apps.collection.models import PolicyVersion
from apps.collection.services import judgment_submit, membership_add, task_create
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound, TrainingRun
from tests.browser import log_in, screenshot
from tests.factories import CompletionFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_sets_dynamic_overlap_and_reviewer_sees_confidence(page, live_server):
    project = ProjectFactory(name="Adaptive", k=2, overlap=3)
    rosalind = UserFactory(username="rosalind", roles=[Role.RESEARCHER, Role.REVIEWER])
    membership_add(project=project, user=rosalind, role=Role.RESEARCHER)
    membership_add(project=project, user=rosalind, role=Role.REVIEWER)
    log_in(page, live_server, "rosalind", next_url=f"/research/projects/{project.pk}/collection/")

    form = page.locator('[data-testid="overlap-form"]')
    form.locator('input[name="overlap_max"]').fill("1")
    form.locator('input[name="dynamic_overlap"]').check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=overlap max: Cannot be below the overlap a task starts with.")
    project.refresh_from_db()
    assert project.dynamic_overlap is False  # refused whole

    form.locator('input[name="dynamic_overlap"]').check()
    form.locator('input[name="overlap"]').fill("2")
    form.locator('input[name="overlap_max"]').fill("4")
    form.locator('input[name="confidence_target"]').fill("0.85")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Overlap settings saved")
    project.refresh_from_db()
    assert (project.dynamic_overlap, project.overlap, project.overlap_max) == (True, 2, 4)
    assert project.confidence_target == 0.85

    # Two tasks: the raters agree on one and split on the other.
    tasks = []
    for _ in range(2):
        prompt = PromptFactory(project=project, text=f"Question {len(tasks)}?")
        tasks.append(
            task_create(
                project=project,
                prompt=prompt,
                completions=[CompletionFactory(prompt=prompt) for _ in range(2)],
            )
        )
    for flip in (False, True):
        rater = UserFactory()
        for _ in range(2):
            lease = assignment_next(project=project, rater=rater)
            ids = sorted(lease.display_order)
            order = ids[::-1] if flip and lease.task_id == tasks[1].pk else ids
            judgment_submit(
                assignment_id=lease.pk,
                rater=rater,
                client_key=uuid.uuid4(),
                ranking=[[cid] for cid in order],
            )

    page.goto(f"{live_server.url}/review/projects/{project.pk}/")
    section = page.locator('[data-testid="dynamic-overlap"]')
    assert "2 judgments saved" in section.locator('[data-testid="overlap-saved"]').inner_text()
    rows = section.locator('[data-testid="overlap-tasks"] tbody tr')
    assert rows.count() == 2
    texts = [rows.nth(i).inner_text() for i in range(2)]
    assert any("90.0%" in t and "Complete: confident" in t for t in texts)
    assert any("50.0%" in t and "One more rater (3 of at most 4)" in t for t in texts)
    screenshot(page, "dynamic-overlap")

    page.goto(f"{live_server.url}/research/projects/{project.pk}/collection/")
    summary = page.locator('[data-testid="overlap-summary"]').inner_text()
    assert "1 of 2 dynamic-overlap tasks complete" in summary and "2 saved" in summary


def test_round_page_shows_the_selection_and_its_uncertainties(page, live_server):
    project = ProjectFactory(name="Rounds")
    rosalind = UserFactory(username="rosalind", roles=[Role.RESEARCHER])
    membership_add(project=project, user=rosalind, role=Role.RESEARCHER)
    policy = PolicyVersion.objects.create(project=project, name="base")
    prompts = [PromptFactory(project=project, text=f"Prompt number {i}") for i in range(2)]
    training_round = TrainingRound.objects.create(
        project=project,
        number=2,
        start_policy=policy,
        stage=Stage.COLLECTING,
        config={"selection": "uncertainty"},
    )
    TrainingRun.objects.create(
        round=training_round,
        stage=Stage.SAMPLING,
        status=TrainingRun.Status.SUCCEEDED,
        metrics={
            "selection": {
                "strategy": "uncertainty",
                "used": "uncertainty",
                "measure": "4·p(1−p)",
                "reward_model": "run 9 (round 1)",
                "note": "",
                "tasks": [
                    {
                        "prompt_id": prompts[1].pk,
                        "task_id": 11,
                        "shown": [0, 2],
                        "priority": 930,
                        "uncertainty": 0.93,
                    },
                    {
                        "prompt_id": prompts[0].pk,
                        "task_id": 10,
                        "shown": [1, 3],
                        "priority": 410,
                        "uncertainty": 0.41,
                    },
                ],
            }
        },
    )
    log_in(page, live_server, "rosalind", next_url=f"/research/rounds/{training_round.pk}/")
    section = page.locator('[data-testid="selection"]')
    text = section.inner_text()
    assert "Selection: uncertainty" in text and "run 9 (round 1)" in text and "0.67" in text
    rows = section.locator('[data-testid="selection-tasks"] tbody tr')
    assert rows.count() == 2
    assert "Prompt number 1" in rows.nth(0).inner_text() and "0.93" in rows.nth(0).inner_text()
    screenshot(page, "round-selection")
