"""Training state without pickles (trainer/checkpoint.py): exact round trip, nothing to run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from trainer.checkpoint import (
    OPTIMIZER_TENSORS,
    TRAINER_STATE,
    has_training_state,
    load_training_state,
    save_training_state,
)

ROOT = Path(__file__).resolve().parents[2]


def _model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    return model, optimizer


def _steps(model, optimizer, n: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 4, generator=generator)
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_a_resumed_optimizer_continues_exactly_like_an_uninterrupted_one(tmp_path):
    straight, straight_opt = _model_and_optimizer()
    _steps(straight, straight_opt, 3, seed=1)
    _steps(straight, straight_opt, 3, seed=2)

    first, first_opt = _model_and_optimizer()
    _steps(first, first_opt, 3, seed=1)
    save_training_state(tmp_path, first_opt, step=3, kl_coef=0.05)
    resumed, resumed_opt = _model_and_optimizer()
    resumed.load_state_dict(first.state_dict())
    assert has_training_state(tmp_path)
    assert load_training_state(tmp_path, resumed_opt) == {"step": 3, "kl_coef": 0.05}
    assert resumed_opt.param_groups[0]["betas"] == (0.8, 0.95)
    _steps(resumed, resumed_opt, 3, seed=2)

    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_state_is_safetensors_and_json_only(tmp_path):
    model, optimizer = _model_and_optimizer()
    _steps(model, optimizer, 1, seed=0)
    save_training_state(tmp_path, optimizer, step=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [OPTIMIZER_TENSORS, TRAINER_STATE]
    assert json.loads((tmp_path / TRAINER_STATE).read_text())["step"] == 1
    # safetensors: an 8-byte header length, then a JSON header, then raw numbers
    raw = (tmp_path / OPTIMIZER_TENSORS).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert {"0.exp_avg", "0.exp_avg_sq", "0.step"} <= set(header)


def test_no_code_of_the_project_unpickles_anything():
    # torch.load without weights_only, pickle and friends run code from the file they read
    pattern = re.compile(r"torch\.load\(|import (c?pickle|dill|joblib)|pickle\.loads?\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("trainer", "apps", "annotation_site")
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line) and "pattern = re.compile" not in line
    ]
    assert offenders == []
