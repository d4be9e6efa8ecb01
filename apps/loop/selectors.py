"""Reads of the closed loop: rounds, their runs and policies, lineage, A/B win rates."""

from __future__ import annotations

import numpy as np
from django.db.models import QuerySet

from apps.collection import access
from apps.collection.models import Judgment, PolicyVersion, Project, Prompt, ReviewStatus, Task
from apps.core.roles import Role
from apps.loop.models import (
    ENDED,
    STAGE_ORDER,
    DatasetSnapshot,
    RunMetric,
    Stage,
    TrainingRound,
    TrainingRun,
)

#: metric series the round page plots, per stage
PLOTTED = {
    "rm": ["loss", "train_pair_accuracy"],
    "ppo": ["score", "kl", "entropy", "response_length"],
    "sampling": ["tokens_per_second"],
}


def round_get(*, round_id: int, user) -> TrainingRound:
    """The round if `user` researches its project; NotFound otherwise."""
    return access.object_for(
        TrainingRound.objects.select_related("project", "start_policy", "snapshot"),
        user=user,
        role=Role.RESEARCHER,
        pk=round_id,
        missing="No such round, or you do not research its project.",
    )


def snapshot_get(*, snapshot_id: int, user) -> DatasetSnapshot:
    """The snapshot if `user` researches its project; NotFound otherwise."""
    return access.object_for(
        DatasetSnapshot.objects.select_related("project"),
        user=user,
        role=Role.RESEARCHER,
        pk=snapshot_id,
        missing="No such snapshot, or you do not research its project.",
    )


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


def succeeded_run(*, training_round: TrainingRound, stage: str) -> TrainingRun | None:
    """The round's run of `stage` if it succeeded."""
    return (
        TrainingRun.objects.filter(
            round=training_round, stage=stage, status=TrainingRun.Status.SUCCEEDED
        )
        .select_related("produced_policy")
        .first()
    )


def round_sft_policy(*, training_round: TrainingRound) -> PolicyVersion | None:
    """The policy this round's SFT stage produced, if it ran (not skipped)."""
    run = succeeded_run(training_round=training_round, stage=Stage.SFT)
    return run.produced_policy if run else None


def training_start_policy(*, training_round: TrainingRound) -> PolicyVersion:
    """Where RM and PPO start: the round's SFT policy if it made one, else its policy."""
    return round_sft_policy(training_round=training_round) or training_round.start_policy


def lineage_root(*, policy: PolicyVersion) -> PolicyVersion:
    """The first non-PPO ancestor (the SFT or base policy the lineage grew from)."""
    seen = set()
    current = policy
    while current.kind == PolicyVersion.Kind.PPO and current.parent_id and current.pk not in seen:
        seen.add(current.pk)
        current = current.parent
    return current


def collecting_judgments(*, training_round: TrainingRound) -> int:
    """Judgments of the round's ranking tasks that count towards its target."""
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


def rounds_list(*, project: Project | None = None) -> QuerySet[TrainingRound]:
    rounds = TrainingRound.objects.select_related("project", "start_policy", "snapshot")
    return rounds.filter(project=project) if project is not None else rounds


def snapshots_list(*, project: Project | None = None) -> QuerySet[DatasetSnapshot]:
    snapshots = DatasetSnapshot.objects.select_related("project").order_by("-created_at")
    return snapshots.filter(project=project) if project is not None else snapshots


def run_metric_series(*, run: TrainingRun, keys: list[str] | None = None) -> dict[str, list]:
    """{key: [[step, value], ...]} of the streamed metrics (numbers only)."""
    series: dict[str, list] = {}
    for step, values in RunMetric.objects.filter(run=run).values_list("step", "values"):
        for key, value in values.items():
            if key in ("step", "time_s") or (keys is not None and key not in keys):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(key, []).append([step, value])
    return series


def bootstrap_interval(values: list[float], *, resamples: int = 1000, seed: int = 0):
    """(mean, low, high) percentile bootstrap at 95%; None values when empty."""
    if not values:
        return None, None, None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(data.mean()), float(low), float(high)


def ab_win_rate(*, training_round: TrainingRound) -> dict:
    """Human A/B evaluation of the round's new policy against its parent, as judgments arrive.

    A judgment counts 1 when the new policy's answer is alone in the best group, 0 when the
    parent's is, ½ for a tie. Rejected judgments are left out.
    """
    ppo = TrainingRun.objects.filter(round=training_round, stage="ppo").first()
    new_policy_id = ppo.produced_policy_id if ppo else None
    tasks = Task.objects.filter(
        project_id=training_round.project_id,
        kind=Task.Kind.EVALUATION,
        round_number=training_round.number,
    )
    result = {"tasks": tasks.count(), "judgments": 0, "win_rate": None, "ci": [None, None]}
    if not new_policy_id or not result["tasks"]:
        return result
    new_ids = set(
        tasks.filter(completions__policy_version_id=new_policy_id).values_list(
            "completions__id", flat=True
        )
    )
    values = []
    for ranking in (
        Judgment.objects.filter(task__in=tasks)
        .exclude(review_status=ReviewStatus.REJECTED)
        .values_list("ranking", flat=True)
    ):
        if not ranking:
            continue
        best = set(ranking[0])
        if len(best) > 1:
            values.append(0.5)
        else:
            values.append(1.0 if best & new_ids else 0.0)
    mean, low, high = bootstrap_interval(values)
    result.update(judgments=len(values), win_rate=mean, ci=[low, high])
    return result


def stage_status(run: TrainingRun | None, *, round_ended: bool) -> str:
    """What the stage bar and the runs list show: the run's status, "skipped" for a stage
    that had nothing to do (SFT without enough demonstrations), "waiting" before the run
    exists, and "not run" for a stage an ended round never reached."""
    if run is None:
        return "not run" if round_ended else "waiting"
    if run.status == TrainingRun.Status.SUCCEEDED and run.metrics.get("skipped"):
        return "skipped"
    return run.status


def round_actions(training_round: TrainingRound) -> dict[str, bool]:
    """Which of the page's buttons may act now (the services refuse the others anyway)."""
    ended = training_round.stage in ENDED
    return {
        "cancel": not ended,
        "retry": training_round.stage in (Stage.FAILED, Stage.CANCELLED)
        and not TrainingRound.objects.filter(project_id=training_round.project_id)
        .exclude(stage__in=ENDED)
        .exists(),
        "move_on": training_round.stage == Stage.COLLECTING,
    }


def round_detail(*, training_round: TrainingRound) -> dict:
    """Everything the round page shows; also the body of GET /api/rounds/{id}/."""
    runs = {run.stage: run for run in TrainingRun.objects.filter(round=training_round)}
    ended = training_round.stage in ENDED
    stages = []
    for stage in STAGE_ORDER:
        run = runs.get(stage)
        stages.append(
            {
                "stage": stage.value,
                "label": stage.label,
                "status": stage_status(run, round_ended=ended),
                "run_id": run.pk if run else None,
            }
        )
    run_rows = []
    for stage in STAGE_ORDER:
        run = runs.get(stage)
        if run is None:
            continue
        run_rows.append(
            {
                "id": run.pk,
                "stage": run.stage,
                "status": run.status,
                "shown_status": stage_status(run, round_ended=ended),
                "attempt": run.attempt,
                "queue": run.queue,
                "celery_task_id": run.celery_task_id,
                "worker": run.worker,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "heartbeat_at": run.heartbeat_at,
                "config": run.config,
                "command": run.command,
                "metrics": run.metrics,
                "artifacts": run.artifacts,
                "error": run.error,
                "log": run.log[-8000:],
                "series": run_metric_series(run=run, keys=PLOTTED.get(run.stage)),
                "produced_policy_id": run.produced_policy_id,
            }
        )
    ppo = runs.get("ppo")
    return {
        "id": training_round.pk,
        "project_id": training_round.project_id,
        "number": training_round.number,
        "stage": training_round.stage,
        "message": training_round.message,
        "config": training_round.config,
        "start_policy": _policy_brief(training_round.start_policy),
        "produced_policy": _policy_brief(ppo.produced_policy)
        if ppo and ppo.produced_policy
        else None,
        "snapshot_id": training_round.snapshot_id,
        "created_at": training_round.created_at,
        "finished_at": training_round.finished_at,
        "stages": stages,
        "actions": round_actions(training_round),
        "runs": run_rows,
        "ab_evaluation": ab_win_rate(training_round=training_round),
        "selection": round_selection(training_round=training_round, runs=runs),
    }


SELECTION_ROWS_SHOWN = 50


def round_selection(*, training_round: TrainingRound, runs: dict | None = None) -> dict:
    """How the round chose what raters rank first: the strategy asked for and used, the
    measure, and the chosen tasks by priority with their uncertainty (and prompt), from the
    sampling run's record (apps/loop/selection.py)."""
    if runs is None:
        runs = {run.stage: run for run in TrainingRun.objects.filter(round=training_round)}
    sampling = runs.get("sampling")
    recorded = (sampling.metrics or {}).get("selection") if sampling else None
    if not recorded:
        strategy = training_round.config.get("selection", "off")
        return {"strategy": strategy, "used": "", "tasks": [], "tasks_total": 0}
    tasks = recorded.get("tasks", [])
    shown = tasks[:SELECTION_ROWS_SHOWN]
    texts = dict(
        Prompt.objects.filter(pk__in=[t["prompt_id"] for t in shown]).values_list("pk", "text")
    )
    uncertainties = [t["uncertainty"] for t in tasks if t.get("uncertainty") is not None]
    return {
        **{key: value for key, value in recorded.items() if key != "tasks"},
        "tasks_total": len(tasks),
        "mean_uncertainty": round(sum(uncertainties) / len(uncertainties), 4)
        if uncertainties
        else None,
        "tasks": [{**t, "prompt": texts.get(t["prompt_id"], "")[:200]} for t in shown],
    }


def _policy_brief(policy: PolicyVersion | None) -> dict | None:
    if policy is None:
        return None
    return {"id": policy.pk, "name": policy.name, "kind": policy.kind}


def policy_lineage(*, project: Project) -> list[dict]:
    """Every policy of the project with its parent, the round, runs and snapshot behind it,
    and its win rates (automatic, and human A/B where judged)."""
    rows = []
    policies = PolicyVersion.objects.filter(project=project).order_by("created_at", "pk")
    for policy in policies:
        run = TrainingRun.objects.filter(produced_policy=policy).select_related("round").first()
        training_round = run.round if run else None
        runs = (
            dict(TrainingRun.objects.filter(round=training_round).values_list("stage", "pk"))
            if training_round
            else {}
        )
        rows.append(
            {
                "id": policy.pk,
                "name": policy.name,
                "kind": policy.kind,
                "artifact_uri": policy.artifact_uri,
                "parent_id": policy.parent_id,
                "round_id": training_round.pk if training_round else None,
                "round_number": training_round.number if training_round else None,
                "runs": runs,
                "snapshot_id": training_round.snapshot_id if training_round else None,
                "win_rate_vs_parent": policy.metadata.get("win_rate_vs_parent"),
                "win_rate_vs_root": policy.metadata.get("win_rate_vs_root"),
                # the round's A/B tasks compare its PPO policy with the round's policy
                "ab_evaluation": ab_win_rate(training_round=training_round)
                if training_round and policy.kind == PolicyVersion.Kind.PPO
                else None,
            }
        )
    return rows


def policy_ancestry(*, policy: PolicyVersion) -> list[PolicyVersion]:
    """The policy and its ancestors, newest first."""
    chain, seen = [], set()
    current = policy
    while current is not None and current.pk not in seen:
        chain.append(current)
        seen.add(current.pk)
        current = current.parent
    return chain
