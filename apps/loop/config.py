"""A round's settings: defaults, presets, and how a researcher's overrides merge in.

Checked against the contract (trainer/contract.py) when the round starts, before anything is
stored: the round's own settings against `RoundSettings` below, the `sample`, `sft`, `rm`,
`ppo` and `eval` sections against the trainer's config of that stage (SampleConfig,
SFTConfig, RewardConfig, PPOConfig, EvalConfig). A researcher chooses a preset, a registered
policy (the API's `start_policy_id`) and bounded numbers, flags and choices; an unknown key,
a wrong type, a number out of bounds, a code reference or a path is refused with a 400 that
names the field (`config.ppo.total_steps`). The server sets every model, dataset and output
path itself, from the policy registry and the round's folder (apps/loop/stages/), and the
only code a round may run is a registered scorer, chosen by the server (`eval_hidden_rule`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from apps.core.errors import InvalidInput
from trainer.contract import (
    SPLITS,
    ConfigError,
    EvalConfig,
    PPOConfig,
    RewardConfig,
    SampleConfig,
    SFTConfig,
    bounded,
    check_settings,
    choice,
    flag,
    subset,
)

SELECTION_CHOICES = ("off", "random", "uncertainty")


@dataclass
class RoundSettings:
    """The round's own settings (the stage sections are the trainer's configs)."""

    seed: int = bounded(0, ge=0, le=2**31 - 1)
    """Seed of the round; each stage derives its own from it."""
    prompts_per_round: int = bounded(32, ge=1, le=100_000)
    """Sampling: K completions (the project's K) for this many prompts."""
    sample_splits: list[str] = subset(["train", "valid"], of=SPLITS)
    """Sampling: prompts of these splits."""
    selection: str = choice("off", SELECTION_CHOICES)
    """Sampling: which prompts raters rank first and which K samples they see
    (apps/loop/selection.py): "off" (prompt order), "random", or "uncertainty" (the latest
    reward model's)."""
    samples_per_prompt: int = bounded(0, ge=0, le=16)
    """Sampling: draw this many samples per prompt and let the selection show K (0: K)."""
    target_judgments: int = bounded(64, ge=0, le=10_000_000)
    """Collecting: wait for this many judgments of the round."""
    require_review: bool = flag(True)
    """Collecting and exporting: only approved judgments (off: pending ones too)."""
    include_previous_rounds: bool = flag(True)
    """Exporting: earlier rounds' judgments too."""
    weighting: str = choice("none", ("none", "consensus"))
    """Exporting: "consensus" weights rankings by rater reliability (quality module)."""
    sft_min_demonstrations: int = bounded(16, ge=1, le=10_000_000)
    """SFT runs with at least this many demonstrations of train prompts, else is skipped."""
    ab_tasks: int = bounded(16, ge=0, le=100_000)
    """Evaluating: human A/B tasks of the new policy against its parent."""
    ab_overlap: int = bounded(1, ge=0, le=1000)
    """Evaluating: raters per A/B task (0: one)."""
    eval_hidden_rule: bool = flag(False)
    """Evaluating: also judge win rates with the simulated raters' hidden rule."""


#: The trainer's config of each stage section.
STAGE_SECTIONS: dict[str, type] = {
    "sample": SampleConfig,
    "sft": SFTConfig,
    "rm": RewardConfig,
    "ppo": PPOConfig,
    "eval": EvalConfig,
}

DEFAULTS: dict[str, Any] = {
    **dataclasses.asdict(RoundSettings()),
    # the trainer's settings of each stage, over the trainer's own defaults
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

# cpu-demo's SFT: one short LoRA epoch, on the cores other processes leave (reasons below)
_CPU_DEMO_FINE_TUNING = {
    "epochs": 1,
    "lr": 5e-5,
    "batch_size": 4,
    "lora_r": 8,
    "max_length": 160,
    "threads": 0,
    "adapt_threads": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    # SmolLM2-135M on a 2-core CPU: one round that learns in about eight minutes on an idle
    # machine (docs/loop.md, "Demo"; every number behind these settings is measured there).
    # - Data: all 216 of the demo's train and valid prompts × K answers of 32 tokens, each
    #   task ranked by 3 raters (the demo project's overlap): 540 training rankings and 108
    #   held-out ones (the 36 valid-split tasks: 648 rater pairs, ~216 consensus pairs);
    #   rankings weighted by rater skill, which sets an inverted rater to 0. Twice the
    #   prompts of the 108 before: in simulation on one round's real answers
    #   (bench/rm_data_curve.py, 12 rater draws, 36 held-out tasks) the head's accuracy
    #   against the noiseless rule rose from 0.782 (90 training tasks) to 0.809 (180), against
    #   the raters' consensus only from 0.725 to 0.729 (SE ~0.011), which the consensus of
    #   three noisy raters caps (the rule itself scores ~0.80 against it); twice the held-out
    #   tasks halve the variance of the measured figure (~216 consensus pairs, not ~108).
    #   With 72 prompts, 200 judgments and 20 PPO steps the hidden-rule win rate met "≥ 0.65,
    #   CI low > 0.5" in 3 of 7 draws; with 90, 270 and 30 in 6 of 6; with 108 in 4 of 5
    #   (BENCHMARKS.md, "Demo round on CPU").
    # - Reward model: a head fitted on the frozen trunk's mean state over the answer, depth
    #   and L2 by cross-validation. The last token's state (where a fine-tuned reward model
    #   reads) ranks the raters' rule at ~0.63 in a linear probe, the mean state of block 15-20
    #   at ~0.75; the LoRA reward model this preset had (6 steps on 21 rankings) measured
    #   0.22-0.50 held-out.
    # - PPO: RLOO (4 answers per prompt, no value model: half the compute, and no variance
    #   between prompts in the signal), LoRA on the last 8 of 30 blocks (the backward stops
    #   there), bf16 autocast where the CPU has AMX or AVX512-BF16 ("auto": ~3× the float32
    #   matmul speed with them, ~3× slower without, where fp32 runs instead), lr 1e-3 (at 2e-4 the
    #   policy did not move in 20 steps), 30 steps (20 before two threads made room),
    #   answers cut at 32 tokens scored as they are. KL: adaptive (Ziegler et al. 2019) to a
    #   6-nat target over a 32-response horizon (beta ×1.1 a step while KL ≥ 7.2), never
    #   below its start of 0.05; at a fixed 0.05 one draw of nine ran to KL 20 on answers
    #   that repeat the prompt ("Here's a possible ...: Here's a possible ...") which the
    #   reward model liked and the rule did not (win rate 0.42).
    # Threads: every core the other processes leave idle, re-chosen before each step or batch
    # (adapt_threads). On the idle 2-core machine two threads ran SmolLM2 1.6-1.9x faster than
    # one; beside any busy process, two threads wait on each other at every operation (PPO
    # took 317 s instead of 89 s beside a load of ~4), so there the trainer drops to one
    # (docs/loop.md, "Demo").
    "cpu-demo": {
        "prompts_per_round": 216,
        "target_judgments": 648,
        "require_review": False,
        "weighting": "consensus",
        "ab_tasks": 8,
        "eval_hidden_rule": True,
        "sample": {
            "max_new_tokens": 32,
            "temperature": 1.0,
            "top_p": 0.95,
            "batch_size": 32,
            "threads": 0,
            "adapt_threads": True,
            "precision": "auto",
        },
        "sft": _CPU_DEMO_FINE_TUNING,
        "rm": {
            "epochs": 0,
            "head_fit": True,
            "pooling": "mean",
            "feature_layers": [10, 15, 20, 25, 30],
            "head_l2": [0.1, 0.3, 1.0, 3.0],
            "max_length": 160,
            "eval_batch_size": 16,
            "precision": "auto",
            "threads": 0,
            "adapt_threads": True,
        },
        "ppo": {
            "total_steps": 30,
            "batch_size": 16,
            "samples_per_prompt": 4,
            "advantage": "rloo",
            "mini_batch_size": 8,
            "ppo_epochs": 2,
            "lr": 1e-3,
            "max_new_tokens": 32,
            "missing_eos_penalty": None,
            "kl_coef": 0.05,
            "adaptive_kl": True,
            "kl_target": 6.0,
            "kl_horizon": 32,
            "kl_coef_min": 0.05,
            "lora_r": 8,
            "lora_layers": 8,
            "precision": "auto",
            "save_every": 5,
            "threads": 0,
            "adapt_threads": True,
        },
        "eval": {
            "max_new_tokens": 32,
            "batch_size": 36,
            "max_length": 160,
            "precision": "auto",
            "threads": 0,
            "adapt_threads": True,
        },
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


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def round_config(*, preset: str = "", overrides: Any = None) -> dict:
    """Defaults < preset < overrides, checked against the contract; every problem is named by
    its field's path (`config.ppo.total_steps`) in one InvalidInput, and nothing is kept."""
    if preset and preset not in PRESETS:
        raise InvalidInput(
            f"Unknown preset {preset!r}.", fields={"preset": [f"One of {sorted(PRESETS)}."]}
        )
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, dict):
        raise InvalidInput("config must be an object.", fields={"config": ["Expected an object."]})
    problems: dict[str, str] = {}
    own = {k: v for k, v in overrides.items() if k not in STAGE_SECTIONS}
    checked = _checked(RoundSettings, own, "config", problems)
    for section, cls in STAGE_SECTIONS.items():
        if section in overrides:
            checked[section] = _checked(cls, overrides[section], f"config.{section}", problems)
    if not problems:
        config = deep_merge(deep_merge(DEFAULTS, PRESETS.get(preset, {})), checked)
        for section, cls in STAGE_SECTIONS.items():  # settings that only fail together
            _checked(cls, config[section], f"config.{section}", problems)
    if problems:
        listed = "; ".join(f"{path}: {problem}" for path, problem in problems.items())
        raise InvalidInput(
            f"The round settings are not valid: {listed}",
            fields={path: [problem] for path, problem in problems.items()},
        )
    config["preset"] = preset
    return config


def _checked(cls: type, values: Any, path: str, problems: dict[str, str]) -> dict:
    """`values` checked as a round's settings of `cls`; problems are added to `problems`."""
    try:
        return check_settings(cls, values, path=path, from_round=True, partial=True)
    except ConfigError as exc:
        problems.update(exc.problems)
        return {}
