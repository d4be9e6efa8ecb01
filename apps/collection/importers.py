"""Store parsed prompt and preference files (see importing.py for the parsing).

Both imports are all-or-nothing (one transaction) and safe to repeat: a prompt already in the
project is reused, and a comparison already imported (same prompt and both answers) is
skipped, keyed by a deterministic client_key.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from apps.collection.importing import PreferenceImport, PromptRecord
from apps.collection.models import (
    Category,
    Completion,
    Judgment,
    Project,
    Prompt,
    ReviewStatus,
    Task,
    TaskCompletion,
)
from apps.collection.services import PromptImportResult, PromptInput, prompts_import

IMPORT_NAMESPACE = uuid.UUID("6b1d6a58-3f0e-4b7c-9a55-0c2b8f1e9d41")


def prompt_records_import(
    *, project: Project, records: list[PromptRecord], source: str = Prompt.Source.IMPORTED
) -> PromptImportResult:
    return prompts_import(
        project=project,
        source=source,
        items=[
            PromptInput(
                text=r.text,
                category=r.category,
                split=r.split,
                external_id=r.external_id or "",
                reference=r.reference or "",
            )
            for r in records
        ],
    )


@dataclass
class PreferenceImportResult:
    judgments_created: int = 0
    already_imported: int = 0
    prompts_created: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)


LOOKUP_BATCH = 10_000  # ids per IN (...) lookup: PostgreSQL binds at most 65,535 parameters


def judgment_keys_existing(keys: list[uuid.UUID]) -> set[uuid.UUID]:
    """The client keys among `keys` that a judgment already has."""
    known: set[uuid.UUID] = set()
    for start in range(0, len(keys), LOOKUP_BATCH):
        batch = keys[start : start + LOOKUP_BATCH]
        known.update(
            Judgment.objects.filter(client_key__in=batch).values_list("client_key", flat=True)
        )
    return known


def comparison_key(project: Project, prompt: str, chosen: str, rejected: str) -> uuid.UUID:
    digest = hashlib.sha256("\x1f".join([prompt, chosen, rejected]).encode()).hexdigest()
    return uuid.uuid5(IMPORT_NAMESPACE, f"{project.pk}:{digest}")


@transaction.atomic
def preferences_import(
    *,
    project: Project,
    parsed: PreferenceImport,
    source_name: str,
    category: str = Category.CHAT,
    review_status: str = ReviewStatus.APPROVED,
) -> PreferenceImportResult:
    """Each comparison becomes a prompt, two imported completions, a closed K=2 task and an
    imported judgment ranking the chosen answer above the rejected one."""
    result = PreferenceImportResult(
        skipped=dict(parsed.skipped), skipped_lines=dict(parsed.skipped_lines)
    )
    keys = [comparison_key(project, r.prompt, r.chosen, r.rejected) for r in parsed.records]
    known = judgment_keys_existing(keys)
    fresh = []
    for record, key in zip(parsed.records, keys, strict=True):
        if key in known:
            result.already_imported += 1
        else:
            known.add(key)  # a repeated row inside the file counts once
            fresh.append((record, key))
    if not fresh:
        return result
    prompts = prompts_import(
        project=project,
        items=[PromptInput(text=r.prompt, category=category) for r, _ in fresh],
    )
    result.prompts_created = len(prompts.created)
    by_text = {p.text: p for p in prompts.prompts}

    completions = []
    for record, _ in fresh:
        prompt = by_text[record.prompt]
        provenance = {"dataset": source_name, "line": record.line}
        completions.append(
            Completion(
                prompt=prompt,
                text=record.chosen,
                source=Completion.Source.IMPORTED,
                sampling_params=provenance,
            )
        )
        completions.append(
            Completion(
                prompt=prompt,
                text=record.rejected,
                source=Completion.Source.IMPORTED,
                sampling_params=provenance,
            )
        )
    Completion.objects.bulk_create(completions, batch_size=1000)

    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                prompt=by_text[record.prompt],
                kind=Task.Kind.RANKING,
                overlap=1,
                status=Task.Status.COMPLETE,
            )
            for record, _ in fresh
        ],
        batch_size=1000,
    )
    links, judgments = [], []
    now = timezone.now()
    for index, (task, (_, key)) in enumerate(zip(tasks, fresh, strict=True)):
        chosen, rejected = completions[2 * index], completions[2 * index + 1]
        links += [
            TaskCompletion(task=task, completion=chosen, position=0),
            TaskCompletion(task=task, completion=rejected, position=1),
        ]
        judgments.append(
            Judgment(
                task=task,
                source=Judgment.Source.IMPORTED,
                ranking=[[chosen.pk], [rejected.pk]],
                display_order=[chosen.pk, rejected.pk],
                client_key=key,
                review_status=review_status,
                reviewed_at=now if review_status != ReviewStatus.PENDING else None,
                review_reason=f"Imported from {source_name}",
                guidelines_version=project.guidelines_version,
            )
        )
    TaskCompletion.objects.bulk_create(links, batch_size=2000)
    Judgment.objects.bulk_create(judgments, batch_size=1000)
    result.judgments_created = len(judgments)
    return result


def source_name_of(path: Path) -> str:
    return Path(path).name
