"""Fixtures for the loop: a tiny base policy on disk, a project with prompts, inline stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from apps.collection.models import PolicyVersion, Prompt
from apps.loop import dispatch, executor
from apps.loop.models import TrainingRun
from tests.factories import ProjectFactory

CATEGORIES = ["open_qa", "generation", "brainstorming", "chat"]
WORDS = ["cats", "rivers", "bread", "stars", "music", "trees", "rain", "books"]


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A tiny random-initialised Llama from `python -m trainer bootstrap --tiny` (cached)."""
    out = Path(settings.ARTIFACT_ROOT) / "models" / "tiny-llama"
    if not (out / "config.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "trainer", "bootstrap", "--tiny", "--out", str(out)],
            cwd=settings.BASE_DIR,
            check=True,
            capture_output=True,
        )
    return out


def make_loop_project(*, train: int = 24, test: int = 16, k: int = 4, overlap: int = 2):
    project = ProjectFactory(k=k, overlap=overlap)
    for i in range(train + test):
        Prompt.objects.create(
            project=project,
            text=f"Tell me about {WORDS[i % len(WORDS)]} number {i}.",
            category=CATEGORIES[i % len(CATEGORIES)],
            split="train" if i < train else "test",
        )
    return project


@pytest.fixture
def loop_project(db, tiny_model_dir):
    project = make_loop_project()
    policy = PolicyVersion.objects.create(
        project=project, name="tiny-base", kind="base", artifact_uri=str(tiny_model_dir)
    )
    return project, policy


class InlineStages:
    """Collects the stage tasks the services publish, and runs them in this process."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    def __call__(self, run_id: int, queue: str, task_id: str) -> None:
        self.sent.append((run_id, task_id))

    def drain(self, *, until_stage: str | None = None, limit: int = 20) -> list[str]:
        done = []
        while self.sent and limit:
            limit -= 1
            run_id, task_id = self.sent.pop(0)
            run = TrainingRun.objects.get(pk=run_id)
            if until_stage and run.stage == until_stage:
                self.sent.insert(0, (run_id, task_id))
                break
            done.append(executor.run_execute(run_id=run_id, task_id=task_id))
        return done


@pytest.fixture
def stages(monkeypatch):
    inline = InlineStages()
    monkeypatch.setattr(dispatch, "publish", inline)
    return inline


@pytest.fixture
def stages_sent(stages):
    """The stage tasks published (run id, task id), not run."""
    return stages
