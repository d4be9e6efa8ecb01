"""Dynamic overlap: the consensus decides, on the submit that fills a task, whether it needs
another rater. Posteriors worked out by hand (apps/quality/confidence.py)."""

from __future__ import annotations

import math
import uuid

import pytest
from django.utils import timezone

from apps.collection import allowance
from apps.collection.leasing import assignment_next
from apps.collection.models import Task
from apps.collection.services import judgment_submit, task_create
from apps.quality.models import OverlapDecision, RaterReliability
from apps.quality.overlap import task_slot_decide
from tests.factories import CompletionFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    # Two raters of the prior accuracy 0.75 who agree: posterior 0.9 ≥ 0.85.
    return ProjectFactory(
        k=2, overlap=2, dynamic_overlap=True, overlap_max=4, confidence_target=0.85
    )


def ranking_task(project, *, is_gold=False, overlap=None, k=2):
    prompt = PromptFactory(project=project)
    completions = [CompletionFactory(prompt=prompt) for _ in range(k)]
    return task_create(
        project=project, prompt=prompt, completions=completions, is_gold=is_gold, overlap=overlap
    )


def answer(project, rater, best_first: str) -> Task:
    """The rater takes the next task and ranks its first completion best ("first") or last."""
    lease = assignment_next(project=project, rater=rater)
    assert lease is not None
    ids = sorted(lease.display_order)
    ranking = [[ids[0]], [ids[1]]] if best_first == "first" else [[ids[1]], [ids[0]]]
    judgment_submit(assignment_id=lease.pk, rater=rater, client_key=uuid.uuid4(), ranking=ranking)
    return Task.objects.get(pk=lease.task_id)


def test_ranking_tasks_start_at_the_minimum_and_gold_and_explicit_ones_stay_fixed(project):
    task = ranking_task(project)
    assert (task.overlap, task.max_overlap) == (2, 4)
    assert ranking_task(project, is_gold=True).max_overlap is None
    assert ranking_task(project, overlap=1).max_overlap is None
    fixed = ProjectFactory(overlap=3)
    assert ranking_task(fixed).max_overlap is None


def test_two_agreeing_raters_complete_the_task(project):
    task = ranking_task(project)
    raters = [UserFactory() for _ in range(2)]
    answer(project, raters[0], "first")
    task.refresh_from_db()
    assert task.status == Task.Status.OPEN and not OverlapDecision.objects.exists()
    answer(project, raters[1], "first")
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.COMPLETE, 2)
    decision = OverlapDecision.objects.get()
    assert decision.outcome == OverlapDecision.Outcome.COMPLETE
    assert decision.confidence == pytest.approx(0.9)
    assert decision.judgments == 2
    assert decision.reason.startswith("Complete: 90% sure of the order")


def test_disagreement_adds_raters_one_at_a_time_up_to_a_settled_order(project):
    task = ranking_task(project)
    raters = [UserFactory() for _ in range(5)]
    answer(project, raters[0], "first")
    answer(project, raters[1], "last")  # 1–1: posterior 1/2
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.OPEN, 3)
    answer(project, raters[2], "first")  # 2–1: σ(log 3) = 0.75 < 0.85
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.OPEN, 4)
    answer(project, raters[3], "first")  # 3–1: σ(2 log 3) = 0.9
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.COMPLETE, 4)
    assert assignment_next(project=project, rater=raters[4]) is None
    decisions = list(OverlapDecision.objects.order_by("created_at", "pk"))
    assert [(d.judgments, d.outcome) for d in decisions] == [
        (2, "extend"),
        (3, "extend"),
        (4, "complete"),
    ]
    assert [d.confidence for d in decisions] == pytest.approx([0.5, 0.75, 0.9])
    assert decisions[0].reason.startswith("One more rater (3 of at most 4): 50% sure")


def test_a_split_at_the_maximum_completes_with_the_reason(project):
    task = ranking_task(project)
    raters = [UserFactory() for _ in range(4)]
    for rater, side in zip(raters, ["first", "last", "first", "last"], strict=True):
        answer(project, rater, side)
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.COMPLETE, 4)
    last = OverlapDecision.objects.order_by("-judgments").first()
    assert last.outcome == OverlapDecision.Outcome.LIMIT
    assert last.reason.startswith("Complete at the maximum of 4 raters: 50% sure")


def test_the_raters_measured_weights_count(project):
    """A reliable rater (accuracy 0.95) and an adversarial one (weight 0) disagree: the
    posterior is the reliable rater's alone, σ(log 19) = 0.95, and the task is complete."""
    task = ranking_task(project)
    good, bad = UserFactory(), UserFactory()
    now = timezone.now()
    RaterReliability.objects.create(
        project=project, rater=good, weight=math.log(19), updated_at=now
    )
    RaterReliability.objects.create(project=project, rater=bad, weight=0.0, updated_at=now)
    answer(project, good, "first")
    answer(project, bad, "last")
    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETE
    assert OverlapDecision.objects.get().confidence == pytest.approx(0.95)


def test_without_a_decider_a_full_task_completes(project, monkeypatch):
    monkeypatch.setattr(allowance, "_decider", None)
    task = ranking_task(project)
    answer(project, UserFactory(), "first")
    answer(project, UserFactory(), "last")
    task.refresh_from_db()
    assert (task.status, task.overlap) == (Task.Status.COMPLETE, 2)


def test_the_decider_is_registered_by_the_quality_app():
    assert allowance.slot_decider() is task_slot_decide


def test_four_way_ranking_extends_on_its_weakest_adjacent_pair():
    project = ProjectFactory(
        k=4, overlap=2, dynamic_overlap=True, overlap_max=3, confidence_target=0.85
    )
    task = ranking_task(project, k=4)
    raters = [UserFactory() for _ in range(2)]
    ids = []
    for rater, swap in zip(raters, [False, True], strict=True):
        lease = assignment_next(project=project, rater=rater)
        ids = sorted(lease.display_order)
        order = [ids[0], ids[2], ids[1], ids[3]] if swap else ids
        judgment_submit(
            assignment_id=lease.pk,
            rater=rater,
            client_key=uuid.uuid4(),
            ranking=[[cid] for cid in order],
        )
    task.refresh_from_db()
    assert task.overlap == 3
    decision = OverlapDecision.objects.get()
    # They agree on every pair but the middle one, which they split: posterior 1/2 there.
    assert decision.confidence == pytest.approx(0.5)
    assert f"least sure that #{ids[1]} beats #{ids[2]}" in decision.reason or (
        f"least sure that #{ids[2]} beats #{ids[1]}" in decision.reason
    )


def test_a_statistics_refresh_stores_each_raters_weight(project):
    from apps.quality.services import quality_snapshot_refresh

    ranking_task(project)
    raters = [UserFactory() for _ in range(2)]
    answer(project, raters[0], "first")
    answer(project, raters[1], "first")
    snapshot = quality_snapshot_refresh(project_id=project.pk)
    stored = dict(RaterReliability.objects.values_list("rater_id", "weight"))
    expected = {row["rater_id"]: row["weight"] for row in snapshot.data["raters"]}
    assert stored == pytest.approx(expected) and set(stored) == {r.pk for r in raters}
    quality_snapshot_refresh(project_id=project.pk)  # refreshed again: updated, not duplicated
    assert RaterReliability.objects.count() == 2
