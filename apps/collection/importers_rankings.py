"""Store parsed K-way ranking files: rankings as imported judgments, gold items as gold tasks.

All-or-nothing (one transaction) and safe to repeat, like importers.py: a ranking already
imported (same prompt, answers and ranking) is counted as already there, keyed by a
deterministic client_key; so is a gold item whose prompt already has a gold task over the
same answers.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from apps.collection.importers import IMPORT_NAMESPACE, judgment_keys_existing
from apps.collection.importing import PreferenceImport
from apps.collection.importing_rankings import RankingRecord
from apps.collection.models import (
    Completion,
    Judgment,
    Project,
    ReviewStatus,
    Task,
    TaskCompletion,
)
from apps.collection.services import PromptInput, prompts_import

GOLD_OVERLAP = 10_000  # a gold task is for every rater (screening, honeypots)


@dataclass
class RankingImportResult:
    added: int = 0
    already_there: int = 0
    prompts_created: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)


def ranking_key(project: Project, record: RankingRecord) -> uuid.UUID:
    content = json.dumps([record.prompt, record.completions, record.ranking])
    digest = hashlib.sha256(content.encode()).hexdigest()
    return uuid.uuid5(IMPORT_NAMESPACE, f"{project.pk}:{digest}")


@transaction.atomic
def rankings_import(
    *,
    project: Project,
    parsed: PreferenceImport,
    source_name: str,
    review_status: str = ReviewStatus.APPROVED,
) -> RankingImportResult:
    """Each ranking becomes a prompt, its K imported completions, a closed task and an
    imported judgment with the file's ranking."""
    result = RankingImportResult(
        skipped=dict(parsed.skipped), skipped_lines=dict(parsed.skipped_lines)
    )
    records: list[RankingRecord] = parsed.records
    keys = [ranking_key(project, r) for r in records]
    fresh = _fresh(records, keys, judgment_keys_existing(keys), result)
    if not fresh:
        return result
    tasks, completions = _tasks_with_completions(
        project, [r for r, _ in fresh], source_name, status=Task.Status.COMPLETE, result=result
    )
    now = timezone.now()
    Judgment.objects.bulk_create(
        [
            Judgment(
                task=task,
                source=Judgment.Source.IMPORTED,
                ranking=[[ids[i] for i in group] for group in record.ranking],
                display_order=list(ids),
                client_key=key,
                review_status=review_status,
                reviewed_at=now if review_status != ReviewStatus.PENDING else None,
                review_reason=f"Imported from {source_name}",
                guidelines_version=project.guidelines_version,
            )
            for task, ids, (record, key) in zip(tasks, completions, fresh, strict=True)
        ],
        batch_size=1000,
    )
    result.added = len(fresh)
    return result


@transaction.atomic
def gold_import(*, project: Project, parsed: PreferenceImport, source_name: str):
    """Each item becomes a prompt, its completions and an open gold task whose answer is the
    file's ranking (served to every rater: screening and honeypots). An item whose prompt
    already has a gold task over the same answers is already there."""
    result = RankingImportResult(
        skipped=dict(parsed.skipped), skipped_lines=dict(parsed.skipped_lines)
    )
    records: list[RankingRecord] = parsed.records
    keys = [_gold_key(r.prompt, r.completions) for r in records]
    fresh = _fresh(records, keys, _gold_keys_existing(project), result)
    if not fresh:
        return result
    tasks, completions = _tasks_with_completions(
        project,
        [r for r, _ in fresh],
        source_name,
        status=Task.Status.OPEN,
        result=result,
        gold=True,
    )
    for task, ids, (record, _) in zip(tasks, completions, fresh, strict=True):
        task.gold_ranking = [[ids[i] for i in group] for group in record.ranking]
    Task.objects.bulk_update(tasks, ["gold_ranking"], batch_size=1000)
    result.added = len(fresh)
    return result


def _gold_key(prompt: str, completions) -> tuple:
    return (prompt.strip(), frozenset(text.strip() for text in completions))


def _gold_keys_existing(project: Project) -> set[tuple]:
    answers: dict[int, list[str]] = {}
    prompts: dict[int, str] = {}
    for task_id, prompt_text, text in TaskCompletion.objects.filter(
        task__project=project, task__is_gold=True
    ).values_list("task_id", "task__prompt__text", "completion__text"):
        answers.setdefault(task_id, []).append(text)
        prompts[task_id] = prompt_text
    return {_gold_key(prompts[t], texts) for t, texts in answers.items()}


def _fresh(records, keys, known, result: RankingImportResult) -> list[tuple]:
    fresh = []
    for record, key in zip(records, keys, strict=True):
        if key in known:
            result.already_there += 1
        else:
            known.add(key)  # a row repeated inside the file counts once
            fresh.append((record, key))
    return fresh


def _tasks_with_completions(
    project: Project,
    records: list[RankingRecord],
    source_name: str,
    *,
    status: str,
    result: RankingImportResult,
    gold: bool = False,
) -> tuple[list[Task], list[list[int]]]:
    """A task per record over its completions (canonical order: the file's); the completion
    ids of each, in the file's order."""
    prompts = prompts_import(project=project, items=[PromptInput(text=r.prompt) for r in records])
    result.prompts_created = len(prompts.created)
    by_text = {p.text: p for p in prompts.prompts}
    completions = [
        Completion(
            prompt=by_text[record.prompt],
            text=text,
            source=Completion.Source.IMPORTED,
            sampling_params={"dataset": source_name, "line": record.line},
        )
        for record in records
        for text in record.completions
    ]
    Completion.objects.bulk_create(completions, batch_size=1000)
    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                prompt=by_text[record.prompt],
                kind=Task.Kind.RANKING,
                overlap=GOLD_OVERLAP if gold else 1,
                status=status,
                is_gold=gold,
            )
            for record in records
        ],
        batch_size=1000,
    )
    ids, links, at = [], [], 0
    for task, record in zip(tasks, records, strict=True):
        mine = completions[at : at + len(record.completions)]
        at += len(record.completions)
        ids.append([c.pk for c in mine])
        links += [TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(mine)]
    TaskCompletion.objects.bulk_create(links, batch_size=2000)
    return tasks, ids
