"""Parse prompt and preference files into plain records, before anything touches the database.

This module is pure Python on purpose: the management commands and services that store the
records import it, never the other way round. Every function either returns the whole file's
records or raises `ImportFileError` naming the file and line, so a caller never stores half a
file.

Prompt files (`read_prompt_records`) are JSONL or CSV, optionally gzip-compressed
(`prompts.jsonl.gz`). Each record has a `prompt` (or `text`), and optionally `category`,
`split`, `id` and `reference`.

Preference files (`read_preference_records`) are JSONL, in one of two shapes:

- `"hh-rlhf"`: Anthropic HH-RLHF, `{"chosen": transcript, "rejected": transcript}`, where both
  transcripts are the same `\\n\\nHuman: ... \\n\\nAssistant: ...` conversation up to a final
  Assistant turn that differs.
- `"pairs"`: TRL's explicit-prompt preference format, `{"prompt", "chosen", "rejected"}`.

Rows that are well-formed but unusable as a comparison (for instance two identical answers)
are skipped and counted by reason rather than failing the import; see `SKIP_REASONS`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainer.data import HH_RLHF_SKIP_REASONS, split_hh_rlhf

PROMPT_CATEGORIES: tuple[str, ...] = (
    "generation",
    "open_qa",
    "brainstorming",
    "chat",
    "rewrite",
    "summarization",
    "classification",
    "closed_qa",
    "extraction",
    "other",
)
DEFAULT_CATEGORY = "other"

PROMPT_SPLITS: tuple[str, ...] = ("train", "valid", "test")
DEFAULT_SPLIT = "train"

PreferenceFormat = Literal["hh-rlhf", "pairs"]
PREFERENCE_FORMATS: tuple[str, ...] = ("hh-rlhf", "pairs")

SKIP_REASONS: dict[str, str] = HH_RLHF_SKIP_REASONS  # the pairs format skips for the same reasons
# How many line numbers to keep per skip reason: enough to look a few rows up by hand.
SKIPPED_LINES_KEPT = 5

# Spellings seen in the wild that do not reduce to a category by case/space/underscore alone.
# InstructGPT's Table 1 itself says "Extract".
_CATEGORY_ALIASES: dict[str, str] = {
    "extract": "extraction",
    "summarisation": "summarization",
}
_SPLIT_ALIASES: dict[str, str] = {
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_CSV_SUFFIXES = (".csv",)


class ImportFileError(ValueError):
    """A file cannot be imported as it stands: the user has to fix it.

    `line` is the 1-based line number where the problem is, or None when it concerns the
    whole file (missing, empty, unreadable, wrong extension).
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        # The constructor's own arguments, so the error survives pickling (Celery, workers).
        super().__init__(path, line, message)

    def __str__(self) -> str:
        where = self.path.name if self.line is None else f"{self.path.name} line {self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class PromptRecord:
    """One prompt to import, validated and normalised."""

    text: str
    category: str = DEFAULT_CATEGORY
    split: str = DEFAULT_SPLIT
    external_id: str | None = None
    reference: str | None = None
    line: int = 0


@dataclass(frozen=True)
class PreferenceRecord:
    """One strict comparison: `chosen` was preferred over `rejected` as answers to `prompt`.

    For HH-RLHF the prompt is the whole shared transcript, ending in the final
    `\\n\\nAssistant:` marker, so the conversation stays readable as one text.
    """

    prompt: str
    chosen: str
    rejected: str
    line: int


@dataclass
class PreferenceImport:
    """The usable comparisons of a preference file, and what was skipped and why."""

    records: list[PreferenceRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        """Every non-blank row of the file: kept plus skipped."""
        return len(self.records) + self.skipped.total()

    def skip(self, reason: str, line: int) -> None:
        """Count a skipped row, remembering the first few line numbers per reason."""
        self.skipped[reason] += 1
        lines = self.skipped_lines.setdefault(reason, [])
        if len(lines) < SKIPPED_LINES_KEPT:
            lines.append(line)


ProgressCallback = Callable[[int], None]
PROGRESS_EVERY = 2000  # lines between calls of a reader's `progress`


def read_prompt_records(
    path: str | Path, *, progress: ProgressCallback | None = None
) -> list[PromptRecord]:
    """Read a JSONL or CSV prompt file (chosen by extension, `.gz` allowed) into records.

    Every record needs a non-empty `prompt` (or `text`). `category` defaults to "other" and
    is matched ignoring case, spaces, hyphens and underscores ("Open QA" is `open_qa`);
    `split` defaults to "train" ("validation" is `valid`); `id` (a string or an integer)
    and `reference` are optional. Blank lines are ignored; other fields are ignored.

    Raises ImportFileError on the first problem, with its line number; nothing partial is
    returned. Ids must be unique within the file. `progress(line)` is called every
    PROGRESS_EVERY lines read.
    """
    path = Path(path)
    kind = _file_kind(path)
    rows = _jsonl_objects(path) if kind == "jsonl" else _csv_rows(path)
    rows = _reporting(rows, progress)
    records: list[PromptRecord] = []
    first_line_of_id: dict[str, int] = {}
    for line, row in rows:
        record = _prompt_record(path, line, row)
        if record.external_id is not None:
            if record.external_id in first_line_of_id:
                raise ImportFileError(
                    path,
                    line,
                    f'duplicate id "{record.external_id}" '
                    f"(first used on line {first_line_of_id[record.external_id]})",
                )
            first_line_of_id[record.external_id] = line
        records.append(record)
    if not records:
        raise ImportFileError(path, None, "the file contains no prompts")
    return records


def read_preference_records(
    path: str | Path, fmt: PreferenceFormat, *, progress: ProgressCallback | None = None
) -> PreferenceImport:
    """Read a JSONL preference file (`.gz` allowed) in HH-RLHF or TRL pairs format.

    Rows that cannot be a comparison are skipped and counted (see `SKIP_REASONS`): checked in
    the order no_assistant_turn (HH-RLHF only), diverging_context (HH-RLHF only),
    empty_completion, identical_completions. Answers are compared after stripping
    surrounding whitespace.

    Raises ImportFileError for malformed rows (invalid JSON, a missing or non-string field,
    an empty pairs prompt) and for a file with no rows; ValueError for an unknown `fmt`.
    """
    if fmt not in PREFERENCE_FORMATS:
        raise ValueError(f"unknown preference format {fmt!r}; expected one of {PREFERENCE_FORMATS}")
    path = Path(path)
    if _file_kind(path) != "jsonl":
        raise ImportFileError(path, None, "preference files must be JSONL (.jsonl, optionally .gz)")
    fields = ("chosen", "rejected") if fmt == "hh-rlhf" else ("prompt", "chosen", "rejected")
    result = PreferenceImport()
    for line, row in _reporting(_jsonl_objects(path), progress):
        values = {}
        for name in fields:
            value = row.get(name)
            if not isinstance(value, str):
                raise ImportFileError(path, line, _expected_fields_message(fields, name, value))
            values[name] = value
        if fmt == "pairs" and not values["prompt"].strip():
            raise ImportFileError(path, line, '"prompt" is empty')
        if fmt == "hh-rlhf":
            outcome = split_hh_rlhf_pair(values["chosen"], values["rejected"])
        else:
            outcome = _pair_from_parts(values["prompt"], values["chosen"], values["rejected"])
        if isinstance(outcome, str):
            result.skip(outcome, line)
        else:
            prompt, chosen, rejected = outcome
            result.records.append(PreferenceRecord(prompt, chosen, rejected, line))
    if result.rows_read == 0:
        raise ImportFileError(path, None, "the file contains no rows")
    return result


def split_hh_rlhf_pair(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """(shared prompt, chosen answer, rejected answer) of two HH-RLHF transcripts, stripped:
    the prompt is `"Human: ...\\n\\nAssistant:"`. Returns a skip reason (a key of
    SKIP_REASONS) instead when the pair cannot be a comparison; the splitting itself is
    `trainer.data.split_hh_rlhf`, which the trainer's reader uses too."""
    split = split_hh_rlhf(chosen, rejected)
    if isinstance(split, str):
        return split
    return _pair_from_parts(*split)


def _pair_from_parts(prompt: str, chosen: str, rejected: str) -> tuple[str, str, str] | str:
    chosen, rejected = chosen.strip(), rejected.strip()
    if not chosen or not rejected:
        return "empty_completion"
    if chosen == rejected:
        return "identical_completions"
    return prompt.strip(), chosen, rejected


def _expected_fields_message(fields: tuple[str, ...], name: str, value: Any) -> str:
    wanted = ", ".join(f'"{f}"' for f in fields)
    problem = "is missing" if value is None else f"is {_json_type(value)}"
    return f'expected a JSON object with string fields {wanted}; "{name}" {problem}'


def _prompt_record(path: Path, line: int, row: dict[str, Any]) -> PromptRecord:
    text_field = "prompt" if row.get("prompt") is not None else "text"
    text = row.get(text_field)
    if not isinstance(text, str):
        if text is None:
            message = 'expected a JSON object with a "prompt" string'
        else:
            message = f'"{text_field}" must be a string, not {_json_type(text)}'
        raise ImportFileError(path, line, message)
    text = text.strip()
    if not text:
        raise ImportFileError(path, line, f'"{text_field}" is empty')
    return PromptRecord(
        text=text,
        category=_choice(
            path, line, row, "category", PROMPT_CATEGORIES, DEFAULT_CATEGORY, _CATEGORY_ALIASES
        ),
        split=_choice(path, line, row, "split", PROMPT_SPLITS, DEFAULT_SPLIT, _SPLIT_ALIASES),
        external_id=_external_id(path, line, row.get("id")),
        reference=_optional_text(path, line, row, "reference"),
        line=line,
    )


def normalize_category(value: str) -> str | None:
    """The canonical category for a spelling like "Open QA" or "closed-qa", or None."""
    return _normalize_choice(value, PROMPT_CATEGORIES, _CATEGORY_ALIASES)


def _normalize_choice(value: str, choices: tuple[str, ...], aliases: dict[str, str]) -> str | None:
    key = "".join(value.lower().replace("-", " ").replace("_", " ").split())
    by_key = {choice.replace("_", ""): choice for choice in choices}
    return by_key.get(key) or aliases.get(key)


def _choice(
    path: Path,
    line: int,
    row: dict[str, Any],
    name: str,
    choices: tuple[str, ...],
    default: str,
    aliases: dict[str, str],
) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if not isinstance(value, str):
        raise ImportFileError(path, line, f'"{name}" must be a string, not {_json_type(value)}')
    normalized = _normalize_choice(value, choices, aliases)
    if normalized is None:
        raise ImportFileError(
            path, line, f'unknown {name} "{value}"; expected one of {", ".join(choices)}'
        )
    return normalized


def _external_id(path: Path, line: int, value: Any) -> str | None:
    if value is None:
        return None
    # bool is an int subclass, but `true` is no id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ImportFileError(
            path, line, f'"id" must be a string or an integer, not {_json_type(value)}'
        )
    return value.strip() or None


def _optional_text(path: Path, line: int, row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ImportFileError(path, line, f'"{name}" must be a string, not {_json_type(value)}')
    return value.strip() or None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a string"


def _file_kind(path: Path) -> Literal["jsonl", "csv"]:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise ImportFileError(
        path, None, "unsupported file type; expected .jsonl or .csv (optionally .gz)"
    )


def _read_text(path: Path) -> str:
    """The whole file as text (gunzipped when it ends in .gz), or ImportFileError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(path, None, "file not found") from None
    except OSError as error:
        raise ImportFileError(path, None, f"cannot read the file ({error.strerror})") from None
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise ImportFileError(path, None, "not a valid gzip file") from None
    try:
        # utf-8-sig: spreadsheet programs like to start CSV files with a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ImportFileError(path, line, "the file is not valid UTF-8 text") from None


def _reporting(rows: Iterator, progress: ProgressCallback | None) -> Iterator:
    """`rows` ((line, row) pairs), calling `progress(line)` every PROGRESS_EVERY lines."""
    if progress is None:
        yield from rows
        return
    next_report = PROGRESS_EVERY
    for line, row in rows:
        if line >= next_report:
            progress(line)
            next_report = line + PROGRESS_EVERY
        yield line, row


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ImportFileError for anything else."""
    text = _read_text(path)
    # split("\n") rather than splitlines(): JSON strings may hold U+2028 and other
    # characters that splitlines() would treat as line breaks.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ImportFileError(path, line_number, f"invalid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ImportFileError(
                path, line_number, f"expected a JSON object, found {_json_type(row)}"
            )
        yield line_number, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line where the record starts, {column: cell}) for each non-blank CSV record.

    Column names are matched ignoring case and surrounding spaces. The file needs a header
    with a `prompt` or `text` column.
    """
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    header: list[str] | None = None
    previous_end = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ImportFileError(path, previous_end + 1, f"malformed CSV ({error})") from None
        start, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            if "prompt" not in header and "text" not in header:
                raise ImportFileError(
                    path, start, 'the CSV header has no "prompt" (or "text") column'
                )
            continue
        if len(cells) > len(header):
            raise ImportFileError(
                path, start, f"expected {len(header)} columns, found {len(cells)}"
            )
        # A short row leaves its last columns empty; empty optional cells mean "not given".
        cells += [""] * (len(header) - len(cells))
        yield start, dict(zip(header, cells, strict=True))
