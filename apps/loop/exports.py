"""Dataset files exactly as DESIGN.md "Dataset formats" describes, plus their manifest.

Reads the database into plain rows, writes JSONL files into a folder, and hashes them. The
writes are deterministic (rows ordered by id, keys in a fixed order), so the same judgments
give byte-identical files.

- rankings.jsonl       {"prompt", "completions", "ranking", "rater", "task_id", "judgment_id",
                        "policy_versions", "weight"}     one line per judgment
- pairs.jsonl          {"prompt", "chosen", "rejected"}  one line per strict pair (TRL format)
- demonstrations.jsonl {"prompt", "completion"}          TRL prompt-completion format
- prompts.jsonl        {"id", "prompt", "category", "split"} (+ "reference" where one exists)
- manifest.json        snapshot id, sha256 and row count per file, filters, guideline version,
                       agreement figures, created_at
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Q, QuerySet

from apps.collection.models import (
    Demonstration,
    Judgment,
    Project,
    Prompt,
    ReviewStatus,
    Task,
    TaskCompletion,
)
from apps.loop.agreement import JudgmentRow

FILES = ("rankings.jsonl", "pairs.jsonl", "demonstrations.jsonl", "prompts.jsonl")
MANIFEST = "manifest.json"
HELD_OUT_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class ExportFilters:
    """Which judgments a snapshot freezes; written into the manifest and the data card."""

    review_statuses: tuple[str, ...] = (ReviewStatus.APPROVED,)
    max_round: int | None = None
    min_round: int | None = None
    include_gold: bool = False

    def as_dict(self) -> dict:
        return {
            "task_kind": Task.Kind.RANKING,
            "review_statuses": list(self.review_statuses),
            "rounds": [self.min_round, self.max_round],
            "include_gold": self.include_gold,
        }


def judgments_for_export(*, project: Project, filters: ExportFilters) -> QuerySet[Judgment]:
    queryset = Judgment.objects.filter(
        task__project=project,
        task__kind=Task.Kind.RANKING,
        review_status__in=list(filters.review_statuses),
    )
    if not filters.include_gold:
        queryset = queryset.filter(task__is_gold=False)
    if filters.max_round is not None:
        queryset = queryset.filter(Q(task__round_number__lte=filters.max_round))
    if filters.min_round is not None:
        queryset = queryset.filter(task__round_number__gte=filters.min_round)
    return queryset.select_related("task__prompt", "rater__rater_profile").order_by("pk")


def _task_slots(task_ids: Iterable[int]) -> dict[int, list[TaskCompletion]]:
    slots: dict[int, list[TaskCompletion]] = {}
    for tc in (
        TaskCompletion.objects.filter(task_id__in=list(task_ids))
        .select_related("completion__policy_version")
        .order_by("task_id", "position")
    ):
        slots.setdefault(tc.task_id, []).append(tc)
    return slots


def _pseudonym(judgment: Judgment) -> str:
    profile = getattr(judgment.rater, "rater_profile", None) if judgment.rater else None
    if profile is not None:
        return profile.pseudonym
    return f"user-{judgment.rater_id}" if judgment.rater_id else "imported"


@dataclass
class ExportRows:
    rankings: list[dict]
    pairs: list[dict]
    demonstrations: list[dict]
    prompts: list[dict]
    judgment_rows: list[JudgmentRow]
    held_out_rankings: list[dict]
    guideline_versions: dict[str, int]
    raters: dict[str, int]


def collect_rows(
    *, project: Project, filters: ExportFilters, weights: dict[str, float] | None = None
) -> ExportRows:
    """Everything a snapshot holds, as plain dicts in file order."""
    judgments = list(judgments_for_export(project=project, filters=filters))
    slots = _task_slots({j.task_id for j in judgments})
    rankings, pairs, judgment_rows, held_out = [], [], [], []
    guideline_versions: dict[str, int] = {}
    raters: dict[str, int] = {}
    for judgment in judgments:
        task_slots = slots.get(judgment.task_id, [])
        index = {tc.completion_id: i for i, tc in enumerate(task_slots)}
        groups = [[index[cid] for cid in group if cid in index] for group in judgment.ranking]
        groups = [g for g in groups if g]
        if sorted(i for g in groups for i in g) != list(range(len(task_slots))):
            continue  # a judgment that does not cover its task's completions: never exported
        rater = _pseudonym(judgment)
        completions = [tc.completion.text for tc in task_slots]
        prompt = judgment.task.prompt
        versions = sorted(
            {tc.completion.policy_version.name for tc in task_slots if tc.completion.policy_version}
        )
        row = {
            "prompt": prompt.text,
            "completions": completions,
            "ranking": groups,
            "rater": rater,
            "task_id": judgment.task_id,
            "judgment_id": judgment.pk,
            "policy_versions": versions,
            "weight": (weights or {}).get(rater, 1.0),
        }
        rankings.append(row)
        if prompt.split in HELD_OUT_SPLITS:
            held_out.append(row)
        for better_index, better in enumerate(groups):
            for worse in groups[better_index + 1 :]:
                for i in better:
                    for j in worse:
                        pairs.append(
                            {
                                "prompt": prompt.text,
                                "chosen": completions[i],
                                "rejected": completions[j],
                            }
                        )
        judgment_rows.append(
            JudgmentRow(
                judgment_id=judgment.pk,
                task_id=judgment.task_id,
                rater=rater,
                slots=[tc.completion_id for tc in task_slots],
                ranking=judgment.ranking,
            )
        )
        key = str(judgment.guidelines_version)
        guideline_versions[key] = guideline_versions.get(key, 0) + 1
        raters[rater] = raters.get(rater, 0) + 1
    demonstrations = [
        {"prompt": d.prompt.text, "completion": d.text}
        for d in Demonstration.objects.filter(
            prompt__project=project, review_status__in=list(filters.review_statuses)
        )
        .select_related("prompt")
        .order_by("pk")
    ]
    return ExportRows(
        rankings=rankings,
        pairs=pairs,
        demonstrations=demonstrations,
        prompts=prompt_rows(project=project),
        judgment_rows=judgment_rows,
        held_out_rankings=held_out,
        guideline_versions=guideline_versions,
        raters=raters,
    )


def prompt_rows(*, project: Project, splits: Iterable[str] | None = None) -> list[dict]:
    prompts = Prompt.objects.filter(project=project).order_by("pk")
    if splits is not None:
        prompts = prompts.filter(split__in=list(splits))
    rows = []
    for prompt in prompts:
        row = {
            "id": prompt.pk,
            "prompt": prompt.text,
            "category": prompt.category,
            "split": prompt.split,
        }
        if prompt.reference:
            row["reference"] = prompt.reference
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_files(folder: Path, rows: ExportRows) -> dict[str, dict]:
    """Write the four dataset files; return {name: {"sha256", "rows", "bytes"}}."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "rankings.jsonl": rows.rankings,
        "pairs.jsonl": rows.pairs,
        "demonstrations.jsonl": rows.demonstrations,
        "prompts.jsonl": rows.prompts,
    }
    files = {}
    for name in FILES:
        path = folder / name
        count = write_jsonl(path, contents[name])
        files[name] = {"sha256": file_sha256(path), "rows": count, "bytes": path.stat().st_size}
    return files


def write_manifest(folder: Path, manifest: dict) -> str:
    """Write manifest.json; return its sha256 (the snapshot's fingerprint)."""
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return file_sha256(path)


def verify_folder(folder: Path, manifest: dict) -> list[str]:
    """Problems with a snapshot folder on disk: missing files or changed contents."""
    problems = []
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing from {folder}")
        elif file_sha256(path) != expected["sha256"]:
            problems.append(f"{name} in {folder} does not match its sha256 in the manifest")
    return problems
