"""Faults: a worker killed mid-stage, damaged artifacts, and cancelling a running trainer."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.collection.models import PolicyVersion
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop import artifacts, executor, runner, snapshots, tasks, watchdog
from apps.loop.config import round_config
from apps.loop.models import RunMetric, Stage, TrainingRound, TrainingRun
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PPO = {"total_steps": 12, "save_every": 1, "batch_size": 4, "mini_batch_size": 4, "ppo_epochs": 1}


def _round_at_ppo(project, policy, tiny_model_dir, *, ppo=None) -> TrainingRun:
    """A round whose snapshot and reward model exist, with its PPO run queued."""
    config = round_config(preset="tiny", overrides={"ppo": {**PPO, **(ppo or {})}})
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=policy, stage=Stage.EXPORTING, config=config
    )
    snapshots.snapshot_create(training_round=training_round)
    rm = TrainingRun.objects.create(
        round=training_round,
        stage=Stage.RM,
        status=TrainingRun.Status.SUCCEEDED,
        out_dir=f"rounds/{project.pk}-1/rm",
    )
    rm_dir = artifacts.artifact_path(rm.out_dir) / "model"
    shutil.rmtree(rm_dir, ignore_errors=True)
    shutil.copytree(tiny_model_dir, rm_dir)  # a fresh scalar head on the tiny trunk
    rm.artifacts = {"model": str(rm_dir.relative_to(artifacts.artifact_root()))}
    rm.save()
    training_round.stage = Stage.PPO
    training_round.save()
    run = TrainingRun.objects.create(
        round=training_round,
        stage=Stage.PPO,
        status=TrainingRun.Status.QUEUED,
        celery_task_id="first-delivery",
        out_dir=f"rounds/{project.pk}-1/ppo",
    )
    shutil.rmtree(artifacts.artifact_path(run.out_dir), ignore_errors=True)
    return run


def _test_database_env() -> dict[str, str]:
    """The environment of a separate process that works on this test's database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    if db.get("PASSWORD"):
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "annotation_site.settings.test",
        "TEST_DATABASE_URL": url,
    }


def _worker(run: TrainingRun, task_id: str = "first-delivery") -> subprocess.Popen:
    """A separate process executing the stage, on the test database."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_stage", str(run.pk), "--task-id", task_id],
        cwd=settings.BASE_DIR,
        env=_test_database_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _celery_worker(queue: str, name: str, log: Path, *, visibility_timeout: int):
    """A real Celery worker (prefork, one child) on the test broker, in its own process group."""
    env = {**_test_database_env(), "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout)}
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "annotation_site", "worker"),
                *("-Q", queue, "-n", f"{name}@%h", "--concurrency", "1", "--loglevel", "INFO"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _drop_messages(broker: redis.Redis, queue: str, runs) -> None:
    """Take the messages the worker published for these runs off a shared queue."""
    task_ids = [run.celery_task_id for run in runs]
    for message in broker.lrange(queue, 0, -1):
        if any(task_id.encode() in message for task_id in task_ids):
            broker.lrem(queue, 1, message)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _trainer_pid_after_two_steps(run: TrainingRun) -> int | None:
    """The running trainer's pid once it has logged two steps; fails at once, with the run's
    log, if the stage ended before that (nothing left to kill)."""
    current = TrainingRun.objects.get(pk=run.pk)
    if current.status not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
        raise AssertionError(
            f"the PPO run ended ({current.status}) before two steps were seen: {current.error}\n"
            f"{current.log[-3000:]}"
        )
    if current.pid and RunMetric.objects.filter(run=run).count() >= 2:
        return current.pid
    return None


def test_killed_worker_is_recovered_without_a_duplicate_policy(
    loop_project, tiny_model_dir, stages
):
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir)
    worker = _worker(run)
    trainer_pid = _wait(lambda: _trainer_pid_after_two_steps(run), 120, "two PPO steps")
    assert runner.pid_alive(trainer_pid)

    worker.send_signal(signal.SIGKILL)  # the worker dies mid-stage
    worker.wait()
    _wait(lambda: _gone(trainer_pid), 10, "the orphaned trainer to die with its worker")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.attempt == 1

    # the watchdog notices the silent heartbeat and queues the same run again
    later = timezone.now() + timedelta(seconds=settings.LOOP_HEARTBEAT_STALE_SECONDS + 1)
    assert watchdog.runs_reap_stale(now=later)["requeued"] == [run.pk]
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.QUEUED
    assert "stopped answering" in run.log

    outcome = executor.run_execute(run_id=run.pk, task_id=run.celery_task_id)
    assert outcome == "succeeded", TrainingRun.objects.get(pk=run.pk).log[-3000:]
    # the first message, delivered again by the broker (acks_late), finds nothing to do
    assert executor.run_execute(run_id=run.pk, task_id="first-delivery") == "skipped"
    run.refresh_from_db()
    assert run.attempt == 2
    assert run.metrics["start_step"] >= 1  # resumed from the checkpoint, not restarted
    assert PolicyVersion.objects.filter(project=project, kind="ppo").count() == 1
    assert run.produced_policy.name == "round-1-ppo"
    assert run.round.stage == Stage.EVALUATING


def test_celery_worker_killed_mid_stage_hands_the_stage_to_the_next_worker(
    loop_project, tiny_model_dir, tmp_path
):
    """Real Celery workers on Redis: SIGKILL the first mid-PPO; the broker delivers the
    unacknowledged message again (acks_late) to a second worker, which resumes from the
    checkpoint and registers exactly one policy; a duplicate delivery changes nothing."""
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir, ppo={"total_steps": 10})
    queue = f"gpu-fault-test-{uuid.uuid4().hex[:8]}"  # no other suite's worker takes it
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    log = tmp_path / "workers.log"
    first = _celery_worker(queue, "first", log, visibility_timeout=3600)
    second = None
    try:
        tasks.run_gpu_stage.apply_async(args=[run.pk], queue=queue, task_id="first-delivery")
        _wait(lambda: RunMetric.objects.filter(run=run).count() >= 2, 180, "two PPO steps")
        trainer_pid = TrainingRun.objects.get(pk=run.pk).pid
        assert trainer_pid and runner.pid_alive(trainer_pid)

        _kill_group(first)  # the worker and its pool child die mid-stage, nothing acknowledged
        _wait(lambda: _gone(trainer_pid), 10, "the orphaned trainer to die with its worker")
        run.refresh_from_db()
        assert (run.status, run.attempt) == (TrainingRun.Status.RUNNING, 1)

        # a second worker that considers 2 s unacknowledged long enough takes the message back
        second = _celery_worker(queue, "second", log, visibility_timeout=2)
        _wait(
            lambda: TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.SUCCEEDED,
            180,
            "the second worker to finish the stage",
        )
        run.refresh_from_db()
        assert run.attempt == 2 and run.celery_task_id == "first-delivery"
        assert run.metrics["start_step"] >= 1  # resumed from the checkpoint, not restarted
        assert "attempt 2 on" in run.log

        # the same message once more (a broker may deliver twice): the run is already done
        tasks.run_gpu_stage.apply_async(args=[run.pk], queue=queue, task_id="first-delivery")
        _wait(lambda: log.read_text().count("'skipped'") == 1, 60, "the duplicate delivery")
    finally:
        for worker in (first, second):
            if worker is not None:
                _kill_group(worker)
        broker.delete(queue, *broker.keys(f"_kombu.binding*.{queue}"))
        _drop_messages(
            broker, "gpu", TrainingRun.objects.filter(round=run.round, stage=Stage.EVALUATING)
        )

    run.refresh_from_db()
    assert run.attempt == 2
    assert PolicyVersion.objects.filter(project=project, kind="ppo").count() == 1
    assert run.produced_policy.name == "round-1-ppo"
    assert run.round.stage == Stage.EVALUATING
    evaluation = TrainingRun.objects.get(round=run.round, stage=Stage.EVALUATING)  # one
    assert evaluation.status == TrainingRun.Status.QUEUED


def test_watchdog_fails_visibly_after_the_last_attempt(loop_project, tiny_model_dir, stages):
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.RUNNING,
        attempt=watchdog.MAX_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert watchdog.runs_reap_stale()["failed"] == [run.pk]
    training_round = TrainingRound.objects.get(pk=run.round_id)
    assert training_round.stage == Stage.FAILED
    assert "worker was lost 3 times" in training_round.message


def test_corrupt_reward_model_fails_the_stage_with_a_clear_message(loop_project, tiny_model_dir):
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir)
    rm = TrainingRun.objects.get(round=run.round, stage=Stage.RM)
    weights = artifacts.artifact_path(rm.artifacts["model"]) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated on a full disk, say
    assert executor.run_execute(run_id=run.pk, task_id="first-delivery") == "failed"
    run.refresh_from_db()
    assert "reward model" in run.error and "corrupt" in run.error
    assert "model.safetensors cannot be read" in run.round.message
    assert run.round.stage == Stage.FAILED
    assert not PolicyVersion.objects.filter(project=project, kind="ppo").exists()


def test_missing_snapshot_file_fails_the_stage(loop_project, tiny_model_dir):
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir)
    folder = snapshots.snapshot_folder(run.round.snapshot)
    folder.chmod(0o755)
    (folder / "prompts.jsonl").unlink()
    assert executor.run_execute(run_id=run.pk, task_id="first-delivery") == "failed"
    training_round = TrainingRound.objects.get(pk=run.round_id)
    assert "prompts.jsonl is missing" in training_round.message


def test_cancel_stops_the_running_trainer(loop_project, tiny_model_dir, api_as):
    project, policy = loop_project
    run = _round_at_ppo(project, policy, tiny_model_dir, ppo={"total_steps": 500})
    worker = _worker(run)
    pid = _wait(lambda: TrainingRun.objects.get(pk=run.pk).pid, 60, "the trainer to start")
    _wait(lambda: RunMetric.objects.filter(run=run).exists(), 120, "the first PPO step")

    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    response = api_as(researcher).post(f"/api/rounds/{run.round_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["stage"] == "cancelled"

    assert worker.wait(timeout=30) == 0
    assert _gone(pid)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED
    assert not PolicyVersion.objects.filter(project=project, kind="ppo").exists()
