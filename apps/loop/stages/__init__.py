"""One module per stage (or family of stages); each `execute`s a TrainingRun and returns a
`StageResult`. The executor (apps/loop/executor.py) looks the handler up here."""

from __future__ import annotations

from collections.abc import Callable

from apps.loop.models import Stage, TrainingRun
from apps.loop.stages import evaluating, exporting, sampling, training
from apps.loop.stages.base import StageResult

#: the handler of every stage that runs as a task (collecting waits for judgments instead)
HANDLERS: dict[str, Callable[[TrainingRun], StageResult]] = {
    Stage.SAMPLING: sampling.execute,
    Stage.EXPORTING: exporting.execute,
    Stage.SFT: training.sft,
    Stage.RM: training.rm,
    Stage.PPO: training.ppo,
    Stage.EVALUATING: evaluating.execute,
}
