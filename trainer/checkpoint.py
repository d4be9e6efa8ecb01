"""Training state that holds no pickled code: tensors in safetensors, the rest in JSON.

A checkpoint lives on a shared artifact store, so whoever can write there must not be able to
run code on the worker that resumes from it: ``torch.load`` of a pickle can, safetensors and
JSON cannot. ``save_training_state`` writes an optimizer's state (every tensor, by name, in
``optimizer.safetensors``; its param groups and scalars in ``trainer_state.json``) plus any
JSON-able extras (step, KL coefficient); ``load_training_state`` reads them back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainer.contract import DataError

OPTIMIZER_TENSORS = "optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"
#: param group keys torch keeps as tuples (JSON gives lists back)
_TUPLE_KEYS = ("betas",)


def save_training_state(directory: Path, optimizer: torch.optim.Optimizer, **extra: Any) -> None:
    """Write the optimizer's state and ``extra`` into ``directory`` (created if need be)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        entry: dict[str, Any] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                name = f"{param_id}.{key}"
                tensors[name] = value.detach().cpu().contiguous()
                entry[key] = {"tensor": name}
            else:
                entry[key] = value
        per_param[str(param_id)] = entry
    save_file(tensors, str(directory / OPTIMIZER_TENSORS))
    payload = {
        "optimizer": {"state": per_param, "param_groups": state["param_groups"]},
        **extra,
    }
    (directory / TRAINER_STATE).write_text(json.dumps(payload, indent=2))


def has_training_state(directory: Path) -> bool:
    return (Path(directory) / TRAINER_STATE).is_file()


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer from ``directory``; return the extras saved with it."""
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        payload = json.loads((directory / TRAINER_STATE).read_text())
        tensors = load_file(str(directory / OPTIMIZER_TENSORS))
    except (OSError, ValueError) as exc:
        raise DataError(f"{directory}: the training state cannot be read ({exc})") from None
    saved = payload.pop("optimizer")
    state = {}
    for param_id, entry in saved["state"].items():
        state[int(param_id)] = {
            key: tensors[value["tensor"]] if isinstance(value, dict) else value
            for key, value in entry.items()
        }
    groups = [
        {key: tuple(value) if key in _TUPLE_KEYS else value for key, value in group.items()}
        for group in saved["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return payload
