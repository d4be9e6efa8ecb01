"""The executor (apps/loop/executor.py): who may claim a run, and what its outcome does to
the run and the round. Stage handlers are replaced by stubs; the trainer by a fake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.collection.models import PolicyVersion
from apps.loop import executor, runner, stages
from apps.loop.config import round_config
from apps.loop.errors import StageCancelled, StageError
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.loop.stages.base import StageResult
from tests.loop.fake_trainer import FakeTrainer

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(project, settings, tmp_path) -> TrainingRun:
    """A round at its sampling stage, whose run is queued as Celery task "t-1"."""
    settings.ARTIFACT_ROOT = str(tmp_path)
    base = PolicyVersion.objects.create(project=project, name="base", artifact_uri=str(tmp_path))
    training_round = TrainingRound.objects.create(
        project=project,
        number=1,
        start_policy=base,
        stage=Stage.SAMPLING,
        config=round_config(preset="tiny"),
    )
    return TrainingRun.objects.create(
        round=training_round,
        stage=Stage.SAMPLING,
        status=TrainingRun.Status.QUEUED,
        celery_task_id="t-1",
        out_dir="rounds/x/sampling",
    )


@pytest.fixture
def handler(monkeypatch):
    """Replace the sampling stage's handler; `handler.outcome` is what it returns or raises."""

    class Stub:
        outcome: object = StageResult(metrics={"tasks": 3}, artifacts={"samples": "s.jsonl"})
        calls = 0

        def __call__(self, run):
            self.calls += 1
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

    stub = Stub()
    monkeypatch.setitem(stages.HANDLERS, Stage.SAMPLING, stub)
    monkeypatch.setattr(executor, "HANDLERS", stages.HANDLERS)
    return stub


def test_a_stage_that_succeeds_is_recorded_and_the_round_moves_on(queued, handler, stages_sent):
    assert executor.run_execute(run_id=queued.pk, task_id="t-1", worker="w1") == "succeeded"
    queued.refresh_from_db()
    assert (queued.status, queued.attempt, queued.worker) == ("succeeded", 1, "w1")
    assert queued.metrics == {"tasks": 3} and queued.artifacts == {"samples": "s.jsonl"}
    assert "[prefloop] attempt 1 on w1" in queued.log
    training_round = queued.round
    training_round.refresh_from_db()
    assert training_round.stage == Stage.COLLECTING  # collecting waits; no task to publish
    collecting = TrainingRun.objects.get(round=training_round, stage=Stage.COLLECTING)
    assert collecting.status == TrainingRun.Status.RUNNING and stages_sent.sent == []


def test_the_next_stage_is_queued_once_this_one_succeeds(
    queued, handler, stages_sent, monkeypatch, django_capture_on_commit_callbacks
):
    TrainingRun.objects.filter(pk=queued.pk).update(stage=Stage.EXPORTING)
    TrainingRound.objects.filter(pk=queued.round_id).update(stage=Stage.EXPORTING)
    monkeypatch.setitem(stages.HANDLERS, Stage.EXPORTING, handler)
    with django_capture_on_commit_callbacks(execute=True):  # published after the commit
        assert executor.run_execute(run_id=queued.pk, task_id="t-1") == "succeeded"
    sft = TrainingRun.objects.get(round=queued.round, stage=Stage.SFT)
    assert sft.status == TrainingRun.Status.QUEUED and sft.queue == "gpu"
    assert stages_sent.sent == [(sft.pk, sft.celery_task_id)]


def test_a_stage_error_fails_the_run_and_the_round_with_its_message(queued, handler):
    handler.outcome = StageError("The project has no prompts in the splits ['train'].")
    assert executor.run_execute(run_id=queued.pk, task_id="t-1") == "failed"
    queued.refresh_from_db()
    assert queued.error == "The project has no prompts in the splits ['train']."
    assert "[prefloop] failed: The project has no prompts" in queued.log
    queued.round.refresh_from_db()
    assert queued.round.stage == Stage.FAILED
    assert (
        queued.round.message
        == "Sampling failed: The project has no prompts in the splits ['train']."
    )


def test_an_unexpected_error_is_shown_on_the_round_and_raised(queued, handler):
    handler.outcome = RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        executor.run_execute(run_id=queued.pk, task_id="t-1")
    queued.refresh_from_db()
    assert (queued.status, queued.error) == ("failed", "RuntimeError: boom")
    assert TrainingRound.objects.get(pk=queued.round_id).stage == Stage.FAILED


def test_a_cancelled_stage_ends_cancelled(queued, handler):
    handler.outcome = StageCancelled()
    assert executor.run_execute(run_id=queued.pk, task_id="t-1") == "cancelled"
    queued.refresh_from_db()
    assert queued.status == TrainingRun.Status.CANCELLED and queued.pid is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": TrainingRun.Status.SUCCEEDED}, "already done"),
        ({"status": TrainingRun.Status.CANCELLED}, "cancelled"),
        ({"status": TrainingRun.Status.FAILED}, "failed: a retry queues it again"),
        ({"stage": Stage.EXPORTING}, "the round is at another stage"),
    ],
)
def test_nothing_to_do_is_skipped_without_running_the_stage(queued, handler, change, why):
    if "stage" in change:
        TrainingRound.objects.filter(pk=queued.round_id).update(stage=change["stage"])
    else:
        TrainingRun.objects.filter(pk=queued.pk).update(**change)
    assert executor.run_execute(run_id=queued.pk, task_id="t-1") == "skipped", why
    assert handler.calls == 0


def test_a_live_worker_keeps_its_run_and_a_dead_ones_run_is_taken_over(queued, handler):
    TrainingRun.objects.filter(pk=queued.pk).update(
        status=TrainingRun.Status.RUNNING, attempt=1, heartbeat_at=timezone.now(), worker="w1"
    )
    # another message for the run (a duplicate delivery) while w1 still beats: nothing to do
    assert executor.run_execute(run_id=queued.pk, task_id="t-2", worker="w2") == "skipped"
    assert handler.calls == 0
    # w1 went silent: the next delivery is the run's second attempt
    stale = timezone.now() - executor.heartbeat_stale_after() - timedelta(seconds=1)
    TrainingRun.objects.filter(pk=queued.pk).update(heartbeat_at=stale)
    assert executor.run_execute(run_id=queued.pk, task_id="t-2", worker="w2") == "succeeded"
    queued.refresh_from_db()
    assert (queued.attempt, queued.worker, queued.celery_task_id) == (2, "w2", "t-2")
    assert handler.calls == 1


def test_a_missing_run_is_skipped():
    assert executor.run_execute(run_id=987654, task_id="t") == "skipped"


def test_cancelling_the_round_stops_the_trainer(queued, monkeypatch, tmp_path):
    """The launcher asks every tick whether the round was cancelled; the fake trainer then
    reports a stopped process group, and the run ends cancelled."""
    from apps.loop.trainer_launch import run_trainer

    trainer = FakeTrainer()
    monkeypatch.setattr(runner, "run", trainer)
    executor.run_claim(run_id=queued.pk, task_id="t-1", worker="w1")
    TrainingRound.objects.filter(pk=queued.round_id).update(stage=Stage.CANCELLED)
    run = TrainingRun.objects.get(pk=queued.pk)
    config = {"model": str(tmp_path), "prompts": str(tmp_path / "p.jsonl"), "k": 2}
    (tmp_path / "p.jsonl").write_text('{"id": "1", "prompt": "Hi?"}\n')
    with pytest.raises(StageCancelled):
        run_trainer(run, "sample", config, tmp_path / "out")
    run.refresh_from_db()
    assert run.metric_rows.count() == 2  # what arrived before the cancel is kept
    assert run.pid == 4_000_000 and "working" in run.log
