"""The labeler home says why there is nothing to start: done, sampling, screening, suspended.
And the small things around it: the login keeps the username, the favicon is served."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import RaterProfile
from apps.collection.models import PolicyVersion
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.quality.models import ProjectQualitySettings, RaterScreening
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db


def _home(user) -> tuple[str, bool]:
    """The project's state sentence on the home page, and whether Start is enabled."""
    client = Client()
    client.force_login(user)
    html = client.get("/").content.decode()
    state = re.search(r'data-testid="project-state"[^>]*>([^<]*)<', html)
    start = re.search(r'<button[^>]*aria-label="Start labeling[^"]*"[^>]*>', html)
    return (state.group(1) if state else ""), bool(start) and "disabled" not in start.group(0)


@pytest.fixture
def labeler(db):
    return UserFactory(roles=[Role.LABELER])


def test_work_to_do_needs_no_explanation(project, labeler):
    make_task(project)
    assert _home(labeler) == ("", True)


def test_no_tasks_left(project, labeler):
    text, can_start = _home(labeler)
    assert text.startswith("No tasks left in this project") and not can_start


def test_a_round_sampling_says_when_tasks_come(project, labeler):
    base = PolicyVersion.objects.create(project=project, name="base")
    # the project's last sampling took 6 minutes; this one started a minute ago
    earlier = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.DONE
    )
    now = timezone.now()
    TrainingRun.objects.create(
        round=earlier,
        stage=Stage.SAMPLING,
        status=TrainingRun.Status.SUCCEEDED,
        started_at=now - timedelta(hours=2, minutes=6),
        finished_at=now - timedelta(hours=2),
    )
    sampling = TrainingRound.objects.create(
        project=project, number=2, start_policy=base, stage=Stage.SAMPLING
    )
    TrainingRun.objects.create(
        round=sampling,
        stage=Stage.SAMPLING,
        status=TrainingRun.Status.RUNNING,
        started_at=now - timedelta(minutes=1),
    )
    assert _home(labeler) == ("New tasks are being sampled: about 5 minutes.", False)


def test_the_demo_first_sampling_says_so_too(project, labeler):
    PolicyVersion.objects.create(
        project=project,
        name="base",
        metadata={"sampling_started_at": (timezone.now() - timedelta(minutes=2)).isoformat()},
    )
    assert _home(labeler) == ("New tasks are being sampled: about 3 minutes.", False)


def test_screening_says_how_far_along(project, labeler):
    ProjectQualitySettings.objects.create(project=project, screening_size=3)
    make_task(project, is_gold=True, overlap=10, gold_ranking="canonical")
    text, can_start = _home(labeler)
    assert text.startswith("You are in screening: answer 3 test tasks first (0 of 3 done)")
    assert can_start
    RaterScreening.objects.create(project=project, rater=labeler, state=RaterScreening.State.FAILED)
    text, can_start = _home(labeler)
    assert "did not pass" in text and not can_start


def test_a_suspended_rater_is_told_why(project, labeler):
    make_task(project)
    RaterProfile.objects.filter(user=labeler).update(
        status=RaterProfile.Status.SUSPENDED, status_reason="Random clicking."
    )
    text, can_start = _home(labeler)
    assert text == "Your account is suspended (Random clicking.). A reviewer can reinstate you."
    assert not can_start


def test_a_wrong_password_keeps_the_username(labeler):
    client = Client()
    html = client.post(
        "/accounts/login/", {"username": labeler.username, "password": "wrong"}
    ).content.decode()
    assert "did not match" in html
    field = re.search(r'<input id="id_username"[^>]*>', html).group(0)
    assert f'value="{labeler.username}"' in field and "autofocus" not in field
    assert "autofocus" in re.search(r'<input id="id_password"[^>]*>', html).group(0)


def test_the_favicon_is_served():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert b"\x89PNG" in body
