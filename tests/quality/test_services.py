"""Review decisions, suspension, snapshots, consensus and their Celery plumbing."""

from __future__ import annotations

from fnmatch import fnmatch

import numpy as np
import pytest
from django.conf import settings

from apps.collection import leasing
from apps.collection.models import Assignment, Judgment, ReviewStatus
from apps.core.errors import InvalidInput, NotPermitted
from apps.core.roles import Role
from apps.quality import reading, reading_postgres, selectors, services, tasks
from apps.quality.models import QualitySnapshot, RaterStatusChange, ReviewDecision
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db


def test_review_records_who_and_why_and_refuses_bad_input(rated_project, reviewer):
    _, _, raters = rated_project
    judgment = Judgment.objects.filter(rater=raters[0]).first()
    services.judgment_review(
        judgment_id=judgment.pk, reviewer=reviewer, decision="reject", reason="Ranked blind."
    )
    judgment.refresh_from_db()
    assert judgment.review_status == ReviewStatus.REJECTED
    assert judgment.reviewed_by == reviewer and judgment.review_reason == "Ranked blind."
    decision = ReviewDecision.objects.get(judgment=judgment)
    assert (decision.decision, decision.previous_status) == ("reject", "pending")
    with pytest.raises(InvalidInput):
        services.judgment_review(judgment_id=judgment.pk, reviewer=reviewer, decision="reject")
    with pytest.raises(InvalidInput):
        services.judgment_review(judgment_id=judgment.pk, reviewer=reviewer, decision="maybe")
    assert ReviewDecision.objects.count() == 1


def test_nobody_reviews_their_own_judgment(rated_project):
    _, _, raters = rated_project
    judgment = Judgment.objects.filter(rater=raters[0]).first()
    with pytest.raises(NotPermitted):
        services.judgment_review(judgment_id=judgment.pk, reviewer=raters[0], decision="approve")


def test_bulk_review_is_all_or_nothing(rated_project, reviewer):
    project, _, raters = rated_project
    ids = list(Judgment.objects.filter(rater=raters[1]).values_list("pk", flat=True))
    with pytest.raises(InvalidInput):
        services.judgments_review_bulk(
            project=project, judgment_ids=[*ids, 10**9], reviewer=reviewer, decision="approve"
        )
    assert not Judgment.objects.filter(review_status=ReviewStatus.APPROVED).exists()
    assert services.judgments_review_bulk(
        project=project, judgment_ids=ids, reviewer=reviewer, decision="approve"
    ) == len(ids)
    assert ReviewDecision.objects.filter(bulk=True).count() == len(ids)


def test_snapshot_measures_raters_and_bulk_approves_the_reliable(rated_project, reviewer):
    project, _, raters = rated_project
    snapshot = services.quality_snapshot_refresh(project_id=project.pk)
    assert snapshot.judgments == 24
    rows = {row["rater_id"]: row for row in snapshot.data["raters"]}
    assert rows[raters[0].pk]["agreement"] == 1.0
    assert rows[raters[3].pk]["agreement"] == 0.0
    assert rows[raters[3].pk]["weight"] < rows[raters[0].pk]["weight"]
    assert snapshot.data["project"]["pairwise_agreement"] == pytest.approx(0.5)
    approved = services.judgments_approve_reliable(
        project=project, reviewer=reviewer, min_agreement=0.9
    )
    assert approved == 18
    assert not Judgment.objects.filter(
        rater=raters[3], review_status=ReviewStatus.APPROVED
    ).exists()


def test_task_consensus_follows_the_reliable_raters(rated_project):
    project, tasks_, _ = rated_project
    services.quality_snapshot_refresh(project_id=project.pk)
    task = tasks_[0]
    consensus = selectors.task_consensus(task_id=task.pk)
    ids = sorted(consensus["completion_ids"])
    assert consensus["ranking"] == [[ids[0]], [ids[1]], [ids[2]]]
    assert consensus["judgments"] == 4 and consensus["raters"] == 4
    p = consensus["p_prefer"]
    assert p[ids[0]][ids[2]] > 0.9
    assert p[ids[0]][ids[1]] + p[ids[1]][ids[0]] == pytest.approx(1.0)
    batch = selectors.project_consensus(project=project)
    assert batch[task.pk]["ranking"] == consensus["ranking"]


def test_suspending_releases_leases_rejects_pending_and_stops_work(db, project, reviewer):
    rater = UserFactory(roles=[Role.LABELER])
    for _ in range(3):
        make_task(project)
    from tests.quality.conftest import answer

    answer(project, rater)
    lease = leasing.assignment_next(project=project, rater=rater)
    change = services.rater_suspend(
        rater=rater, actor=reviewer, reason="Random clicking.", reject_pending=True
    )
    assert (change.leases_released, change.judgments_rejected) == (1, 1)
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.RELEASED
    assert Judgment.objects.get(rater=rater).review_status == ReviewStatus.REJECTED
    with pytest.raises(NotPermitted):
        leasing.assignment_next(project=project, rater=rater)
    with pytest.raises(InvalidInput):
        services.rater_suspend(rater=rater, actor=reviewer, reason="Again.")
    services.rater_reinstate(rater=rater, actor=reviewer, reason="Retrained.")
    assert leasing.assignment_next(project=project, rater=rater) is not None
    assert list(RaterStatusChange.objects.order_by("pk").values_list("action", flat=True)) == [
        "suspend",
        "reinstate",
    ]


def test_refresh_is_enqueued_after_commit_and_the_task_stores_a_snapshot(
    rated_project, monkeypatch, django_capture_on_commit_callbacks
):
    project, _, _ = rated_project
    queued = []
    monkeypatch.setattr(tasks.quality_snapshot_refresh_task, "delay", lambda *a: queued.append(a))
    with django_capture_on_commit_callbacks(execute=True):
        services.quality_refresh_request(project=project)
        services.quality_refresh_request(project=project, full=True)
        assert queued == []
    assert queued == [(project.pk, False), (project.pk, True)]
    assert tasks.quality_snapshot_refresh_task.run(project.pk) is not None
    assert tasks.quality_snapshot_refresh_task.run(10**9) is None
    assert QualitySnapshot.objects.filter(project=project).count() == 1
    options = tasks.quality_snapshot_refresh_task
    assert options.acks_late and options.max_retries == 3
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    for name in (options.name, tasks.quality_snapshots_refresh_all_task.name):
        routed = [r["queue"] for pattern, r in routes.items() if fnmatch(name, pattern)]
        assert routed in ([], ["default"]), name
    beat = settings.CELERY_BEAT_SCHEDULE["quality-snapshots"]
    assert beat["task"] == tasks.quality_snapshots_refresh_all_task.name


def test_snapshots_of_empty_and_tiny_projects(db, project):
    empty = services.quality_snapshot_refresh(project_id=project.pk)
    assert empty.judgments == 0 and empty.data["raters"] == []
    assert empty.data["project"]["pairwise_agreement"] is None
    from tests.quality.conftest import answer

    make_task(project)
    answer(project, UserFactory(roles=[Role.LABELER]))
    tiny = services.quality_snapshot_refresh(project_id=project.pk)
    assert tiny.judgments == 1 and tiny.data["raters"][0]["agreement"] is None
    assert selectors.snapshot_latest(project=project) == tiny


def test_the_postgres_reader_equals_the_portable_one(rated_project, reviewer):
    project, tasks_, raters = rated_project
    judgment = Judgment.objects.filter(rater=raters[2]).first()
    ids = [cid for group in judgment.ranking for cid in group]
    Judgment.objects.filter(pk=judgment.pk).update(
        ranking=[[ids[0], ids[1]], [ids[2]]],  # a tie
        flags={str(ids[0]): ["hallucination", "fails_instruction"], str(ids[2]): ["unknown"]},
    )
    services.judgment_review(
        judgment_id=judgment.pk, reviewer=reviewer, decision="reject", reason="Tie."
    )
    Judgment.objects.filter(pk=judgment.pk + 1).update(time_spent_ms=None)
    gold = tasks_[0]
    canonical = list(
        gold.task_completions.order_by("position").values_list("completion_id", flat=True)
    )
    selectors.Task.objects.filter(pk=gold.pk).update(
        is_gold=True, gold_ranking=[[canonical[2]], [canonical[0], canonical[1]]]
    )
    tasks_qs = selectors.Task.objects.filter(project=project)
    flag_keys = project.flag_keys
    after = sorted(Judgment.objects.values_list("pk", flat=True))[10]
    for after_id in (None, after):
        fast = reading_postgres.arrays_postgres(tasks_qs, flag_keys, after_id, reading.rater_names)
        portable = reading._arrays_generic(tasks_qs, flag_keys, after_id)
        assert_same_arrays(fast, portable)
        assert fast.task.size == (24 if after_id is None else 13)
    assert fast.flags.any() and not fast.included.all() and np.isnan(fast.time_spent_ms).any()
    everything = reading.judgment_arrays(project=project)
    assert everything.task_is_gold.sum() == 1
    assert everything.task_gold_pos[everything.task_is_gold].tolist() == [[1, 1, 0]]
    assert fast.rater_names == portable.rater_names


def assert_same_arrays(fast, portable):
    for name in [
        "task",
        "rater",
        "rank_pos",
        "first_shown",
        "created",
        "time_spent_ms",
        "flags",
        "included",
        "reviewed",
        "task_is_gold",
        "task_gold_pos",
        "task_lengths",
        "task_ids",
        "rater_ids",
        "judgment_ids",
    ]:
        a, b = getattr(fast, name), getattr(portable, name)
        assert a.shape == b.shape, name
        assert np.array_equal(a.astype(float), b.astype(float), equal_nan=True), name
