"""Human A/B evaluation tasks: a new policy's answer against its parent's, on the same prompt.

The loop's evaluating stage calls `ab_tasks_create` with the answers `trainer eval` wrote for
held-out prompts; labelers then judge each pair (A better / B better / tie) and the round page
shows the new policy's human win rate (apps/loop/selectors.py, `ab_win_rate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from apps.collection.models import Completion, PolicyVersion, Project, Prompt, Task
from apps.collection.services import completion_create, task_create


@dataclass(frozen=True)
class AnswerPair:
    """Two policies' answers to one prompt, with how they were sampled."""

    prompt_id: int
    new_answer: str
    parent_answer: str
    sampling: dict = field(default_factory=dict)
    seed: int | None = None


def ab_tasks_create(
    *,
    project: Project,
    round_number: int,
    new_policy: PolicyVersion,
    parent: PolicyVersion,
    pairs: Sequence[AnswerPair],
    limit: int,
    overlap: int,
) -> int:
    """An evaluation task for each of the first `limit` pairs (prompts of another project are
    skipped); once per round: called again, it creates nothing and returns the count made."""
    existing = Task.objects.filter(
        project=project, kind=Task.Kind.EVALUATION, round_number=round_number
    )
    if existing.exists():
        return existing.count()
    if not limit or not pairs:
        return 0
    prompts = Prompt.objects.in_bulk([pair.prompt_id for pair in pairs])
    created = 0
    with transaction.atomic():
        for pair in pairs[:limit]:
            prompt = prompts.get(pair.prompt_id)
            if prompt is None or prompt.project_id != project.pk:
                continue
            sampling = {**pair.sampling, "purpose": "ab-evaluation"}
            answers = [
                completion_create(
                    prompt=prompt,
                    text=text,
                    source=Completion.Source.POLICY,
                    policy_version=policy,
                    sampling_params=sampling,
                    seed=pair.seed,
                    round_number=round_number,
                )
                for text, policy in ((pair.new_answer, new_policy), (pair.parent_answer, parent))
            ]
            task_create(
                project=project,
                prompt=prompt,
                completions=answers,
                kind=Task.Kind.EVALUATION,
                overlap=overlap,
                round_number=round_number,
            )
            created += 1
    return created
