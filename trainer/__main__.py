"""Command line: ``python -m trainer {bootstrap,sample,sft,rm,ppo,eval} [--config run.json] ...``.

Thin: parse the typed config (defaults < JSON file < flags), run the command, print its final
metrics as JSON. A user-fixable input problem exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from trainer.config import add_config_arguments, build_config
from trainer.data import DataError
from trainer.models import require_device


def _commands() -> dict[str, tuple[type, Callable, str]]:
    from trainer.bootstrap import BootstrapConfig, bootstrap
    from trainer.evaluate import EvalConfig, evaluate
    from trainer.ppo import PPOConfig, train_ppo
    from trainer.reward import RewardConfig, train_reward_model
    from trainer.sampling import SampleConfig, sample
    from trainer.sft import SFTConfig, train_sft

    return {
        "bootstrap": (BootstrapConfig, bootstrap, "create the base policy directory"),
        "sample": (SampleConfig, sample, "sample K completions per prompt"),
        "sft": (SFTConfig, train_sft, "supervised fine-tuning on demonstrations"),
        "rm": (RewardConfig, train_reward_model, "train a reward model on K-way rankings"),
        "ppo": (PPOConfig, train_ppo, "PPO (optionally PPO-ptx) against a reward model"),
        "eval": (EvalConfig, evaluate, "reward-model accuracy, win rates, text metrics"),
    }


def build_parser(commands) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (config_cls, _, help_text) in commands.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        add_config_arguments(command_parser, config_cls)
    return parser


def _quiet_libraries() -> None:
    """Keep stderr for our progress bar and errors: transformers' load reports and
    deprecation notices would bury them in worker logs."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not sys.stderr.isatty():
        # a worker's log is a file: transformers' "Loading weights" and "Writing model
        # shards" bars would land in it as raw carriage-return lines
        logging.disable_progress_bar()
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> int:
    commands = _commands()
    args = build_parser(commands).parse_args(argv)
    _quiet_libraries()
    config_cls, run, _ = commands[args.command]
    try:
        config = build_config(config_cls, args)
        if hasattr(config, "device"):
            require_device(config.device)
        result = run(config)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
