import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.bootstrap import BootstrapConfig
from trainer.config import add_config_arguments, build_config, field_docs
from trainer.data import DataError
from trainer.evaluate import EvalConfig
from trainer.ppo import PPOConfig
from trainer.reward import RewardConfig
from trainer.sampling import SampleConfig
from trainer.sft import SFTConfig

ALL_CONFIGS = [BootstrapConfig, SampleConfig, SFTConfig, RewardConfig, PPOConfig, EvalConfig]


@pytest.mark.parametrize("cls", ALL_CONFIGS)
def test_every_config_field_has_a_docstring(cls):
    docs = field_docs(cls)
    undocumented = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert undocumented == []


def parse(cls, argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return build_config(cls, parser.parse_args(argv))


def test_flags_override_config_file_which_overrides_defaults(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(
        json.dumps(
            {
                "policy": "a",
                "prompts": "p.jsonl",
                "out": "o",
                "kl_coef": 0.2,
                "total_steps": 7,
                "adaptive_kl": True,
            }
        )
    )
    config = parse(PPOConfig, ["--config", str(run), "--kl-coef", "0.3", "--no-adaptive-kl"])
    assert config.kl_coef == 0.3  # flag wins
    assert config.total_steps == 7  # file wins over default
    assert config.adaptive_kl is False
    assert config.lam == 0.95  # default


def test_config_errors_are_clear(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"policy": "a", "prompts": "p", "out": "o", "kl_coff": 1}))
    with pytest.raises(DataError, match=r"run.json: kl_coff: unknown setting; known: .*kl_coef"):
        parse(PPOConfig, ["--config", str(run)])
    run.write_text('{"policy": "a",\n "total_steps": "many"}')
    with pytest.raises(DataError, match="total_steps: expected a whole number, got 'many'"):
        parse(PPOConfig, ["--config", str(run)])
    run.write_text('{"policy": "a",\n oops}')
    with pytest.raises(DataError, match=r"run.json:2: invalid JSON"):
        parse(PPOConfig, ["--config", str(run)])
    with pytest.raises(DataError, match="missing required setting"):
        parse(PPOConfig, ["--policy", "a"])
    with pytest.raises(DataError, match="command line: field 'total_steps' expects int, got 'x'"):
        parse(PPOConfig, ["--policy", "a", "--prompts", "p", "--out", "o", "--total-steps", "x"])


REQUIRED = {"policy": "a", "prompts": "p.jsonl", "out": "o"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # a hand-written file gets the checks a round's config gets (paths aside)
        ({"total_steps": 10**9}, "total_steps: at most 100000, got 1000000000"),
        ({"lr": 0}, "lr: more than 0.0, got 0"),
        ({"seed": "7"}, "seed: expected a whole number, got '7'"),
        ({"adaptive_kl": "yes"}, "adaptive_kl: expected true or false, got 'yes'"),
        ({"score_fn": "os:system"}, "score_fn: not a registered scorer; one of brevity, "),
        ({"split": "everything"}, "split: one of train, valid, test, got 'everything'"),
        ({"batch_size": 8, "mini_batch_size": 3}, "mini_batch_size: must divide batch_size"),
        ({"max_new_tokens": 8, "min_new_tokens": 8}, "min_new_tokens: must be below"),
    ],
)
def test_a_config_file_outside_the_contract_is_refused(tmp_path, settings, message):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({**REQUIRED, **settings}))
    with pytest.raises(DataError) as refused:
        parse(PPOConfig, ["--config", str(run)])
    assert message in str(refused.value)


def test_flags_are_checked_against_the_bounds_too():
    with pytest.raises(DataError, match="total_steps: at most 100000"):
        flags = ["--policy", "a", "--prompts", "p", "--out", "o", "--total-steps", "1000000000"]
        parse(PPOConfig, flags)
    with pytest.raises(DataError, match="score_fn: not a registered scorer"):
        parse(EvalConfig, ["--out", "o", "--score-fn", "pty:spawn"])
    assert parse(EvalConfig, ["--out", "o", "--score-fn", "length"]).score_fn == "length"


def test_optional_field_can_be_unset_from_a_flag():
    config = parse(
        PPOConfig,
        [
            "--policy",
            "a",
            "--prompts",
            "p",
            "--out",
            "o",
            "--split",
            "none",
            "--missing-eos-penalty",
            "null",
        ],
    )
    assert config.split is None and config.missing_eos_penalty is None


def test_list_field_from_flag():
    config = parse(EvalConfig, ["--out", "o", "--train-categories", "chat,open QA"])
    assert config.train_categories == ["chat", "open QA"]


def test_help_of_every_command_shows_field_docs():
    from trainer.__main__ import _commands, build_parser

    commands = _commands()
    parser = build_parser(commands)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands:
        text = " ".join(subparsers.choices[name].format_help().split())
        assert "--config CONFIG" in text
    rm_help = " ".join(subparsers.choices["rm"].format_help().split())
    assert "AdamW learning rate (cosine decay to 10% over the run). (default: 1e-05)" in rm_help


def test_trainer_imports_without_django():
    code = (
        "import sys\n"
        "import trainer, trainer.__main__, trainer.ppo, trainer.reward, trainer.sft, "
        "trainer.sampling, trainer.evaluate, trainer.bootstrap\n"
        "trainer.__main__._commands()\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(len(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_the_docs_configuration_reference_is_the_contract():
    from trainer.config import reference_markdown
    from trainer.contract import COMMAND_CONFIGS

    docs = (Path(__file__).resolve().parents[2] / "docs/trainer.md").read_text()
    reference = docs[docs.index("#### `bootstrap`") :]
    # regenerate: reference_markdown(COMMAND_CONFIGS) replaces the page from "#### `bootstrap`"
    assert reference == reference_markdown(COMMAND_CONFIGS)
