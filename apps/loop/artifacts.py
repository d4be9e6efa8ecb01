"""Where a round's files live under ARTIFACT_ROOT, and whether a model folder is whole.

Every path the trainer is given is made here, by the server, from the round's folder; none
comes from a request (docs/design.md, "The file and config contracts").
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from apps.loop.errors import StageError
from apps.loop.models import TrainingRound, TrainingRun


def artifact_root() -> Path:
    root = Path(settings.ARTIFACT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_path(relative: str) -> Path:
    return artifact_root() / relative


def round_folder(training_round: TrainingRound) -> str:
    """The round's folder under ARTIFACT_ROOT, unique even when a database is recreated over
    the same ARTIFACT_ROOT (ids start again at 1): the trainer's `--reuse` compares settings,
    file paths included, not file contents, so a reused folder could hand back another
    round's samples."""
    stamp = training_round.created_at.strftime("%Y%m%d-%H%M%S-%f")
    return f"rounds/{training_round.project_id}-{training_round.number}-{stamp}"


def stage_dir(run: TrainingRun, *parts: str) -> Path:
    """The run's folder (or a folder inside it), created if need be."""
    path = artifact_path(run.out_dir).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def relative(path: Path) -> str:
    """`path` as the runs and snapshots record it: relative to ARTIFACT_ROOT."""
    return str(path.relative_to(artifact_root()))


def run_artifact(run: TrainingRun, name: str, what: str) -> Path:
    """The model folder a finished run recorded as `name`, checked whole."""
    recorded = run.artifacts.get(name)
    if not recorded:
        raise StageError(f"The {what} was never recorded by run {run.pk}.")
    path = artifact_path(recorded)
    require_model_dir(path, what)
    return path


def require_model_dir(path: Path, what: str) -> None:
    """A clear message for a missing or corrupt model folder, before a trainer trips on it."""
    if not path.is_dir():
        raise StageError(f"The {what} is missing: {path} does not exist.")
    config = path / "config.json"
    if not config.is_file():
        raise StageError(f"The {what} at {path} is incomplete: config.json is missing.")
    try:
        json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"The {what} at {path} is corrupt: config.json is not JSON.") from exc
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if not weights:
        raise StageError(f"The {what} at {path} has no weights (*.safetensors).")
    for file in weights:
        if file.suffix == ".safetensors" and not _safetensors_readable(file):
            raise StageError(f"The {what} at {path} is corrupt: {file.name} cannot be read.")


def _safetensors_readable(file: Path) -> bool:
    """The header of a safetensors file parses and its data is all there."""
    try:
        with file.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size <= 0 or size > 100_000_000:
                return False
            header = json.loads(handle.read(size))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return file.stat().st_size >= 8 + size + end
    except (OSError, ValueError, KeyError, TypeError):
        return False
