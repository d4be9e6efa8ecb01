"""The round's state machine: start, advance, fail, cancel, retry, and the collecting wait.

A round walks sampling → collecting → exporting → sft → rm → ppo → evaluating → done (sft is
skipped without enough demonstrations); each stage is one TrainingRun. Starting a stage queues
its run (apps/loop/dispatch.py); a worker executes it (apps/loop/executor.py, with the stage's
module in apps/loop/stages/) and calls `round_advance` or `round_fail`. Collecting has no task:
`collecting_check` (the watchdog, apps/loop/watchdog.py) moves the round on once enough
judgments exist. docs/design.md, "Rounds and stages".
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.collection.models import Assignment, PolicyVersion, Project, Task
from apps.core.errors import Conflict, InvalidInput
from apps.loop import selectors
from apps.loop.artifacts import round_folder
from apps.loop.config import round_config
from apps.loop.dispatch import run_enqueue, tasks_revoke
from apps.loop.models import ENDED, STAGE_ORDER, Stage, TrainingRound, TrainingRun


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
        start_policy = selectors.policy_latest(project=project)
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
        stage_begin(training_round, Stage.SAMPLING)
    return training_round


def stage_begin(training_round: TrainingRound, stage: Stage) -> TrainingRun:
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
        run_enqueue(run)
    return run


def _next_stage(stage: str) -> Stage:
    index = STAGE_ORDER.index(Stage(stage))
    return STAGE_ORDER[index + 1] if index + 1 < len(STAGE_ORDER) else Stage.DONE


def round_advance(run: TrainingRun) -> None:
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
    stage_begin(training_round, following)


def round_fail(run: TrainingRun, message: str) -> None:
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
        closed = round_tasks_close(training_round=locked)
        if closed:
            locked.message += f" Its {closed} open task(s) were closed."
            locked.save(update_fields=["message", "updated_at"])
        task_ids = [r.celery_task_id for r in active if r.celery_task_id]
    if task_ids:
        transaction.on_commit(lambda: tasks_revoke(task_ids))
    return locked


def round_tasks_close(*, training_round: TrainingRound) -> int:
    """Close the open tasks a cancelled round made (ranking and A/B), so no rater works on
    them any more; their live leases are withdrawn (an answer sent on one gets a 409 saying
    why). Judgments already given stay, as every judgment does. Returns how many closed."""
    tasks = Task.objects.filter(
        project_id=training_round.project_id,
        round_number=training_round.number,
        status=Task.Status.OPEN,
    )
    task_ids = list(tasks.values_list("pk", flat=True))
    if not task_ids:
        return 0
    Assignment.objects.filter(task_id__in=task_ids, status=Assignment.Status.LEASED).update(
        status=Assignment.Status.RELEASED,
        finished_at=timezone.now(),
        release_reason=f"Round {training_round.number} was cancelled; its tasks are closed.",
    )
    return Task.objects.filter(pk__in=task_ids).update(status=Task.Status.CLOSED)


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
        # the tasks its cancel closed are the round's again
        Task.objects.filter(
            project_id=locked.project_id, round_number=locked.number, status=Task.Status.CLOSED
        ).update(status=Task.Status.OPEN)
        if run is not None:
            run.error = ""
            run.save(update_fields=["error", "updated_at"])
        stage_begin(locked, stage)
    return locked


def round_move_on(*, training_round: TrainingRound, user=None) -> TrainingRound:
    """A researcher ends collecting early: export whatever judgments exist."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.stage != Stage.COLLECTING:
            raise Conflict("Only a round that is collecting judgments can be moved on.")
        collecting_finish(locked, reason=f"moved on by {getattr(user, 'username', 'researcher')}")
    return locked


def collecting_check(*, round_id: int) -> bool:
    """Advance a collecting round once enough judgments exist; True when it advanced."""
    with transaction.atomic():
        locked = TrainingRound.objects.select_for_update().filter(pk=round_id).first()
        if locked is None or locked.stage != Stage.COLLECTING:
            return False
        count = selectors.collecting_judgments(training_round=locked)
        target = locked.config.get("target_judgments", 0)
        run = TrainingRun.objects.get(round=locked, stage=Stage.COLLECTING)
        run.metrics = {"judgments": count, "target": target}
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["metrics", "heartbeat_at", "updated_at"])
        if count < target:
            locked.message = f"Waiting for judgments: {count} of {target}."
            locked.save(update_fields=["message", "updated_at"])
            return False
        collecting_finish(locked, reason=f"{count} of {target} judgments")
    return True


def collecting_finish(locked: TrainingRound, *, reason: str) -> None:
    run = TrainingRun.objects.select_for_update().get(round=locked, stage=Stage.COLLECTING)
    count = selectors.collecting_judgments(training_round=locked)
    run.status = TrainingRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.metrics = {
        **run.metrics,
        "judgments": count,
        "target": locked.config.get("target_judgments", 0),
        "reason": reason,
    }
    run.save(update_fields=["status", "finished_at", "metrics", "updated_at"])
    round_advance(run)
