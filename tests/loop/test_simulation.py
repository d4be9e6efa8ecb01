"""Simulated raters: they wait for a round that starts late, stop within their bounds, and
find the site or say how to point them at it."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from apps.loop import simulation
from apps.loop.management.commands import simulate_raters
from apps.loop.simulation import SimulatedRater, simulate


class FakeSite:
    """The rater API of a project whose one ranking task appears only after `appear_after`
    polls for work; `coming` says what the command's round check would answer."""

    def __init__(self, appear_after: int) -> None:
        self.appear_after = appear_after
        self.polls = 0
        self.leased = False
        self.judgments: list[dict] = []

    def call(self, method: str, path: str, body: dict | None = None, token: str = ""):
        if path == "/api/auth/token/":
            return 200, {"token": f"token-{body['username']}"}
        if path.endswith("/assignments/next/"):
            self.polls += 1
            if self.polls <= self.appear_after or self.leased:
                return 204, None
            self.leased = True
            return 200, {
                "assignment_id": 7,
                "kind": "ranking",
                "prompt": {"text": "Why is the sky blue?"},
                "completions": [
                    {"id": 1, "text": "The sky is blue because air scatters blue light."},
                    {"id": 2, "text": "I'm sorry, I can't help with 3 4 5 !!"},
                ],
            }
        if path.endswith("/judgment/"):
            self.judgments.append(body)
            return 201, {"id": len(self.judgments)}
        raise AssertionError(f"unexpected call {method} {path}")


def raters():
    return [SimulatedRater(username="simrater1", noise=0.0)]


def test_raters_wait_while_a_round_is_coming_then_rate_it_then_stop(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(simulation.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(
        simulation.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s)
    )
    site = FakeSite(appear_after=50)
    # the round is sampling for the first 50 polls (50 s); --wait is only 10 s, so without
    # the round check the raters would have left long before its task appeared
    coming = lambda: site.polls <= 50  # noqa: E731
    waits: list[str] = []
    result = simulate(
        client=site,
        raters=raters(),
        password="pw",
        project_id=1,
        max_judgments=10,
        max_seconds=3600,
        idle_wait_seconds=10,
        work_coming=coming,
        on_wait=waits.append,
    )
    assert result.judgments == 1
    # the honest rater (noise 0) put the plain, on-topic answer first
    assert site.judgments[0]["ranking"] == [[1], [2]]
    assert result.stopped == "no task left and none coming for 10 s (--wait)"
    assert 60 <= result.seconds <= 62  # 50 s waiting for the round, then 10 s of --wait
    assert waits[0] == "a round of the project is sampling or collecting"


def test_raters_stop_at_max_seconds_even_while_a_round_is_coming(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(simulation.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(
        simulation.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s)
    )
    result = simulate(
        client=FakeSite(appear_after=10**9),
        raters=raters(),
        password="pw",
        project_id=1,
        max_judgments=10,
        max_seconds=30,
        idle_wait_seconds=10,
        work_coming=lambda: True,
    )
    assert result.judgments == 0
    assert result.stopped == "reached --max-seconds (30 s)"


@pytest.mark.django_db
def test_command_reads_the_address_make_run_wrote_and_says_how_when_nothing_answers(
    settings, tmp_path
):
    from tests.factories import ProjectFactory

    project = ProjectFactory()
    settings.VAR_DIR = tmp_path
    assert simulate_raters.default_url() == "http://127.0.0.1:8000"
    (tmp_path / "site-url").write_text("http://127.0.0.1:9\n")  # port 9: nothing listens
    assert simulate_raters.default_url() == "http://127.0.0.1:9"
    with pytest.raises(CommandError) as error:
        call_command("simulate_raters", project=project.pk, raters=1, adversarial=0)
    message = str(error.value)
    assert "No PrefLoop site answers at http://127.0.0.1:9" in message
    assert str(tmp_path / "site-url") in message
    assert "--url http://127.0.0.1:PORT" in message
    # nothing was created: the site is checked before any rater account
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username__startswith="simrater").exists()


@pytest.mark.django_db
def test_command_finds_a_live_site_on_another_port(live_server, settings, tmp_path):
    from apps.collection.models import Task
    from tests.factories import ProjectFactory

    project = ProjectFactory()
    settings.VAR_DIR = tmp_path
    (tmp_path / "site-url").write_text(live_server.url)
    call_command(
        "simulate_raters", project=project.slug, raters=2, adversarial=0, wait=0, max_seconds=20
    )
    # no task in the project: the raters came, found nothing and no round coming, and left
    assert not Task.objects.filter(project=project).exists()
