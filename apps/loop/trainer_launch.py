"""Launching `python -m trainer ...` for a stage: its run.json, its process, its metrics.

The server builds the trainer's config from the round's settings of the stage (checked
against the contract again: a config stored before the checks existed cannot smuggle in a
path or a scorer) and the paths, seeds and scorers it sets itself; the whole run.json is
checked against the contract once more before it is written. While the child runs, its
metrics.jsonl lines become RunMetric rows, its output the run's log tail, and the run's
heartbeat moves on; a cancelled round stops it (apps/loop/runner.py does the process work).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from apps.loop import runner
from apps.loop.config import STAGE_SECTIONS
from apps.loop.errors import StageCancelled, StageError
from apps.loop.models import RunMetric, TrainingRound, TrainingRun
from trainer import contract
from trainer.contract import COMMAND_CONFIGS, ConfigError, check_settings

#: the run's heartbeat moves at least this often while its trainer runs
HEARTBEAT_SECONDS = 5.0


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


def _trainer_python() -> str:
    return getattr(settings, "TRAINER_PYTHON", "") or sys.executable


def _cancel_requested(run_id: int) -> bool:
    row = (
        TrainingRun.objects.filter(pk=run_id).values_list("status", "round__stage", "stage").first()
    )
    if row is None:
        return True
    status, round_stage, stage = row
    return status == TrainingRun.Status.CANCELLED or round_stage != stage


def run_trainer(
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
                log = without_redraws((current.first() or "") + output)
                updates["log"] = log[-runner.LOG_TAIL_CHARS :]
            TrainingRun.objects.filter(pk=run.pk).update(**updates)
        return _cancel_requested(run.pk)

    outcome = runner.run(
        argv,
        cwd=Path(settings.BASE_DIR),
        log_path=log_path,
        metrics_path=out / contract.METRICS_JSONL,
        on_start=on_start,
        on_tick=on_tick,
        tick_seconds=getattr(settings, "LOOP_TICK_SECONDS", 1.0),
        env={"TOKENIZERS_PARALLELISM": "false"},
    )
    if outcome.cancelled:
        raise StageCancelled()
    if outcome.returncode != 0:
        raise StageError(_trainer_error(command, outcome))
    try:
        return json.loads((out / contract.METRICS_JSON).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(
            f"trainer {command} exited 0 but {out / contract.METRICS_JSON} is missing or "
            f"unreadable ({exc})."
        ) from exc


def without_redraws(text: str) -> str:
    """A progress bar redraws its line with carriage returns; the log keeps what a terminal
    would show: each line's last state."""
    if "\r" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        states = [state for state in line.split("\r") if state.strip()]
        lines.append(states[-1] if states else "")
    return "\n".join(lines)


def _trainer_error(command: str, outcome: runner.Outcome) -> str:
    lines = [line for line in outcome.output_tail.splitlines() if line.strip()]
    explicit = [line for line in lines if line.startswith("error:")]
    if explicit:
        return f"trainer {command}: {explicit[-1][len('error:') :].strip()}"
    detail = lines[-1] if lines else "no output"
    code = outcome.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
    return f"trainer {command} {how}: {detail[:500]}"


def summary(metrics: dict) -> dict:
    """A trainer's final metrics without the config it echoes back."""
    return {k: v for k, v in metrics.items() if k != "config"}
