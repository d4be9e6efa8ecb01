"""Turn a trainer `samples.jsonl` into completions with provenance and ranking tasks.

The trainer (`python -m trainer sample`) writes one line per completion:
`{"prompt_id", "prompt", "index", "completion", "seed", "sampling": {...}, "model",
"finish_reason"}`, where prompt_id is a Prompt's primary key (from the prompts.jsonl that
PrefLoop wrote). Re-running on the same file adds nothing: a prompt that already has
completions from this policy in this round is left alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import transaction

from apps.collection.models import (
    MAX_K,
    MIN_K,
    Completion,
    PolicyVersion,
    Project,
    Prompt,
    Task,
)
from apps.collection.services import task_create
from apps.core.errors import InvalidInput


def _prompt_id(value) -> int | None:
    """Prompt ids travel through JSON files as numbers or as digit strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def read_samples(path: Path) -> dict[int, list[dict]]:
    """Samples grouped by prompt id, in file order; a malformed line raises InvalidInput."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read samples ({exc.strerror}).") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path} line {number}: not JSON ({exc.msg}).") from exc
        prompt_id = _prompt_id(row.get("prompt_id") if isinstance(row, dict) else None)
        if prompt_id is None:
            raise InvalidInput(f'{path} line {number}: expected "prompt_id", a prompt\'s id.')
        if not isinstance(row.get("completion"), str):
            raise InvalidInput(f'{path} line {number}: expected "completion" to be text.')
        grouped[prompt_id].append(row)
    return grouped


def tasks_create_from_samples(
    *,
    project: Project,
    policy_version: PolicyVersion,
    samples_path: Path,
    round_number: int | None = None,
    kind: str = Task.Kind.RANKING,
    plans: Mapping[int, Any] | None = None,
) -> list[Task]:
    """One task per prompt over up to project.k of its sampled completions.

    `plans` (by prompt id; apps/loop/selection.py) may choose which samples a prompt's task
    shows (`shown`, indices into its samples in file order) and its `priority`; without a
    plan a task shows the first K samples at priority 0. The samples shown become
    completions (with the reward model's score in `sampling_params` when the sampler added
    one); the round's selection record keeps which were chosen and why.
    """
    grouped = read_samples(Path(samples_path))
    prompts = Prompt.objects.in_bulk(list(grouped))
    unknown = sorted(set(grouped) - set(prompts))
    if unknown:
        raise InvalidInput(f"{samples_path}: prompt ids not in the database: {unknown[:10]}.")
    done = set(
        Completion.objects.filter(
            policy_version=policy_version, round_number=round_number, prompt_id__in=list(grouped)
        ).values_list("prompt_id", flat=True)
    )
    tasks: list[Task] = []
    with transaction.atomic():
        for prompt_id, rows in grouped.items():
            prompt = prompts[prompt_id]
            if prompt_id in done or prompt.project_id != project.pk:
                continue
            plan = (plans or {}).get(prompt_id)
            shown = list(plan.shown) if plan is not None else list(range(len(rows)))
            shown = shown[: min(project.k, MAX_K)]
            if len(shown) < MIN_K:
                continue
            completions = [
                Completion.objects.create(
                    prompt=prompt,
                    text=row["completion"],
                    source=Completion.Source.POLICY,
                    policy_version=policy_version,
                    sampling_params={
                        **(row.get("sampling") or {}),
                        "model": row.get("model", ""),
                        "finish_reason": row.get("finish_reason", ""),
                        "index": row.get("index"),
                        **({"reward": row["reward"]} if "reward" in row else {}),
                    },
                    seed=row.get("seed"),
                    round_number=round_number,
                )
                for row in (rows[i] for i in shown)
            ]
            tasks.append(
                task_create(
                    project=project,
                    prompt=prompt,
                    completions=completions,
                    kind=kind,
                    round_number=round_number,
                    priority=plan.priority if plan is not None else 0,
                )
            )
    return tasks
