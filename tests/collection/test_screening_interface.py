"""The assignment engine asks screening through an interface (apps/collection/screening.py)."""

from __future__ import annotations

import pytest

from apps.collection import leasing
from apps.collection import screening as gates
from apps.collection.screening import NoScreening, ScreeningGate
from apps.core.errors import NotPermitted
from apps.quality.screening import QualityScreening
from tests.factories import make_task

pytestmark = pytest.mark.django_db


class Scripted:
    """A screening that answers what the test says, and remembers who asked."""

    settings_model = None
    failed_message = "Not this time."

    def __init__(self, answer: ScreeningGate) -> None:
        self.answer = answer
        self.asked: list[tuple[int, int]] = []

    def gate(self, *, project, rater, now) -> ScreeningGate:
        self.asked.append((project.pk, rater.pk))
        return self.answer


@pytest.fixture
def registered(monkeypatch):
    def register(screening):
        monkeypatch.setattr(gates, "_registered", screening)
        return screening

    return register


def test_quality_registers_its_screening_when_it_loads():
    assert isinstance(gates.screening(), QualityScreening)
    assert gates.screening().settings_model._meta.label == "quality.ProjectQualitySettings"


def test_without_a_screening_every_rater_gets_regular_work(project, labeler, registered):
    registered(NoScreening())
    regular = make_task(project, overlap=1)
    make_task(project, overlap=1, is_gold=True, gold_ranking="canonical")
    project.gold_rate = 0
    project.save()
    assert leasing.assignment_next(project=project, rater=labeler).task_id == regular.pk


@pytest.mark.parametrize(
    ("answer", "expected"),
    [(ScreeningGate.REGULAR, "regular"), (ScreeningGate.GOLD_ONLY, "gold")],
)
def test_the_engine_leases_what_the_gate_allows(project, labeler, registered, answer, expected):
    scripted = registered(Scripted(answer))
    project.gold_rate = 0
    project.save()
    tasks = {
        "regular": make_task(project, overlap=1),
        "gold": make_task(project, overlap=1, is_gold=True, gold_ranking="canonical"),
    }
    assignment = leasing.assignment_next(project=project, rater=labeler)
    assert assignment.task_id == tasks[expected].pk
    assert scripted.asked == [(project.pk, labeler.pk)]


def test_a_closed_gate_refuses_with_the_screenings_message(project, labeler, registered):
    registered(Scripted(ScreeningGate.CLOSED))
    make_task(project, overlap=1)
    with pytest.raises(NotPermitted, match="Not this time."):
        leasing.assignment_next(project=project, rater=labeler)
