"""Round presets: every trainer setting in them is a field the trainer knows."""

from __future__ import annotations

import dataclasses

import pytest

from apps.loop.config import PRESETS, round_config
from trainer.evaluate import EvalConfig
from trainer.ppo import PPOConfig
from trainer.reward import RewardConfig
from trainer.sampling import SampleConfig

TRAINER_CONFIGS = {"sample": SampleConfig, "rm": RewardConfig, "ppo": PPOConfig, "eval": EvalConfig}


@pytest.mark.parametrize("preset", ["", *PRESETS])
def test_preset_sections_are_trainer_fields(preset):
    config = round_config(preset=preset)
    for section, cls in TRAINER_CONFIGS.items():
        known = {f.name for f in dataclasses.fields(cls)}
        assert set(config[section]) <= known, (preset, section, set(config[section]) - known)


def test_cpu_demo_runs_every_trainer_on_one_thread():
    # the web server, the raters and the rest of the machine keep the other core
    config = round_config(preset="cpu-demo")
    assert all(config[section]["threads"] == 1 for section in TRAINER_CONFIGS)
