"""Round presets: every trainer setting in them is a field the trainer knows."""

from __future__ import annotations

import dataclasses

import pytest

from apps.core.errors import InvalidInput
from apps.loop.config import PRESETS, round_config
from trainer.evaluate import EvalConfig
from trainer.ppo import PPOConfig
from trainer.reward import RewardConfig
from trainer.sampling import SampleConfig
from trainer.sft import SFTConfig

TRAINER_CONFIGS = {
    "sample": SampleConfig,
    "sft": SFTConfig,
    "rm": RewardConfig,
    "ppo": PPOConfig,
    "eval": EvalConfig,
}


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


def test_sft_threshold_and_settings_merge_over_the_preset():
    config = round_config(
        preset="tiny", overrides={"sft_min_demonstrations": 4, "sft": {"lr": 1e-4}}
    )
    assert config["sft_min_demonstrations"] == 4
    # defaults < preset < overrides
    assert config["sft"] == {"max_length": 384, **PRESETS["tiny"]["sft"], "lr": 1e-4}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sft_min_demonstrations": 0}, "sft_min_demonstrations: a whole number ≥ 1."),
        ({"sft_min_demonstrations": True}, "sft_min_demonstrations: a whole number ≥ 1."),
        ({"sft_min_demonstrations": "8"}, "sft_min_demonstrations: a whole number ≥ 1."),
        ({"sft": 3}, "sft: expected an object."),
    ],
)
def test_bad_sft_settings_are_refused_with_the_field_named(overrides, message):
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides=overrides)
    assert message in refused.value.fields["config"]
