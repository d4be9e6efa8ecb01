"""The trainer's readers: the snapshot files through ``trainer.contract``, plus the inputs that
are no part of the web side's contract (ptx text, Anthropic HH-RLHF transcripts).

Every reader validates line by line and raises ``DataError`` naming the file, the line and
what was expected, so a malformed file fails before any training starts. The records and the
readers of ``rankings.jsonl``, ``demonstrations.jsonl`` and ``prompts.jsonl`` are the
contract's own (docs/design.md, "The file and config contracts"); they are imported from here
by the training modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.contract import (
    DataError,
    Demonstration,
    Prompt,
    Ranking,
    iter_jsonl,
    read_demonstrations,
    read_prompts,
    read_rankings,
    require_str,
)

__all__ = [
    "DataError",
    "Demonstration",
    "Prompt",
    "Ranking",
    "iter_jsonl",
    "read_demonstrations",
    "read_prompts",
    "read_rankings",
    "read_texts",
    "read_hh_rlhf",
    "split_hh_rlhf",
    "write_jsonl",
]


def read_texts(path: str | Path) -> list[str]:
    """Pretraining/ptx text: JSONL with a "text" field, or prompt-completion rows joined."""
    texts = []
    for n, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        if "text" in obj:
            texts.append(require_str(obj, "text", where))
        elif "prompt" in obj and "completion" in obj:
            prompt = require_str(obj, "prompt", where)
            texts.append(prompt + require_str(obj, "completion", where))
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
            require_str(obj, "chosen", where), require_str(obj, "rejected", where)
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
