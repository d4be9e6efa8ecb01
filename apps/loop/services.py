"""Writes and workflow of the closed loop: rounds, their stage runs, snapshots, new policies.

A round walks sampling → collecting → exporting → sft → rm → ppo → evaluating → done (sft is
skipped without enough demonstrations). Each stage is one TrainingRun, executed by a Celery
task that receives only the run's id (`run_execute`). Model stages start `python -m trainer
...` as a child process, stream its metrics.jsonl into RunMetric rows while it runs, and stop
it when the round is cancelled.

Crash safety: a run is claimed under a row lock and then heartbeats. A redelivered message
(acks_late) or the watchdog (`runs_reap_stale`) re-runs a run whose heartbeat stopped; every
stage is safe to re-run (sampling reuses its samples and adds no task twice, exporting freezes
one snapshot per round, PPO resumes from its checkpoint, and a policy is registered through a
one-to-one link from its run plus a unique name, so it exists at most once).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.collection.models import (
    Completion,
    Judgment,
    PolicyVersion,
    Project,
    Prompt,
    ReviewStatus,
    Task,
)
from apps.collection.samples import tasks_create_from_samples
from apps.collection.services import completion_create, task_create
from apps.core.errors import Conflict, InvalidInput
from apps.loop import agreement, exports, runner
from apps.loop.config import STAGE_SECTIONS, round_config
from apps.loop.models import (
    ENDED,
    GPU_STAGES,
    STAGE_ORDER,
    DatasetSnapshot,
    RunMetric,
    Stage,
    TrainingRound,
    TrainingRun,
)
from apps.quality.selectors import rater_weights as quality_rater_weights
from trainer import contract
from trainer.contract import COMMAND_CONFIGS, COMPLETIONS, ConfigError, check_settings

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
LOG_TAIL_CHARS = 20_000
HEARTBEAT_SECONDS = 5.0


class StageError(Exception):
    """A stage cannot go on: the message says why, in words a researcher can act on."""


# --- settings and paths -------------------------------------------------------------------


def artifact_root() -> Path:
    root = Path(settings.ARTIFACT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_path(relative: str) -> Path:
    return artifact_root() / relative


def policy_location(policy: PolicyVersion) -> str:
    """What the trainer loads: a folder (absolute, or relative to ARTIFACT_ROOT) or a hub name."""
    uri = policy.artifact_uri.strip()
    if not uri:
        raise StageError(f"Policy {policy.name!r} has no artifact_uri to load it from.")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    path = Path(uri)
    if path.is_absolute():
        return str(path)
    under_root = artifact_path(uri)
    if under_root.exists() or uri.count("/") != 1:
        return str(under_root)
    return uri  # "owner/name": a hub model


def _stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "LOOP_HEARTBEAT_STALE_SECONDS", 120))


def _trainer_python() -> str:
    return getattr(settings, "TRAINER_PYTHON", "") or sys.executable


def _worker_name() -> str:
    return socket.gethostname()


# --- enqueueing ---------------------------------------------------------------------------


def _send(run_id: int, queue: str, task_id: str) -> None:
    """Publish the stage's Celery task (a separate function so tests can run it inline)."""
    from apps.loop import tasks

    task = tasks.run_gpu_stage if queue == "gpu" else tasks.run_web_stage
    task.apply_async(args=[run_id], queue=queue, task_id=task_id)


def _enqueue(run: TrainingRun) -> None:
    """Mark the run queued; publish its task once the surrounding transaction commits."""
    run.status = TrainingRun.Status.QUEUED
    run.queue = "gpu" if run.stage in GPU_STAGES else "default"
    run.celery_task_id = uuid.uuid4().hex
    run.heartbeat_at = None
    run.save(update_fields=["status", "queue", "celery_task_id", "heartbeat_at", "updated_at"])
    run_id, queue, task_id = run.pk, run.queue, run.celery_task_id
    transaction.on_commit(lambda: _send(run_id, queue, task_id))


# --- rounds -------------------------------------------------------------------------------


def policy_latest(*, project: Project) -> PolicyVersion | None:
    """The newest policy of the project's lineage: the last one a round produced, else base."""
    produced = (
        PolicyVersion.objects.filter(project=project, produced_by_run__isnull=False)
        .order_by("-produced_by_run__round__number", "-pk")
        .first()
    )
    if produced is not None:
        return produced
    return (
        PolicyVersion.objects.filter(project=project)
        .exclude(kind=PolicyVersion.Kind.PPO)
        .order_by("-created_at", "-pk")
        .first()
    )


def round_start(
    *,
    project: Project,
    user=None,
    start_policy: PolicyVersion | None = None,
    preset: str = "",
    config: dict | None = None,
) -> TrainingRound:
    """Create the next round of a project and queue its sampling stage."""
    settings_ = round_config(preset=preset, overrides=config)
    if start_policy is None:
        start_policy = policy_latest(project=project)
    if start_policy is None:
        raise InvalidInput(
            "The project has no policy to sample from; register a base policy first.",
            fields={"start_policy_id": ["No policy in this project."]},
        )
    if start_policy.project_id != project.pk:
        raise InvalidInput(
            "The start policy belongs to another project.",
            fields={"start_policy_id": ["Not a policy of this project."]},
        )
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        if TrainingRound.objects.filter(project=project).exclude(stage__in=ENDED).exists():
            raise Conflict("A round of this project is still running; cancel it or wait.")
        last = TrainingRound.objects.filter(project=project).order_by("-number").first()
        training_round = TrainingRound.objects.create(
            project=project,
            number=(last.number + 1) if last else 1,
            start_policy=start_policy,
            stage=Stage.SAMPLING,
            config=settings_,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        _stage_begin(training_round, Stage.SAMPLING)
    return training_round


def round_folder(training_round: TrainingRound) -> str:
    """The round's folder under ARTIFACT_ROOT, unique even when a database is recreated over
    the same ARTIFACT_ROOT (ids start again at 1): the trainer's `--reuse` compares settings,
    file paths included, not file contents, so a reused folder could hand back another
    round's samples."""
    stamp = training_round.created_at.strftime("%Y%m%d-%H%M%S-%f")
    return f"rounds/{training_round.project_id}-{training_round.number}-{stamp}"


def _stage_begin(training_round: TrainingRound, stage: Stage) -> TrainingRun:
    training_round.stage = stage
    training_round.message = ""
    training_round.save(update_fields=["stage", "message", "updated_at"])
    run, _ = TrainingRun.objects.get_or_create(
        round=training_round,
        stage=stage,
        defaults={"out_dir": f"{round_folder(training_round)}/{stage}"},
    )
    if stage == Stage.COLLECTING:
        now = timezone.now()
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.config = {
            "target_judgments": training_round.config["target_judgments"],
            "require_review": training_round.config["require_review"],
        }
        run.save(update_fields=["status", "started_at", "heartbeat_at", "config", "updated_at"])
        training_round.message = "Waiting for judgments."
        training_round.save(update_fields=["message", "updated_at"])
    else:
        _enqueue(run)
    return run


def _next_stage(stage: str) -> Stage:
    index = STAGE_ORDER.index(Stage(stage))
    return STAGE_ORDER[index + 1] if index + 1 < len(STAGE_ORDER) else Stage.DONE


def _round_after_success(run: TrainingRun) -> None:
    """Move the round on from `run`'s stage (called in a transaction holding the round)."""
    training_round = TrainingRound.objects.select_for_update().get(pk=run.round_id)
    if training_round.stage != run.stage:
        return
    following = _next_stage(run.stage)
    if following == Stage.DONE:
        training_round.stage = Stage.DONE
        training_round.message = ""
        training_round.finished_at = timezone.now()
        training_round.save(update_fields=["stage", "message", "finished_at", "updated_at"])
        return
    _stage_begin(training_round, following)


def _round_fail(run: TrainingRun, message: str) -> None:
    with transaction.atomic():
        training_round = TrainingRound.objects.select_for_update().get(pk=run.round_id)
        if training_round.stage in ENDED and training_round.stage != Stage.FAILED:
            return
        training_round.stage = Stage.FAILED
        training_round.message = f"{Stage(run.stage).label} failed: {message}"
        training_round.finished_at = timezone.now()
        training_round.save(update_fields=["stage", "message", "finished_at", "updated_at"])


def round_cancel(*, training_round: TrainingRound, user=None) -> TrainingRound:
    """End the round; a running trainer subprocess is stopped by its worker within a tick."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.stage in ENDED:
            raise Conflict(f"The round has already ended ({locked.get_stage_display().lower()}).")
        stage = locked.stage
        locked.stage = Stage.CANCELLED
        who = getattr(user, "username", "") or "a researcher"
        locked.message = f"Cancelled by {who} during {Stage(stage).label.lower()}."
        locked.finished_at = timezone.now()
        locked.save(update_fields=["stage", "message", "finished_at", "updated_at"])
        active = list(
            TrainingRun.objects.select_for_update().filter(
                round=locked,
                status__in=[
                    TrainingRun.Status.PENDING,
                    TrainingRun.Status.QUEUED,
                    TrainingRun.Status.RUNNING,
                ],
            )
        )
        for run in active:
            run.status = TrainingRun.Status.CANCELLED
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at", "updated_at"])
        task_ids = [r.celery_task_id for r in active if r.celery_task_id]
    if task_ids:
        transaction.on_commit(lambda: _revoke(task_ids))
    return locked


def _revoke(task_ids: list[str]) -> None:
    """Drop queued messages; a running task sees the cancel itself (no SIGKILL of a worker)."""
    try:
        from annotation_site.celery import app

        app.control.revoke(task_ids)
    except Exception:  # noqa: BLE001 - a broker outage must not undo the cancel
        logger.warning("could not revoke %s", task_ids, exc_info=True)


def round_retry(*, training_round: TrainingRound, user=None) -> TrainingRound:
    """Re-run the stage a failed or cancelled round stopped at (same run, next attempt)."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.stage not in (Stage.FAILED, Stage.CANCELLED):
            raise Conflict("Only a failed or cancelled round can be retried.")
        if (
            TrainingRound.objects.filter(project_id=locked.project_id)
            .exclude(stage__in=ENDED)
            .exists()
        ):
            raise Conflict("Another round of this project is running.")
        run = (
            TrainingRun.objects.select_for_update()
            .filter(round=locked)
            .exclude(status=TrainingRun.Status.SUCCEEDED)
            .order_by("-created_at")
            .first()
        )
        stage = Stage(run.stage) if run else Stage.SAMPLING
        locked.finished_at = None
        locked.save(update_fields=["finished_at", "updated_at"])
        if run is not None:
            run.error = ""
            run.save(update_fields=["error", "updated_at"])
        _stage_begin(locked, stage)
    return locked


def round_move_on(*, training_round: TrainingRound, user=None) -> TrainingRound:
    """A researcher ends collecting early: export whatever judgments exist."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.stage != Stage.COLLECTING:
            raise Conflict("Only a round that is collecting judgments can be moved on.")
        _collecting_finish(locked, reason=f"moved on by {getattr(user, 'username', 'researcher')}")
    return locked


def collecting_judgments(*, training_round: TrainingRound) -> int:
    statuses = (
        [ReviewStatus.APPROVED]
        if training_round.config.get("require_review", True)
        else [ReviewStatus.APPROVED, ReviewStatus.PENDING]
    )
    return Judgment.objects.filter(
        task__project_id=training_round.project_id,
        task__kind=Task.Kind.RANKING,
        task__round_number=training_round.number,
        task__is_gold=False,
        review_status__in=statuses,
    ).count()


def collecting_check(*, round_id: int) -> bool:
    """Advance a collecting round once enough judgments exist; True when it advanced."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().filter(pk=round_id).first()
        if locked is None or locked.stage != Stage.COLLECTING:
            return False
        count = collecting_judgments(training_round=locked)
        target = locked.config.get("target_judgments", 0)
        run = TrainingRun.objects.get(round=locked, stage=Stage.COLLECTING)
        run.metrics = {"judgments": count, "target": target}
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["metrics", "heartbeat_at", "updated_at"])
        if count < target:
            locked.message = f"Waiting for judgments: {count} of {target}."
            locked.save(update_fields=["message", "updated_at"])
            return False
        _collecting_finish(locked, reason=f"{count} of {target} judgments")
    return True


def _collecting_finish(locked: TrainingRound, *, reason: str) -> None:
    run = TrainingRun.objects.select_for_update().get(round=locked, stage=Stage.COLLECTING)
    count = collecting_judgments(training_round=locked)
    run.status = TrainingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.metrics = {
        **run.metrics,
        "judgments": count,
        "target": locked.config.get("target_judgments", 0),
        "reason": reason,
    }
    run.save(update_fields=["status", "finished_at", "metrics", "updated_at"])
    _round_after_success(run)


def rounds_watch() -> dict:
    """The periodic watchdog: advance collecting rounds, recover runs whose worker died."""
    advanced = [
        pk
        for pk in TrainingRound.objects.filter(stage=Stage.COLLECTING).values_list("pk", flat=True)
        if collecting_check(round_id=pk)
    ]
    return {"advanced": advanced, **runs_reap_stale()}


def runs_reap_stale(*, now=None) -> dict:
    """Runs whose heartbeat stopped (the worker died): re-queue, or fail after MAX_ATTEMPTS."""
    now = now or timezone.now()
    requeued, failed = [], []
    stale = TrainingRun.objects.filter(
        status=TrainingRun.Status.RUNNING, heartbeat_at__lt=now - _stale_after()
    ).exclude(stage=Stage.COLLECTING)
    for run_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            run = (
                TrainingRun.objects.select_for_update()
                .select_related("round")
                .filter(pk=run_id, status=TrainingRun.Status.RUNNING)
                .first()
            )
            if run is None or run.heartbeat_at >= now - _stale_after():
                continue
            if run.worker == _worker_name():
                runner.kill_group(run.pid)  # a trainer left behind on this machine
            note = (
                f"\n[prefloop] worker {run.worker or '?'} stopped answering "
                f"during attempt {run.attempt}.\n"
            )
            run.log = (run.log + note)[-LOG_TAIL_CHARS:]
            if run.attempt >= MAX_ATTEMPTS:
                run.status = TrainingRun.Status.FAILED
                run.error = f"The worker was lost {run.attempt} times; giving up."
                run.finished_at = now
                run.save(update_fields=["status", "error", "finished_at", "log", "updated_at"])
                transaction.on_commit(lambda run=run: _round_fail(run, run.error))
                failed.append(run.pk)
            else:
                run.save(update_fields=["log", "updated_at"])
                _enqueue(run)
                requeued.append(run.pk)
    return {"requeued": requeued, "failed": failed}


# --- executing a stage --------------------------------------------------------------------


def _claim(*, run_id: int, task_id: str, worker: str) -> TrainingRun | None:
    """Take the run for this attempt, or None when there is nothing (more) to do."""
    with transaction.atomic():
        run = (
            TrainingRun.objects.select_for_update()
            .select_related("round__project", "round__start_policy")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return None
        if run.status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.CANCELLED):
            return None
        if run.round.stage != run.stage:
            return None  # the round moved on, failed or was cancelled
        fresh = run.heartbeat_at and run.heartbeat_at >= timezone.now() - _stale_after()
        if run.status == TrainingRun.Status.RUNNING and fresh and run.celery_task_id != task_id:
            return None  # another worker holds it and is alive
        if run.status == TrainingRun.Status.FAILED:
            return None
        if run.pid and run.worker == worker:
            runner.kill_group(run.pid)
        now = timezone.now()
        run.attempt += 1
        run.status = TrainingRun.Status.RUNNING
        run.worker = worker
        run.pid = None
        run.celery_task_id = task_id or run.celery_task_id
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.finished_at = None
        run.error = ""
        header = f"[prefloop] attempt {run.attempt} on {worker} at {now:%Y-%m-%d %H:%M:%S}Z\n"
        run.log = (run.log + ("\n" if run.log else "") + header)[-LOG_TAIL_CHARS:]
        run.save()
    return run


STAGE_HANDLERS: dict = {}


def run_execute(*, run_id: int, task_id: str = "", worker: str = "") -> str:
    """Execute one stage run (the body of its Celery task). Returns the run's final status."""
    run = _claim(run_id=run_id, task_id=task_id, worker=worker or _worker_name())
    if run is None:
        return "skipped"
    handler = STAGE_HANDLERS[run.stage]
    try:
        result = handler(run)
    except StageError as exc:
        return _run_fail(run, str(exc))
    except _Cancelled:
        return _run_cancelled(run)
    except Exception as exc:  # an unexpected error is still shown on the round, then raised
        _run_fail(run, f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != TrainingRun.Status.RUNNING:
            return locked.status
        locked.status = TrainingRun.Status.SUCCEEDED
        locked.finished_at = timezone.now()
        locked.pid = None
        locked.metrics = result.get("metrics", locked.metrics)
        locked.artifacts = {**locked.artifacts, **result.get("artifacts", {})}
        locked.save()
        _round_after_success(locked)
    return TrainingRun.Status.SUCCEEDED


def _run_fail(run: TrainingRun, message: str) -> str:
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == TrainingRun.Status.CANCELLED:
            return locked.status
        locked.status = TrainingRun.Status.FAILED
        locked.error = message
        locked.pid = None
        locked.finished_at = timezone.now()
        locked.log = (locked.log + f"\n[prefloop] failed: {message}\n")[-LOG_TAIL_CHARS:]
        locked.save(update_fields=["status", "error", "pid", "finished_at", "log", "updated_at"])
    _round_fail(run, message)
    return TrainingRun.Status.FAILED


def _run_cancelled(run: TrainingRun) -> str:
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.CANCELLED, pid=None, finished_at=timezone.now()
    )
    return TrainingRun.Status.CANCELLED


class _Cancelled(Exception):
    pass


def _stage_dir(run: TrainingRun, *parts: str) -> Path:
    path = artifact_path(run.out_dir).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cancel_requested(run_id: int) -> bool:
    row = (
        TrainingRun.objects.filter(pk=run_id).values_list("status", "round__stage", "stage").first()
    )
    if row is None:
        return True
    status, round_stage, stage = row
    return status == TrainingRun.Status.CANCELLED or round_stage != stage


def _run_trainer(
    run: TrainingRun, command: str, config: dict, out: Path, *, step_offset: int = 0, label=""
) -> dict:
    """Run `python -m trainer COMMAND --config run.json --out OUT`; return its metrics.json.

    metrics.jsonl lines become RunMetric rows as they arrive; output goes to the run's log.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:  # the run.json the trainer reads is within the contract, or it is never written
        config = check_settings(
            COMMAND_CONFIGS[command], {**config, "out": str(out)}, path=command, from_round=False
        )
    except ConfigError as exc:
        raise StageError(f"The trainer's settings break its contract: {exc}") from exc
    config_path = out.parent / f"{out.name}.run.json"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    argv = runner.trainer_argv(_trainer_python(), command, config_path, out)
    log_path = out.parent / f"{out.name}.attempt{run.attempt}.log"
    TrainingRun.objects.filter(pk=run.pk).update(
        command=argv, config={**run.config, (label or command): config}
    )
    run.config = {**run.config, (label or command): config}
    last_beat = [timezone.now()]

    def on_start(pid: int) -> None:
        TrainingRun.objects.filter(pk=run.pk).update(pid=pid, heartbeat_at=timezone.now())

    def on_tick(rows: list[dict], output: str) -> bool:
        if rows:
            RunMetric.objects.bulk_create(
                [
                    RunMetric(
                        run_id=run.pk,
                        step=step_offset + int(row.get("step", 0)),
                        values={**row, **({"part": label} if label else {})},
                    )
                    for row in rows
                    if isinstance(row.get("step", 0), int)
                ],
                ignore_conflicts=True,
            )
        now = timezone.now()
        if output or (now - last_beat[0]).total_seconds() >= HEARTBEAT_SECONDS:
            last_beat[0] = now
            updates = {"heartbeat_at": now}
            if output:
                current = TrainingRun.objects.filter(pk=run.pk).values_list("log", flat=True)
                updates["log"] = ((current.first() or "") + output)[-LOG_TAIL_CHARS:]
            TrainingRun.objects.filter(pk=run.pk).update(**updates)
        return _cancel_requested(run.pk)

    outcome = runner.run(
        argv,
        cwd=Path(settings.BASE_DIR),
        log_path=log_path,
        metrics_path=out / "metrics.jsonl",
        on_start=on_start,
        on_tick=on_tick,
        tick_seconds=getattr(settings, "LOOP_TICK_SECONDS", 1.0),
        env={"TOKENIZERS_PARALLELISM": "false"},
    )
    if outcome.cancelled:
        raise _Cancelled()
    if outcome.returncode != 0:
        raise StageError(_trainer_error(command, outcome))
    try:
        return json.loads((out / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(
            f"trainer {command} exited 0 but {out / 'metrics.json'} is missing or unreadable "
            f"({exc})."
        ) from exc


def _trainer_error(command: str, outcome: runner.Outcome) -> str:
    lines = [line for line in outcome.output_tail.splitlines() if line.strip()]
    explicit = [line for line in lines if line.startswith("error:")]
    if explicit:
        return f"trainer {command}: {explicit[-1][len('error:') :].strip()}"
    detail = lines[-1] if lines else "no output"
    code = outcome.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
    return f"trainer {command} {how}: {detail[:500]}"


def _require_model_dir(path: Path, what: str) -> None:
    """A clear message for a missing or corrupt model folder, before a trainer trips on it."""
    if not path.is_dir():
        raise StageError(f"The {what} is missing: {path} does not exist.")
    config = path / "config.json"
    if not config.is_file():
        raise StageError(f"The {what} at {path} is incomplete: config.json is missing.")
    try:
        json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"The {what} at {path} is corrupt: config.json is not JSON.") from exc
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if not weights:
        raise StageError(f"The {what} at {path} has no weights (*.safetensors).")
    for file in weights:
        if file.suffix == ".safetensors" and not _safetensors_readable(file):
            raise StageError(f"The {what} at {path} is corrupt: {file.name} cannot be read.")


def _safetensors_readable(file: Path) -> bool:
    """The header of a safetensors file parses and its data is all there."""
    try:
        with file.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size <= 0 or size > 100_000_000:
                return False
            header = json.loads(handle.read(size))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return file.stat().st_size >= 8 + size + end
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _policy_model(policy: PolicyVersion, what: str) -> str:
    location = policy_location(policy)
    if Path(location).is_absolute():
        _require_model_dir(Path(location), what)
    return location


# sampling ---------------------------------------------------------------------------------


def _round_prompts(training_round: TrainingRound) -> list[Prompt]:
    config = training_round.config
    prompts = list(
        Prompt.objects.filter(
            project_id=training_round.project_id, split__in=config["sample_splits"]
        ).order_by("pk")
    )
    if not prompts:
        raise StageError(
            f"The project has no prompts in the splits {config['sample_splits']} to sample for."
        )
    count = min(config["prompts_per_round"], len(prompts))
    start = ((training_round.number - 1) * count) % len(prompts)
    return (prompts + prompts)[start : start + count]


def _stage_sampling(run: TrainingRun) -> dict:
    training_round = run.round
    project = training_round.project
    policy = training_round.start_policy
    folder = _stage_dir(run)
    prompts_path = folder / "prompts.jsonl"
    contract.write_rows(
        prompts_path, [exports.prompt_row(prompt) for prompt in _round_prompts(training_round)]
    )
    config = trainer_settings(
        training_round,
        "sample",
        model=_policy_model(policy, f"policy {policy.name!r}"),
        prompts=str(prompts_path),
        k=project.k,
        seed=training_round.config["seed"] * 1000 + training_round.number,
    )
    metrics = _run_trainer(run, "sample", config, folder / "samples")
    samples = folder / "samples" / "samples.jsonl"
    if not samples.is_file():
        raise StageError(f"The sampler wrote no samples.jsonl at {samples}.")
    try:
        tasks = tasks_create_from_samples(
            project=project,
            policy_version=policy,
            samples_path=samples,
            round_number=training_round.number,
        )
    except InvalidInput as exc:
        raise StageError(exc.message) from exc
    total = Task.objects.filter(
        project=project, kind=Task.Kind.RANKING, round_number=training_round.number
    ).count()
    return {
        "metrics": {**_summary(metrics), "tasks_created": len(tasks), "tasks": total},
        "artifacts": {"samples": str(samples.relative_to(artifact_root()))},
    }


def trainer_settings(
    training_round: TrainingRound, section: str, *, defaults: dict | None = None, **server_set
) -> dict:
    """The trainer's config for a stage: the round's settings of `section` (checked again
    against the contract, as a round's: a config stored before the contract existed cannot
    smuggle in a path or a scorer) over `defaults`, with the paths, seeds and scorers the
    server sets."""
    cls = STAGE_SECTIONS[section]
    try:
        tuned = check_settings(
            cls,
            training_round.config.get(section, {}),
            path=f"config.{section}",
            from_round=True,
            partial=True,
        )
    except ConfigError as exc:
        raise StageError(f"The round's settings break the trainer's contract: {exc}") from exc
    return {**(defaults or {}), **tuned, **server_set}


def _summary(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "config"}


# exporting --------------------------------------------------------------------------------


def _consensus_weights(project: Project, rows: list[agreement.JudgmentRow], judgments) -> tuple:
    """Per-pseudonym weights: the quality module's rater weights when it has them."""
    by_id = quality_rater_weights(project=project)
    if by_id:
        pseudonyms = dict(
            judgments.values_list("rater__rater_profile__pseudonym", "rater_id").distinct()
        )
        weights = {p: float(by_id.get(rid, 1.0)) for p, rid in pseudonyms.items() if p}
        mean = sum(weights.get(r.rater, 1.0) for r in rows) / max(len(rows), 1)
        if mean > 0:
            return (
                {p: round(w / mean, 4) for p, w in weights.items()},
                "apps.quality.selectors.rater_weights (latest quality snapshot)",
            )
    return agreement.rater_weights(rows)


def snapshot_create(*, training_round: TrainingRound, user=None) -> DatasetSnapshot:
    """Freeze the round's judgments (and earlier rounds', by default) into a snapshot."""
    if training_round.snapshot_id:
        return training_round.snapshot
    project = training_round.project
    config = training_round.config
    statuses = (
        (ReviewStatus.APPROVED,)
        if config.get("require_review", True)
        else (ReviewStatus.APPROVED, ReviewStatus.PENDING)
    )
    filters = exports.ExportFilters(
        review_statuses=statuses,
        max_round=training_round.number,
        min_round=None if config.get("include_previous_rounds", True) else training_round.number,
    )
    rows = exports.collect_rows(project=project, filters=filters)
    weighting = "uniform"
    if config.get("weighting") == "consensus":
        judgments = exports.judgments_for_export(project=project, filters=filters)
        weights, weighting = _consensus_weights(project, rows.judgment_rows, judgments)
        rows = exports.collect_rows(project=project, filters=filters, weights=weights)
    uid = uuid.uuid4().hex
    relative = f"snapshots/{project.pk}/{uid}"
    folder = artifact_path(relative)
    files = exports.write_files(folder, rows)
    agreement_figures = agreement.agreement_figures(rows.judgment_rows)
    filters_shown = filters.as_dict()
    data_card = {
        "project": {"id": project.pk, "name": project.name},
        "round": training_round.number,
        "filters": filters_shown,
        "guidelines_version": project.guidelines_version,
        "judgments_by_guidelines_version": rows.guideline_versions,
        "raters": {"count": len(rows.raters), "judgments_by_rater": rows.raters},
        "agreement": agreement_figures,
        "weighting": weighting,
        "held_out_rankings": len(rows.held_out_rankings),
        "policies": sorted({v for r in rows.rankings for v in r.policy_versions or []}),
    }
    manifest = contract.Manifest(
        snapshot_id=uid,
        created_at=timezone.now().isoformat(),
        files=files,
        project_id=project.pk,
        round=training_round.number,
        filters=filters_shown,
        guidelines_version=project.guidelines_version,
        agreement=agreement_figures,
        data_card=data_card,
    )
    manifest_sha256 = contract.write_manifest(folder, manifest)
    for path in folder.iterdir():
        path.chmod(0o444)  # frozen: the files never change after the manifest hashed them
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.snapshot_id:  # a concurrent attempt won; its snapshot stands
            shutil.rmtree(folder, ignore_errors=True)
            return locked.snapshot
        snapshot = DatasetSnapshot.objects.create(
            project=project,
            uid=uid,
            path=relative,
            manifest=manifest.to_json(),
            manifest_sha256=manifest_sha256,
            row_counts={name: entry.rows for name, entry in files.items()},
            data_card=data_card,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        locked.snapshot = snapshot
        locked.save(update_fields=["snapshot", "updated_at"])
        training_round.snapshot = snapshot
    return snapshot


def snapshot_folder(snapshot: DatasetSnapshot) -> Path:
    return artifact_path(snapshot.path)


def snapshot_verify(snapshot: DatasetSnapshot) -> Path:
    folder = snapshot_folder(snapshot)
    manifest = contract.Manifest.from_json(snapshot.manifest, f"snapshot {snapshot.pk}")
    problems = contract.verify_folder(folder, manifest)
    if problems:
        raise StageError(f"Snapshot {snapshot.pk} is damaged: {'; '.join(problems)}.")
    return folder


def _stage_exporting(run: TrainingRun) -> dict:
    snapshot = snapshot_create(training_round=run.round)
    if snapshot.row_counts.get("rankings.jsonl", 0) == 0:
        raise StageError(
            "No judgments passed the snapshot's filters "
            f"({snapshot.data_card['filters']['review_statuses']}); nothing to train on."
        )
    return {
        "metrics": {"snapshot_id": snapshot.pk, **snapshot.row_counts},
        "artifacts": {"snapshot": snapshot.path},
    }


# training data and launch ------------------------------------------------------------------


def _split_by_prompt(
    folder: Path, name: str, record: type, run_folder: Path
) -> tuple[Path, Path | None, int, int]:
    """Rows of the snapshot's `name` of train prompts to train on, of valid/test prompts held
    out: (train file, held-out file or None, rows held out, rows to train on)."""
    split_of = {
        p.prompt: p.split for p in contract.read_rows(folder / contract.PROMPTS, contract.Prompt)
    }
    train, held = [], []
    for row in contract.read_rows(folder / name, record):
        (held if split_of.get(row.prompt) in contract.HELD_OUT_SPLITS else train).append(row)
    if not held:
        return folder / name, None, 0, len(train)
    stem = Path(name).stem
    train_path, held_path = run_folder / f"{stem}-train.jsonl", run_folder / f"{stem}-heldout.jsonl"
    contract.write_rows(train_path, train)
    contract.write_rows(held_path, held)
    return train_path, held_path, len(held), len(train)


def _split_rankings(folder: Path, run_folder: Path) -> tuple[Path, Path | None, int]:
    """Train on rankings of train prompts; hold out the valid/test prompts' rankings."""
    train_path, held_path, held, trained = _split_by_prompt(
        folder, contract.RANKINGS, contract.Ranking, run_folder
    )
    if held and not trained:
        raise StageError("Every ranking is of a held-out prompt; none is left to train on.")
    return train_path, held_path, held


def _train_from(
    run: TrainingRun,
    command: str,
    policy: PolicyVersion,
    train_path: Path,
    held_path: Path | None,
    what: str,
) -> tuple[dict, Path]:
    """`python -m trainer COMMAND` from `policy` on `train_path` (validated on `held_path`),
    with the round's settings for COMMAND; (metrics, model folder it wrote)."""
    training_round = run.round
    config = trainer_settings(
        training_round,
        command,
        model=_policy_model(policy, f"policy {policy.name!r}"),
        train=str(train_path),
        seed=training_round.config["seed"],
        **({"valid": str(held_path)} if held_path is not None else {}),
    )
    model_dir = _stage_dir(run, "model")
    metrics = _run_trainer(run, command, config, model_dir)
    _require_model_dir(model_dir, what)
    return metrics, model_dir


# supervised fine-tuning -------------------------------------------------------------------


def _stage_sft(run: TrainingRun) -> dict:
    """Fine-tune the round's policy on the snapshot's demonstrations (InstructGPT's SFT step).

    Skipped, with the reason in its metrics, when the snapshot holds fewer demonstrations of
    train prompts than `sft_min_demonstrations`: RM and PPO then start from the round's
    policy. Demonstrations of valid/test prompts are held out for the validation loss.
    """
    training_round = run.round
    if training_round.snapshot is None:
        raise StageError("The round has no dataset snapshot to fine-tune on.")
    folder = snapshot_verify(training_round.snapshot)
    run_folder = _stage_dir(run)
    train_path, held_path, held, trained = _split_by_prompt(
        folder, contract.DEMONSTRATIONS, contract.Demonstration, run_folder
    )
    minimum = training_round.config["sft_min_demonstrations"]
    if trained < minimum:
        return {
            "metrics": {
                "skipped": True,
                "demonstrations": trained,
                "reason": f"{trained} demonstrations of train prompts, fewer than "
                f"sft_min_demonstrations ({minimum}); RM and PPO start from the round's policy.",
            },
            "artifacts": {},
        }
    metrics, model_dir = _train_from(
        run, "sft", training_round.start_policy, train_path, held_path, "policy SFT wrote"
    )
    sft_policy = policy_register(run=run, model_dir=model_dir)
    return {
        "metrics": {
            **_summary(metrics),
            "demonstrations": trained,
            "held_out_demonstrations": held,
            "policy_id": sft_policy.pk,
        },
        "artifacts": {"model": str(model_dir.relative_to(artifact_root()))},
    }


def round_sft_policy(training_round: TrainingRound) -> PolicyVersion | None:
    """The policy this round's SFT stage produced, if it ran (not skipped)."""
    run = (
        TrainingRun.objects.filter(
            round=training_round, stage=Stage.SFT, status=TrainingRun.Status.SUCCEEDED
        )
        .select_related("produced_policy")
        .first()
    )
    return run.produced_policy if run else None


def _training_start(training_round: TrainingRound) -> PolicyVersion:
    """Where RM and PPO start: the round's SFT policy if it made one, else its policy."""
    return round_sft_policy(training_round) or training_round.start_policy


# reward model -----------------------------------------------------------------------------


def _stage_rm(run: TrainingRun) -> dict:
    training_round = run.round
    if training_round.snapshot is None:
        raise StageError("The round has no dataset snapshot to train the reward model on.")
    folder = snapshot_verify(training_round.snapshot)
    run_folder = _stage_dir(run)
    train_path, held_path, held = _split_rankings(folder, run_folder)
    metrics, model_dir = _train_from(
        run,
        "rm",
        _training_start(training_round),  # InstructGPT's RM starts from the SFT model
        train_path,
        held_path,
        "reward model the trainer wrote",
    )
    return {
        "metrics": {
            **_summary(metrics),
            "held_out_source": "valid/test prompts" if held else "trainer split",
        },
        "artifacts": {"model": str(model_dir.relative_to(artifact_root()))},
    }


# PPO --------------------------------------------------------------------------------------


def _succeeded_run(training_round: TrainingRound, stage: Stage) -> TrainingRun:
    run = TrainingRun.objects.filter(
        round=training_round, stage=stage, status=TrainingRun.Status.SUCCEEDED
    ).first()
    if run is None:
        raise StageError(f"The {Stage(stage).label.lower()} stage of this round has not succeeded.")
    return run


def _artifact(run: TrainingRun, name: str, what: str) -> Path:
    relative = run.artifacts.get(name)
    if not relative:
        raise StageError(f"The {what} was never recorded by run {run.pk}.")
    path = artifact_path(relative)
    _require_model_dir(path, what)
    return path


def _stage_ppo(run: TrainingRun) -> dict:
    training_round = run.round
    rm_dir = _artifact(_succeeded_run(training_round, Stage.RM), "model", "reward model")
    folder = snapshot_verify(training_round.snapshot)
    sft_policy = round_sft_policy(training_round)
    policy = sft_policy or training_round.start_policy
    # The KL penalty is measured from the SFT policy, as in InstructGPT: this round's when it
    # fine-tuned one; else a later round starts from the last PPO policy but keeps the
    # SFT/base policy the lineage grew from.
    anchor = sft_policy or lineage_root(policy)
    model_dir = _stage_dir(run, "model")
    config = trainer_settings(
        training_round,
        "ppo",
        policy=_policy_model(policy, f"policy {policy.name!r}"),
        reference=_policy_model(anchor, f"policy {anchor.name!r}"),
        reward_model=str(rm_dir),
        prompts=str(folder / "prompts.jsonl"),
        split="train",
        seed=training_round.config["seed"],
        resume=True,  # a re-run after a lost worker continues from the last checkpoint
    )
    if run.attempt == 1 and (model_dir / "checkpoint").exists():
        shutil.rmtree(model_dir / "checkpoint", ignore_errors=True)
    metrics = _run_trainer(run, "ppo", config, model_dir)
    if not metrics.get("finished", True):
        raise StageError("PPO stopped before its last step (see the log).")
    _require_model_dir(model_dir, "policy PPO wrote")
    policy = policy_register(run=run, model_dir=model_dir)
    return {
        "metrics": {**_summary(metrics), "policy_id": policy.pk},
        "artifacts": {"model": str(model_dir.relative_to(artifact_root()))},
    }


def policy_register(*, run: TrainingRun, model_dir: Path) -> PolicyVersion:
    """Register the policy an SFT or PPO run produced, exactly once (safe to call again).

    An SFT policy's parent is the round's policy; a PPO policy's is the round's SFT policy
    when there is one, else the round's policy."""
    training_round = run.round
    is_sft = run.stage == Stage.SFT
    name = f"round-{training_round.number}-{run.stage}"
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.produced_policy_id:
            return locked.produced_policy
        parent = training_round.start_policy
        metadata = {"round_id": training_round.pk, "snapshot_id": training_round.snapshot_id}
        if is_sft:
            metadata["sft_run_id"] = run.pk
        else:
            sft_run, rm_run = (
                TrainingRun.objects.filter(round=training_round, stage=stage)
                .select_related("produced_policy")
                .first()
                for stage in (Stage.SFT, Stage.RM)
            )
            parent = (sft_run and sft_run.produced_policy) or parent
            metadata.update(
                ppo_run_id=run.pk,
                rm_run_id=rm_run.pk if rm_run else None,
                sft_run_id=sft_run.pk if sft_run else None,
            )
        try:
            with transaction.atomic():
                policy = PolicyVersion.objects.create(
                    project=training_round.project,
                    name=name,
                    kind=PolicyVersion.Kind.SFT if is_sft else PolicyVersion.Kind.PPO,
                    artifact_uri=str(model_dir.relative_to(artifact_root())),
                    parent=parent,
                    round_number=training_round.number,
                    metadata=metadata,
                )
        except IntegrityError as exc:
            raise StageError(
                f"A policy named {name!r} already exists in this project and was not made by "
                "this run; rename it to register the new one."
            ) from exc
        locked.produced_policy = policy
        locked.save(update_fields=["produced_policy", "updated_at"])
    return policy


# evaluating -------------------------------------------------------------------------------


def lineage_root(policy: PolicyVersion) -> PolicyVersion:
    """The first non-PPO ancestor (the SFT or base policy the lineage grew from)."""
    seen = set()
    current = policy
    while current.kind == PolicyVersion.Kind.PPO and current.parent_id and current.pk not in seen:
        seen.add(current.pk)
        current = current.parent
    return current


def _stage_evaluating(run: TrainingRun) -> dict:
    training_round = run.round
    ppo_run = _succeeded_run(training_round, Stage.PPO)
    rm_run = _succeeded_run(training_round, Stage.RM)
    new_policy = ppo_run.produced_policy
    if new_policy is None:
        raise StageError("The PPO stage registered no policy.")
    policy_dir = _artifact(ppo_run, "model", "policy PPO wrote")
    rm_dir = _artifact(rm_run, "model", "reward model")
    folder = snapshot_verify(training_round.snapshot)
    parent = training_round.start_policy
    root = lineage_root(new_policy)
    # the policy is judged as PPO trained it: same shortest answer, for both policies
    judged_as_trained = {"min_new_tokens": training_round.config["ppo"].get("min_new_tokens", 0)}
    evaluations = [("vs_parent", parent, {"reward_model": str(rm_dir)})]
    if root.pk != parent.pk:
        evaluations.append(("vs_root", root, {"reward_model": str(rm_dir)}))
    if training_round.config.get("eval_hidden_rule"):
        # the same answers as vs_parent (same policies, prompts and settings), another judge
        answers = _stage_dir(run, "vs_parent") / COMPLETIONS
        evaluations.append(
            ("hidden_rule", parent, {"score_fn": "hidden_rule", "completions": str(answers)})
        )
    results = {}
    for index, (label, reference, judge) in enumerate(evaluations):
        config = trainer_settings(
            training_round,
            "eval",
            defaults=judged_as_trained,
            policy=str(policy_dir),
            prompts=str(folder / "prompts.jsonl"),
            split="test",
            seed=training_round.config["seed"],
            reference_policy=_policy_model(reference, f"policy {reference.name!r}"),
            **judge,
        )
        metrics = _run_trainer(
            run, "eval", config, _stage_dir(run, label), step_offset=index * 1000, label=label
        )
        results[label] = {
            "reference_policy_id": reference.pk,
            "reference_policy": reference.name,
            "win_rate": metrics.get("win_rate"),
            "mean_score": metrics.get("mean_score"),
        }
    if "vs_root" not in results:
        results["vs_root"] = results["vs_parent"]
    ab = ab_tasks_create(
        run=run,
        new_policy=new_policy,
        parent=parent,
        completions_path=_stage_dir(run, "vs_parent") / "completions.jsonl",
    )
    summary = {
        **results,
        "rm_accuracy": rm_run.metrics.get("valid_accuracy"),
        "rm_accuracy_pairs": rm_run.metrics.get("valid_pairs"),
        "rater_agreement": training_round.snapshot.data_card.get("agreement", {}).get(
            "pairwise_agreement"
        ),
        "ab_tasks": ab,
    }
    PolicyVersion.objects.filter(pk=new_policy.pk).update(
        metadata={
            **new_policy.metadata,
            "win_rate_vs_parent": _overall(results["vs_parent"]),
            "win_rate_vs_root": _overall(results["vs_root"]),
            "eval_run_id": run.pk,
        }
    )
    return {
        "metrics": summary,
        "artifacts": {"evaluations": str(_stage_dir(run).relative_to(artifact_root()))},
    }


def _overall(result: dict) -> dict | None:
    win_rate = result.get("win_rate") or {}
    return win_rate.get("overall")


def ab_tasks_create(
    *, run: TrainingRun, new_policy: PolicyVersion, parent: PolicyVersion, completions_path: Path
) -> int:
    """Human A/B tasks on the held-out prompts: the new policy's answer against its parent's."""
    training_round = run.round
    project = training_round.project
    existing = Task.objects.filter(
        project=project, kind=Task.Kind.EVALUATION, round_number=training_round.number
    )
    if existing.exists():
        return existing.count()
    limit = training_round.config.get("ab_tasks", 0)
    if not limit or not completions_path.is_file():
        return 0
    rows = [json.loads(line) for line in completions_path.read_text().splitlines() if line.strip()]
    prompts = Prompt.objects.in_bulk([int(r["prompt_id"]) for r in rows])
    created = 0
    with transaction.atomic():
        for row in rows[:limit]:
            prompt = prompts.get(int(row["prompt_id"]))
            if prompt is None or prompt.project_id != project.pk:
                continue
            sampling = {**(row.get("sampling") or {}), "purpose": "ab-evaluation"}
            new_answer = completion_create(
                prompt=prompt,
                text=row["completion"],
                source=Completion.Source.POLICY,
                policy_version=new_policy,
                sampling_params=sampling,
                seed=row.get("seed"),
                round_number=training_round.number,
            )
            parent_answer = completion_create(
                prompt=prompt,
                text=row.get("reference_completion", ""),
                source=Completion.Source.POLICY,
                policy_version=parent,
                sampling_params=sampling,
                seed=row.get("seed"),
                round_number=training_round.number,
            )
            task_create(
                project=project,
                prompt=prompt,
                completions=[new_answer, parent_answer],
                kind=Task.Kind.EVALUATION,
                overlap=training_round.config.get("ab_overlap", 1) or 1,
                round_number=training_round.number,
            )
            created += 1
    return created


STAGE_HANDLERS.update(
    {
        Stage.SAMPLING: _stage_sampling,
        Stage.EXPORTING: _stage_exporting,
        Stage.SFT: _stage_sft,
        Stage.RM: _stage_rm,
        Stage.PPO: _stage_ppo,
        Stage.EVALUATING: _stage_evaluating,
    }
)
