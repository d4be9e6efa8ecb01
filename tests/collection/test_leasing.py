"""The assignment engine, called directly (single thread)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.collection.leasing import assignment_next, task_taken_slots
from apps.collection.models import Assignment, Task
from apps.collection.services import assignment_skip, judgment_submit
from apps.core.errors import NotPermitted
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def submit(assignment, rater, key):
    return judgment_submit(
        assignment_id=assignment.pk,
        rater=rater,
        client_key=key,
        ranking=[[cid] for cid in assignment.display_order],
    )


def test_no_tasks_gives_none(project, labeler):
    assert assignment_next(project=project, rater=labeler) is None


def test_lease_has_expiry_and_a_permutation_of_the_completions(project, labeler):
    task = make_task(project, k=4)
    before = timezone.now()
    assignment = assignment_next(project=project, rater=labeler)
    assert assignment.task_id == task.pk
    assert assignment.status == Assignment.Status.LEASED
    expected = set(task.task_completions.values_list("completion_id", flat=True))
    assert set(assignment.display_order) == expected and len(assignment.display_order) == 4
    lease = (assignment.expires_at - before).total_seconds()
    assert project.lease_seconds - 5 <= lease <= project.lease_seconds + 5


def test_display_orders_differ_between_raters(project):
    make_task(project, k=9, overlap=30)
    orders = set()
    for _ in range(12):
        rater = UserFactory(roles=[Role.LABELER])
        orders.add(tuple(assignment_next(project=project, rater=rater).display_order))
    # 12 random permutations of 9 items: all equal has probability (1/9!)^11.
    assert len(orders) > 1


def test_asking_again_returns_the_same_live_lease(project, labeler):
    make_task(project)
    make_task(project)
    first = assignment_next(project=project, rater=labeler)
    again = assignment_next(project=project, rater=labeler)
    assert again.pk == first.pk
    assert Assignment.objects.filter(rater=labeler).count() == 1


def test_a_rater_never_gets_the_same_task_twice(project, labeler):
    task = make_task(project, overlap=5)
    first = assignment_next(project=project, rater=labeler)
    submit(first, labeler, "00000000-0000-0000-0000-000000000001")
    assert assignment_next(project=project, rater=labeler) is None
    assert Assignment.objects.filter(task=task, rater=labeler).count() == 1


def test_overlap_bounds_live_plus_finished(project):
    task = make_task(project, overlap=2)
    raters = [UserFactory(roles=[Role.LABELER]) for _ in range(3)]
    a1 = assignment_next(project=project, rater=raters[0])
    a2 = assignment_next(project=project, rater=raters[1])
    assert a1.task_id == a2.task_id == task.pk
    assert assignment_next(project=project, rater=raters[2]) is None
    assert task_taken_slots(task_id=task.pk, now=timezone.now()) == 2


def test_an_expired_lease_frees_its_slot(project):
    task = make_task(project, overlap=1)
    first, second = UserFactory(roles=[Role.LABELER]), UserFactory(roles=[Role.LABELER])
    lease = assignment_next(project=project, rater=first)
    assert assignment_next(project=project, rater=second) is None
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignment_next(project=project, rater=second).task_id == task.pk
    # The first rater's lease is no longer live, and they never get that task again.
    assert assignment_next(project=project, rater=first) is None


def test_a_skip_frees_the_slot_and_the_task_never_returns(project):
    task = make_task(project, overlap=1)
    first, second = UserFactory(roles=[Role.LABELER]), UserFactory(roles=[Role.LABELER])
    lease = assignment_next(project=project, rater=first)
    assignment_skip(assignment_id=lease.pk, rater=first, reason="Not my language")
    assert Assignment.objects.get(pk=lease.pk).skip_reason == "Not my language"
    assert assignment_next(project=project, rater=first) is None
    assert assignment_next(project=project, rater=second).task_id == task.pk


def test_higher_priority_first_then_oldest(project, labeler):
    old_low = make_task(project, priority=0)
    high = make_task(project, priority=5)
    newer_low = make_task(project, priority=0)
    served = []
    for n in range(3):
        lease = assignment_next(project=project, rater=labeler)
        served.append(lease.task_id)
        submit(lease, labeler, f"00000000-0000-0000-0000-00000000010{n}")
    assert served == [high.pk, old_low.pk, newer_low.pk]


def test_completed_task_is_marked_and_leaves_the_queue(project):
    task = make_task(project, overlap=2)
    for n in range(2):
        rater = UserFactory(roles=[Role.LABELER])
        submit(
            assignment_next(project=project, rater=rater),
            rater,
            f"{n:08d}-0000-0000-0000-000000000000",
        )
    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETE


def test_gold_tasks_come_at_the_project_rate():
    project = ProjectFactory(gold_rate=0.25, overlap=1)
    for _ in range(400):
        make_task(project, k=2, overlap=1)
    for _ in range(400):
        make_task(project, k=2, overlap=1000, is_gold=True, gold_ranking="canonical")
    rater = UserFactory(roles=[Role.LABELER])
    gold = 0
    n = 200
    for i in range(n):
        lease = assignment_next(project=project, rater=rater)
        gold += lease.task.is_gold
        submit(lease, rater, f"{i:08d}-1111-0000-0000-000000000000")
    # Binomial(200, 0.25): mean 50, sd 6.1; ±4 sd.
    assert 25 <= gold <= 75


def test_no_gold_when_the_rate_is_zero(project, labeler):
    make_task(project, is_gold=True, gold_ranking="canonical")
    assert assignment_next(project=project, rater=labeler) is None


def test_a_suspended_rater_gets_nothing(project, labeler):
    make_task(project)
    RaterProfile.objects.filter(user=labeler).update(status=RaterProfile.Status.SUSPENDED)
    with pytest.raises(NotPermitted):
        assignment_next(project=project, rater=labeler)
    assert not Assignment.objects.exists()


def test_leases_are_per_project(labeler):
    p1, p2 = ProjectFactory(), ProjectFactory()
    t1, t2 = make_task(p1), make_task(p2)
    assert assignment_next(project=p1, rater=labeler).task_id == t1.pk
    assert assignment_next(project=p2, rater=labeler).task_id == t2.pk
