"""Checks of a rater's answer against what they were shown. Pure: no database access.

Each function returns the cleaned value or adds messages to `errors[field]`; the caller
raises one InvalidInput with every field's messages, so the client can fix all at once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from apps.collection.models import LIKERT_MAX, LIKERT_MIN
from apps.core.ids import parse_id

Errors = dict[str, list[str]]


def _as_completion_id(value: Any) -> int | None:
    """A completion id given as a JSON integer or a string of ASCII digits (dictionary keys
    are strings); None for anything else, "²" and 5,000-digit numbers included."""
    return parse_id(value)


def clean_ranking(ranking: Any, shown: list[int], errors: Errors) -> list[list[int]]:
    """Best-first groups; every shown completion exactly once and nothing else."""
    field = "ranking"
    if not isinstance(ranking, list) or not ranking:
        errors.setdefault(field, []).append(
            "Expected a non-empty list of groups, e.g. [[12], [15, 17], [14]]."
        )
        return []
    groups: list[list[int]] = []
    for index, group in enumerate(ranking):
        if not isinstance(group, list) or not group:
            errors.setdefault(field, []).append(f"Group {index} must be a non-empty list of ids.")
            continue
        ids = [_as_completion_id(item) for item in group]
        if any(item is None for item in ids):
            errors.setdefault(field, []).append(f"Group {index} holds a value that is not an id.")
            continue
        groups.append(ids)  # type: ignore[arg-type]
    if field in errors:
        return []
    seen = Counter(cid for group in groups for cid in group)
    repeated = sorted(cid for cid, n in seen.items() if n > 1)
    unknown = sorted(set(seen) - set(shown))
    missing = sorted(set(shown) - set(seen))
    if repeated:
        errors.setdefault(field, []).append(f"Completions ranked more than once: {repeated}.")
    if unknown:
        errors.setdefault(field, []).append(f"Completions not shown in this task: {unknown}.")
    if missing:
        errors.setdefault(field, []).append(f"Completions missing from the ranking: {missing}.")
    return groups


def _per_completion_map(value: Any, shown: list[int], field: str, errors: Errors) -> dict[int, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        errors.setdefault(field, []).append("Expected an object keyed by completion id.")
        return {}
    cleaned: dict[int, Any] = {}
    for key, item in value.items():
        cid = _as_completion_id(key)
        if cid is None or cid not in shown:
            errors.setdefault(field, []).append(f"{key!r} is not a completion of this task.")
            continue
        cleaned[cid] = item
    return cleaned


def clean_likert(value: Any, shown: list[int], enabled: bool, errors: Errors) -> dict[str, int]:
    field = "likert"
    scores = _per_completion_map(value, shown, field, errors)
    if scores and not enabled:
        errors.setdefault(field, []).append("This project does not collect Likert scores.")
        return {}
    cleaned: dict[str, int] = {}
    for cid, score in scores.items():
        if isinstance(score, bool) or not isinstance(score, int):
            errors.setdefault(field, []).append(f"Score for {cid} must be a whole number.")
        elif not LIKERT_MIN <= score <= LIKERT_MAX:
            errors.setdefault(field, []).append(
                f"Score for {cid} must be between {LIKERT_MIN} and {LIKERT_MAX}, not {score}."
            )
        else:
            cleaned[str(cid)] = score
    return cleaned


def clean_flags(
    value: Any, shown: list[int], allowed: list[str], errors: Errors
) -> dict[str, list[str]]:
    field = "flags"
    flags = _per_completion_map(value, shown, field, errors)
    cleaned: dict[str, list[str]] = {}
    for cid, names in flags.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            errors.setdefault(field, []).append(f"Flags for {cid} must be a list of flag names.")
            continue
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            errors.setdefault(field, []).append(
                f"Unknown flags for {cid}: {unknown}; this project allows {allowed}."
            )
            continue
        if len(set(names)) != len(names):
            errors.setdefault(field, []).append(f"Flags for {cid} repeat a flag.")
            continue
        if names:
            cleaned[str(cid)] = names
    return cleaned


def clean_rationale(value: Any, max_length: int, errors: Errors) -> str:
    if value in (None,):
        return ""
    if not isinstance(value, str):
        errors.setdefault("rationale", []).append("Expected text.")
        return ""
    if len(value) > max_length:
        errors.setdefault("rationale", []).append(
            f"At most {max_length} characters; this one has {len(value)}."
        )
    return value.strip()
