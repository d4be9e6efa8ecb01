"""Parse K-way ranking files (PrefLoop's own rankings.jsonl, and gold items) into records.

Pure Python like importing.py: the whole file's records, or `ImportFileError` naming the
line, so a caller never stores half a file.

Each line is PrefLoop's export format (docs/trainer.md, "rankings.jsonl"):

    {"prompt": "...", "completions": ["...", "...", ...],
     "ranking": [[1], [0, 2], [3]]}          best-first groups of completion indices

Other fields of an exported line ("rater", "task_id", "judgment_id", "policy_versions",
"weight") are ignored. A gold file has the same shape: the ranking is the known answer.
Rows with a repeated answer text cannot be a ranking of distinct answers and are skipped
(counted by reason), like importing.py's preference rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.collection.importing import (
    ImportFileError,
    PreferenceImport,
    ProgressCallback,
    _file_kind,
    _json_type,
    _jsonl_objects,
    _reporting,
)

MIN_COMPLETIONS, MAX_COMPLETIONS = 2, 9  # the project's K bounds (models.MIN_K, MAX_K)
RANKING_SKIP_REASONS = {"identical_completions": "two answers of the row are the same text"}


@dataclass(frozen=True)
class RankingRecord:
    prompt: str
    completions: tuple[str, ...]
    ranking: tuple[tuple[int, ...], ...]  # best-first groups of indices into `completions`
    line: int


def read_ranking_records(
    path: str | Path, *, progress: ProgressCallback | None = None
) -> PreferenceImport:
    """Read a rankings.jsonl-shaped file (`.gz` allowed); `records` are RankingRecords."""
    path = Path(path)
    if _file_kind(path) != "jsonl":
        raise ImportFileError(path, None, "ranking files must be JSONL (.jsonl, optionally .gz)")
    result = PreferenceImport()
    for line, row in _reporting(_jsonl_objects(path), progress):
        record = _ranking_record(path, line, row)
        texts = [text.strip() for text in record.completions]
        if len(set(texts)) != len(texts):
            result.skip("identical_completions", line)
            continue
        result.records.append(record)
    if result.rows_read == 0:
        raise ImportFileError(path, None, "the file contains no rows")
    return result


def _ranking_record(path: Path, line: int, row: dict[str, Any]) -> RankingRecord:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problem = "is missing" if prompt is None else f"is {_json_type(prompt)}"
        if isinstance(prompt, str):
            problem = "is empty"
        raise ImportFileError(path, line, f'"prompt" {problem}; expected the prompt text')
    completions = row.get("completions")
    if not isinstance(completions, list) or not all(
        isinstance(c, str) and c.strip() for c in completions
    ):
        raise ImportFileError(path, line, '"completions" must be a list of non-empty answer texts')
    if not MIN_COMPLETIONS <= len(completions) <= MAX_COMPLETIONS:
        raise ImportFileError(
            path,
            line,
            f'"completions" has {len(completions)} answers; a task ranks '
            f"{MIN_COMPLETIONS} to {MAX_COMPLETIONS}",
        )
    ranking = row.get("ranking")
    groups = _ranking_groups(ranking)
    flat = [index for group in groups or [] for index in group]
    if groups is None or sorted(flat) != list(range(len(completions))):
        raise ImportFileError(
            path,
            line,
            '"ranking" must be best-first groups of completion indices, each of 0 to '
            f"{len(completions) - 1} exactly once (e.g. [[1], [0, 2]])",
        )
    return RankingRecord(
        prompt=prompt.strip(),
        completions=tuple(c.strip() for c in completions),
        ranking=tuple(tuple(group) for group in groups),
        line=line,
    )


def _ranking_groups(ranking: Any) -> list[list[int]] | None:
    if not isinstance(ranking, list) or not ranking:
        return None
    groups = []
    for group in ranking:
        if not isinstance(group, list) or not group:
            return None
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in group):
            return None
        groups.append(group)
    return groups
