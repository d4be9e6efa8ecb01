"""Readers for the dataset files the web side exports (see DESIGN.md, "Dataset formats").

Every reader validates line by line and raises ``DataError`` naming the file, the line and
what was expected, so a malformed export fails before any training starts.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A user-fixable problem with an input file or a setting."""


@dataclass(frozen=True)
class Ranking:
    prompt: str
    completions: list[str]
    groups: list[list[int]]
    """Best-first groups of indices into ``completions``; ties share a group."""
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ranks(self) -> list[int]:
        """Group index (0 = best) of each completion."""
        ranks = [0] * len(self.completions)
        for group_index, group in enumerate(self.groups):
            for i in group:
                ranks[i] = group_index
        return ranks

    @property
    def k(self) -> int:
        return len(self.completions)

    def strict_pairs(self) -> list[tuple[int, int]]:
        """(winner, loser) index pairs; tied completions give no pair."""
        ranks = self.ranks
        return [(i, j) for i in range(self.k) for j in range(self.k) if ranks[i] < ranks[j]]


@dataclass(frozen=True)
class Demonstration:
    prompt: str
    completion: str


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    category: str = "other"
    split: str = "train"
    reference: str | None = None
    """An optional reference answer (for ROUGE/BLEU/F1 in ``eval``)."""


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{line_number}: invalid JSON ({exc.msg}); expected one JSON object "
                    "per line"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_number}: expected a JSON object, got {obj!r:.60}")
            yield line_number, obj


def _require_str(obj: dict, key: str, where: str, allow_empty: bool = False) -> str:
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(f"{where}: field {key!r} must be a non-empty string, got {value!r:.60}")
    return value


def parse_ranking(obj: dict[str, Any], where: str) -> Ranking:
    prompt = _require_str(obj, "prompt", where)
    completions = obj.get("completions")
    if not isinstance(completions, list) or len(completions) < 2:
        raise DataError(f"{where}: 'completions' must be a list of at least 2 strings")
    if not all(isinstance(c, str) for c in completions):
        raise DataError(f"{where}: every item of 'completions' must be a string")
    groups = obj.get("ranking")
    if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
        raise DataError(
            f"{where}: 'ranking' must be a list of non-empty lists of indices (best-first groups)"
        )
    flat = [i for g in groups for i in g]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in flat):
        raise DataError(f"{where}: 'ranking' indices must be integers")
    if sorted(flat) != list(range(len(completions))):
        raise DataError(
            f"{where}: 'ranking' must name every completion index 0..{len(completions) - 1} "
            f"exactly once, got {groups}"
        )
    weight = obj.get("weight", 1.0)
    if weight is None:
        weight = 1.0
    if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
        raise DataError(f"{where}: 'weight' must be a non-negative number, got {weight!r}")
    meta = {k: obj[k] for k in ("rater", "task_id", "judgment_id", "policy_versions") if k in obj}
    return Ranking(prompt, list(completions), [list(g) for g in groups], float(weight), meta)


def read_rankings(path: str | Path) -> list[Ranking]:
    """rankings.jsonl: ``{"prompt", "completions": [str], "ranking": [[i, ...], ...], ...}``."""
    rankings = [parse_ranking(obj, f"{path}:{n}") for n, obj in iter_jsonl(path)]
    if not rankings:
        raise DataError(f"{path}: no rankings found (expected one JSON object per line)")
    return rankings


def read_demonstrations(path: str | Path) -> list[Demonstration]:
    """demonstrations.jsonl: ``{"prompt", "completion"}`` per line."""
    rows = []
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        rows.append(
            Demonstration(
                _require_str(obj, "prompt", where), _require_str(obj, "completion", where)
            )
        )
    if not rows:
        raise DataError(f"{path}: no demonstrations found")
    return rows


def read_prompts(path: str | Path, split: str | None = None) -> list[Prompt]:
    """prompts.jsonl: ``{"id", "prompt", "category", "split"}`` (+ optional "reference")."""
    rows = []
    seen: set[str] = set()
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        if "id" not in obj or not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
            raise DataError(f"{where}: missing field 'id' (a string or integer)")
        prompt_id = str(obj["id"])
        if prompt_id in seen:
            raise DataError(f"{where}: duplicate prompt id {prompt_id!r}")
        seen.add(prompt_id)
        reference = obj.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise DataError(f"{where}: 'reference' must be a string when given")
        category = obj.get("category") or "other"
        row_split = obj.get("split") or "train"
        if not isinstance(category, str) or not isinstance(row_split, str):
            raise DataError(f"{where}: 'category' and 'split' must be strings")
        rows.append(
            Prompt(prompt_id, _require_str(obj, "prompt", where), category, row_split, reference)
        )
    if split is not None:
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise DataError(f"{path}: no prompts found" + (f" with split {split!r}" if split else ""))
    return rows


def read_texts(path: str | Path) -> list[str]:
    """Pretraining/ptx text: JSONL with a "text" field, or prompt-completion rows joined."""
    texts = []
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        if "text" in obj:
            texts.append(_require_str(obj, "text", where))
        elif "prompt" in obj and "completion" in obj:
            prompt = _require_str(obj, "prompt", where)
            texts.append(prompt + _require_str(obj, "completion", where))
        else:
            raise DataError(f"{where}: expected a 'text' field or 'prompt' and 'completion'")
    if not texts:
        raise DataError(f"{path}: no texts found")
    return texts


HUMAN_MARKER = "\n\nHuman:"
ASSISTANT_MARKER = "\n\nAssistant:"
#: Why an HH-RLHF row is no usable comparison (the keys `split_hh_rlhf` returns).
HH_RLHF_SKIP_REASONS: dict[str, str] = {
    "no_assistant_turn": "a transcript does not end in an Assistant turn",
    "diverging_context": "the two transcripts differ before the final Assistant turn",
    "empty_completion": "a final answer is empty",
    "identical_completions": "the two final answers are the same text",
}


def split_hh_rlhf(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """Split two Anthropic HH-RLHF transcripts into (shared dialogue, chosen answer, rejected
    answer), or return why the pair is no comparison (a key of ``HH_RLHF_SKIP_REASONS``).

    The dialogue runs through the last ``"\\n\\nAssistant:"`` marker; the answers are the
    final Assistant turns as written (``dialogue + answer`` is the transcript again). The one
    splitter of the project: the web importer (``apps/collection/importing.py``) strips the
    three parts before storing them, the trainer's ``read_hh_rlhf`` keeps them as they are.
    """
    chosen_split = _final_assistant_turn(chosen)
    rejected_split = _final_assistant_turn(rejected)
    if chosen_split is None or rejected_split is None:
        return "no_assistant_turn"
    (context, chosen_answer), (rejected_context, rejected_answer) = chosen_split, rejected_split
    if context != rejected_context:
        return "diverging_context"
    if not chosen_answer.strip() or not rejected_answer.strip():
        return "empty_completion"
    if chosen_answer.strip() == rejected_answer.strip():
        return "identical_completions"
    return context, chosen_answer, rejected_answer


def _final_assistant_turn(transcript: str) -> tuple[str, str] | None:
    """(dialogue through the last Assistant marker, final answer), or None if there is none."""
    marker_at = transcript.rfind(ASSISTANT_MARKER)
    if marker_at < 0:
        return None
    end_of_context = marker_at + len(ASSISTANT_MARKER)
    answer = transcript[end_of_context:]
    if HUMAN_MARKER in answer:  # the transcript ends on a Human turn: no final answer
        return None
    return transcript[:end_of_context], answer


def read_hh_rlhf(path: str | Path, limit: int | None = None) -> tuple[list[Ranking], int]:
    """Anthropic HH-RLHF ``{"chosen", "rejected"}`` lines -> (2-way rankings, rows skipped)."""
    rankings, skipped = [], 0
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        split = split_hh_rlhf(
            _require_str(obj, "chosen", where), _require_str(obj, "rejected", where)
        )
        if isinstance(split, str):
            skipped += 1
            continue
        prompt, chosen, rejected = split
        rankings.append(Ranking(prompt, [chosen, rejected], [[0], [1]]))
        if limit is not None and len(rankings) >= limit:
            break
    return rankings, skipped


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
