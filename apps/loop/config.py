"""A round's settings: defaults, presets, and how a researcher's overrides merge in.

`sample`, `sft`, `rm`, `ppo` and `eval` hold fields of the trainer's own run configs
(trainer/sampling.py SampleConfig, sft.py SFTConfig, reward.py RewardConfig, ppo.py
PPOConfig, evaluate.py EvalConfig); they go to `python -m trainer ... --config run.json`
as they are, so an unknown field fails the stage with the trainer's message naming it.
"""

from __future__ import annotations

import copy
from typing import Any

from apps.core.errors import InvalidInput

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    # sampling: K completions (the project's K) for this many prompts of these splits
    "prompts_per_round": 32,
    "sample_splits": ["train", "valid"],
    # collecting: wait for this many judgments; only approved ones unless review is off
    "target_judgments": 64,
    "require_review": True,
    # exporting
    "include_previous_rounds": True,
    "weighting": "none",  # "consensus": reliability-weighted rankings (quality module)
    # SFT: fine-tune the round's policy on the snapshot's demonstrations when it holds at
    # least this many (fewer: the stage is skipped and RM and PPO start from the policy)
    "sft_min_demonstrations": 16,
    # evaluating
    "ab_tasks": 16,
    "ab_overlap": 1,
    "eval_hidden_rule": False,  # also judge win rates with apps.loop.scoring (demo raters' rule)
    "sample": {"max_new_tokens": 48, "temperature": 1.0, "top_p": 0.95, "batch_size": 16},
    "sft": {"epochs": 2, "lr": 2e-5, "batch_size": 8, "max_length": 384},
    "rm": {"epochs": 1, "lr": 1e-5, "batch_size": 8, "max_length": 384},
    "ppo": {
        "total_steps": 20,
        "batch_size": 8,
        "mini_batch_size": 4,
        "ppo_epochs": 4,
        "lr": 1e-5,
        "max_new_tokens": 48,
        "kl_coef": 0.05,
        "save_every": 5,
    },
    "eval": {"max_new_tokens": 48, "temperature": 0.0, "bootstrap_samples": 1000},
}

# cpu-demo's SFT and reward model: one short LoRA epoch on one thread (reasons below)
_CPU_DEMO_FINE_TUNING = {
    "epochs": 1,
    "lr": 5e-5,
    "batch_size": 4,
    "lora_r": 8,
    "max_length": 160,
    "threads": 1,
}

PRESETS: dict[str, dict[str, Any]] = {
    # SmolLM2-135M on a 2-core CPU, so that one round takes minutes (docs/loop.md, "Demo"):
    # 8 prompts × K, short answers, a few optimiser steps, LoRA (DESIGN.md "Trainer contract").
    # One torch thread per trainer: the web server, the raters and anything else on the
    # machine share the other core. With two threads, any other busy process makes the
    # trainer's OpenMP threads wait on each other at every operation: PPO took 317 s instead
    # of 89 s beside a load of ~4, and a whole round 24 min (docs/loop.md).
    "cpu-demo": {
        "prompts_per_round": 8,
        "target_judgments": 16,
        "require_review": False,
        "ab_tasks": 8,
        "eval_hidden_rule": True,
        "sample": {"max_new_tokens": 32, "batch_size": 16, "threads": 1},
        "sft": _CPU_DEMO_FINE_TUNING,
        "rm": _CPU_DEMO_FINE_TUNING,
        "ppo": {
            "total_steps": 4,
            "batch_size": 4,
            "mini_batch_size": 2,
            "ppo_epochs": 2,
            "lr": 5e-5,
            "max_new_tokens": 24,
            "lora_r": 8,
            "save_every": 2,
            "threads": 1,
        },
        "eval": {"max_new_tokens": 24, "batch_size": 9, "threads": 1},
    },
    # A GPU worker: InstructGPT-like proportions at a small scale
    "gpu": {
        "prompts_per_round": 256,
        "target_judgments": 512,
        "sample": {"max_new_tokens": 128, "batch_size": 64},
        "sft": {"epochs": 2, "lr": 1e-5, "batch_size": 32, "max_length": 512},
        "rm": {"epochs": 1, "lr": 9e-6, "batch_size": 32, "max_length": 512},
        "ppo": {"total_steps": 200, "batch_size": 64, "mini_batch_size": 16, "max_new_tokens": 128},
        "eval": {"max_new_tokens": 128, "batch_size": 64},
    },
    # tiny random-initialised models in tests: large learning rates, a handful of steps.
    # The tiny character-level RM has to learn which of ~95 characters the raters like from
    # a hundred-odd noisy rankings: at 3 epochs × 1e-3 (~20 optimiser steps) it stayed near
    # chance and PPO then chased noise; 10 epochs × 3e-3 (~120 steps on 96 rankings) learns
    # the rule's direction (docs/loop.md, "Tests"). PPO's answers have at least 8
    # characters (min_new_tokens; evaluation takes PPO's setting, for both policies): a tiny
    # RM read at the EOS can also reward stopping early, and PPO then drifted to empty
    # answers on some draws of the raters' data. Sampling for the raters stays free, so the
    # RM still learns from short answers, the clearest contrast it gets. One thread: tiny
    # models gain nothing from more.
    "tiny": {
        "prompts_per_round": 24,
        "target_judgments": 48,
        "require_review": False,
        "ab_tasks": 8,
        "sample": {"max_new_tokens": 24, "temperature": 1.0, "top_p": 1.0, "threads": 1},
        "sft": {"epochs": 3, "lr": 3e-3, "batch_size": 4, "threads": 1},
        "rm": {"epochs": 10, "lr": 3e-3, "batch_size": 8, "threads": 1},
        "ppo": {
            "total_steps": 12,
            "batch_size": 16,
            "mini_batch_size": 8,
            "ppo_epochs": 4,
            "lr": 3e-3,
            "max_new_tokens": 24,
            "min_new_tokens": 8,
            "kl_coef": 0.01,
            "save_every": 5,
            "threads": 1,
        },
        "eval": {"max_new_tokens": 24, "temperature": 1.0, "threads": 1},
    },
}
STAGE_SECTIONS = ("sample", "sft", "rm", "ppo", "eval")
REVIEW_CHOICES = ("none", "consensus")


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def round_config(*, preset: str = "", overrides: dict | None = None) -> dict:
    """Defaults < preset < overrides, checked; errors name the field."""
    if preset and preset not in PRESETS:
        raise InvalidInput(
            f"Unknown preset {preset!r}.", fields={"preset": [f"One of {sorted(PRESETS)}."]}
        )
    config = deep_merge(DEFAULTS, PRESETS.get(preset, {}))
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise InvalidInput("config must be an object.", fields={"config": ["Expected an object."]})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise InvalidInput(
            f"Unknown config field(s): {', '.join(unknown)}.",
            fields={"config": [f"Known fields: {', '.join(sorted(DEFAULTS))}."]},
        )
    for section in STAGE_SECTIONS:
        if section in overrides and not isinstance(overrides[section], dict):
            raise InvalidInput(
                f"config.{section} must be an object of trainer settings.",
                fields={"config": [f"{section}: expected an object."]},
            )
    config = deep_merge(config, overrides)
    config["preset"] = preset
    errors = []
    for name in ("prompts_per_round", "target_judgments", "ab_tasks", "ab_overlap"):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append(f"{name}: a whole number ≥ 0.")
    prompts = config["prompts_per_round"]
    if isinstance(prompts, int) and not isinstance(prompts, bool) and prompts < 1:
        errors.append("prompts_per_round: at least 1.")
    minimum = config["sft_min_demonstrations"]
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        errors.append("sft_min_demonstrations: a whole number ≥ 1.")
    if config["weighting"] not in REVIEW_CHOICES:
        errors.append(f"weighting: one of {', '.join(REVIEW_CHOICES)}.")
    for name in ("require_review", "include_previous_rounds", "eval_hidden_rule"):
        if not isinstance(config[name], bool):
            errors.append(f"{name}: true or false.")
    if errors:
        raise InvalidInput("The round settings are not valid.", fields={"config": errors})
    return config
