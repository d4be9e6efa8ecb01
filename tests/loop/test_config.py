"""Round settings: defaults < preset < overrides, checked against the contract at start."""

from __future__ import annotations

import dataclasses

import pytest

from apps.core.errors import InvalidInput
from apps.loop.config import DEFAULTS, PRESETS, STAGE_SECTIONS, RoundSettings, round_config
from trainer.contract import check_settings, round_fields


@pytest.mark.parametrize("preset", ["", *PRESETS])
def test_every_preset_is_within_the_contract(preset):
    config = round_config(preset=preset)
    for section, cls in STAGE_SECTIONS.items():
        # only settings a round may choose, within their bounds
        assert set(config[section]) <= round_fields(cls), (preset, section)
        check_settings(cls, config[section], path=section, from_round=True, partial=True)
    assert config["preset"] == preset


def test_the_round_defaults_are_round_settings_defaults():
    own = {k: v for k, v in DEFAULTS.items() if k not in STAGE_SECTIONS}
    assert own == dataclasses.asdict(RoundSettings())


def test_cpu_demo_runs_every_trainer_on_the_cores_others_leave_idle():
    # every core on an idle machine, one beside busy processes (trainer/runlog.py)
    config = round_config(preset="cpu-demo")
    assert all(config[section]["threads"] == 0 for section in STAGE_SECTIONS)
    assert all(config[section]["adapt_threads"] is True for section in STAGE_SECTIONS)


def test_cpu_demo_runs_bf16_only_where_the_cpu_computes_it_natively():
    # emulated bf16 is ~3x slower than fp32 (a CPU without AMX or AVX512-BF16)
    config = round_config(preset="cpu-demo")
    assert {config[stage]["precision"] for stage in ("sample", "rm", "ppo", "eval")} == {"auto"}


def test_sft_threshold_and_settings_merge_over_the_preset():
    config = round_config(
        preset="tiny", overrides={"sft_min_demonstrations": 4, "sft": {"lr": 1e-4}}
    )
    assert config["sft_min_demonstrations"] == 4
    # defaults < preset < overrides
    assert config["sft"] == {"max_length": 384, **PRESETS["tiny"]["sft"], "lr": 1e-4}


def test_an_integer_for_a_float_setting_is_kept_as_a_float():
    assert round_config(overrides={"ppo": {"kl_coef": 1}})["ppo"]["kl_coef"] == 1.0


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"sft_min_demonstrations": 0}, "config.sft_min_demonstrations", "at least 1, got 0"),
        ({"sft_min_demonstrations": True}, "config.sft_min_demonstrations", "a whole number"),
        ({"sft_min_demonstrations": "8"}, "config.sft_min_demonstrations", "a whole number"),
        ({"sft": 3}, "config.sft", "expected an object of settings"),
        ({"weighting": "votes"}, "config.weighting", "one of none, consensus, got 'votes'"),
        ({"require_review": 1}, "config.require_review", "expected true or false, got 1"),
        ({"sample_splits": []}, "config.sample_splits", "a non-empty list"),
        ({"sample_splits": ["train", "all"]}, "config.sample_splits", "distinct words of"),
        ({"ppo": {"mini_batch_size": 3}}, "config.ppo.mini_batch_size", "must divide batch_size"),
        ({"ppo": {"max_new_tokens": 4, "min_new_tokens": 4}}, "config.ppo.min_new_tokens", ""),
        ({"preset": "gpu"}, "config.preset", "unknown setting"),
    ],
)
def test_bad_settings_are_refused_with_the_field_path(overrides, path, message):
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides=overrides)
    assert message in refused.value.fields[path][0]
    assert path in refused.value.message


def test_every_problem_is_named_at_once():
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides={"seed": -1, "nonsense": 1, "ppo": {"lr": 2, "kl_coff": 0}})
    assert set(refused.value.fields) == {
        "config.seed",
        "config.nonsense",
        "config.ppo.lr",
        "config.ppo.kl_coff",
    }


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"selection": "clever"}, "config.selection", "one of off, random, uncertainty"),
        ({"selection": None}, "config.selection", "may not be null"),
        ({"samples_per_prompt": 17}, "config.samples_per_prompt", "at most 16"),
        ({"samples_per_prompt": -1}, "config.samples_per_prompt", "at least 0"),
        ({"samples_per_prompt": "8"}, "config.samples_per_prompt", "a whole number"),
        ({"sample": {"reward_model": "/etc"}}, "config.sample.reward_model", ""),
    ],
)
def test_bad_selection_settings_are_refused_with_the_field_path(overrides, path, message):
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides=overrides)
    assert message in refused.value.fields[path][0]


def test_selection_is_off_until_a_round_asks_for_it():
    assert round_config()["selection"] == "off"
    config = round_config(overrides={"selection": "uncertainty", "samples_per_prompt": 8})
    assert (config["selection"], config["samples_per_prompt"]) == ("uncertainty", 8)
