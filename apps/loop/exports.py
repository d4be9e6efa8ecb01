"""A snapshot's dataset files, written through the contract (trainer/contract.py).

Reads the database into the contract's row records (`Ranking`, `Pair`, `Demonstration`,
`Prompt`), writes them into a folder with the contract's writers, and hashes them into a
`Manifest`. The trainer reads the same files with the same records (trainer/data.py), so
what the exporter writes is what the trainer reads (tests/loop/test_exports.py checks the
round trip). The writes are deterministic (rows ordered by id, keys in the contract's order),
so the same judgments give byte-identical files. The formats: docs/design.md, "The file and
config contracts".
"""

from __future__ import annotations

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
from trainer import contract

#: every file a snapshot folder holds, the manifest last
FILES = (*contract.DATASET_FILES, contract.MANIFEST)


@dataclass(frozen=True)
class ExportFilters:
    """Which judgments a snapshot freezes; written into the manifest and the data card.

    Rounds: judgments of tasks of rounds ``min_round``..``max_round`` and, with
    ``outside_rounds``, of tasks no round made (the demo's seeded tasks, prompts sampled
    outside a round, imported preference data)."""

    review_statuses: tuple[str, ...] = (ReviewStatus.APPROVED,)
    max_round: int | None = None
    min_round: int | None = None
    include_gold: bool = False
    outside_rounds: bool = True

    def as_dict(self) -> dict:
        return {
            "task_kind": Task.Kind.RANKING,
            "review_statuses": list(self.review_statuses),
            "rounds": [self.min_round, self.max_round],
            "outside_rounds": self.outside_rounds,
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
    in_rounds = Q(task__round_number__isnull=False)
    if filters.max_round is not None:
        in_rounds &= Q(task__round_number__lte=filters.max_round)
    if filters.min_round is not None:
        in_rounds &= Q(task__round_number__gte=filters.min_round)
    if filters.outside_rounds:
        in_rounds |= Q(task__round_number__isnull=True)
    return (
        queryset.filter(in_rounds)
        .select_related("task__prompt", "rater__rater_profile")
        .order_by("pk")
    )


#: Where a snapshot's rankings came from (the data card counts each).
SOURCES = ("this_round", "earlier_rounds", "outside_rounds", "imported")


def judgment_source(judgment: Judgment, round_number: int | None) -> str:
    if judgment.source == Judgment.Source.IMPORTED:
        return "imported"
    task_round = judgment.task.round_number
    if task_round is None:
        return "outside_rounds"
    return "this_round" if task_round == round_number else "earlier_rounds"


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
    rankings: list[contract.Ranking]
    pairs: list[contract.Pair]
    demonstrations: list[contract.Demonstration]
    prompts: list[contract.Prompt]
    judgment_rows: list[JudgmentRow]
    held_out_rankings: list[contract.Ranking]
    guideline_versions: dict[str, int]
    raters: dict[str, int]
    sources: dict[str, int]
    """Rankings per source (``SOURCES``)."""

    def files(self) -> dict[str, list]:
        return {
            contract.RANKINGS: self.rankings,
            contract.PAIRS: self.pairs,
            contract.DEMONSTRATIONS: self.demonstrations,
            contract.PROMPTS: self.prompts,
        }


def collect_rows(
    *,
    project: Project,
    filters: ExportFilters,
    weights: dict[str, float] | None = None,
    round_number: int | None = None,
) -> ExportRows:
    """Everything a snapshot holds, as the contract's records in file order; the rankings
    are counted by source relative to round ``round_number``."""
    judgments = list(judgments_for_export(project=project, filters=filters))
    sources = dict.fromkeys(SOURCES, 0)
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
        prompt = judgment.task.prompt
        versions = sorted(
            {tc.completion.policy_version.name for tc in task_slots if tc.completion.policy_version}
        )
        ranking = contract.Ranking(
            prompt=prompt.text,
            completions=[tc.completion.text for tc in task_slots],
            ranking=groups,
            weight=(weights or {}).get(rater, 1.0),
            rater=rater,
            task_id=judgment.task_id,
            judgment_id=judgment.pk,
            policy_versions=versions,
        )
        rankings.append(ranking)
        if prompt.split in contract.HELD_OUT_SPLITS:
            held_out.append(ranking)
        pairs.extend(ranking.pairs())
        judgment_rows.append(
            JudgmentRow(
                judgment_id=judgment.pk,
                task_id=judgment.task_id,
                rater=rater,
                slots=[tc.completion_id for tc in task_slots],
                ranking=judgment.ranking,
            )
        )
        sources[judgment_source(judgment, round_number)] += 1
        key = str(judgment.guidelines_version)
        guideline_versions[key] = guideline_versions.get(key, 0) + 1
        raters[rater] = raters.get(rater, 0) + 1
    demonstrations = [
        contract.Demonstration(prompt=d.prompt.text, completion=d.text)
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
        sources=sources,
    )


def prompt_row(prompt: Prompt) -> contract.Prompt:
    return contract.Prompt(
        id=str(prompt.pk),
        prompt=prompt.text,
        category=prompt.category,
        split=prompt.split,
        reference=prompt.reference or None,
    )


def prompt_rows(*, project: Project, splits: Iterable[str] | None = None) -> list[contract.Prompt]:
    prompts = Prompt.objects.filter(project=project).order_by("pk")
    if splits is not None:
        prompts = prompts.filter(split__in=list(splits))
    return [prompt_row(prompt) for prompt in prompts]


def write_files(folder: Path, rows: ExportRows) -> dict[str, contract.FileEntry]:
    """Write the four dataset files; return the manifest's entry of each."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, records in rows.files().items():
        count = contract.write_rows(folder / name, records)
        entries[name] = contract.file_entry(folder / name, count)
    return entries
