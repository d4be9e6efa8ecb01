"""The subprocess contract the web side relies on: `python -m trainer ...`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.conftest import count_rule_rankings, ranking_row

ROOT = Path(__file__).resolve().parents[2]


def trainer(*args, timeout=300):
    # one intra-op thread: the tiny models gain nothing from more on a shared 2-core machine
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.slow
def test_bootstrap_sample_rm_through_the_command_line(tmp_path):
    model = tmp_path / "tiny"
    result = trainer("bootstrap", "--tiny", "--out", model)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] is False
    assert (model / "config.json").is_file() and (model / "tokenizer_config.json").is_file()
    again = trainer("bootstrap", "--tiny", "--out", model)
    assert json.loads(again.stdout)["skipped"] is True

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"id": "a", "prompt": "Hi", "category": "chat", "split": "train"}) + "\n"
    )
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"k": 5, "max_new_tokens": 4, "seed": 1}))
    result = trainer(
        "sample",
        "--config",
        run,
        "--k",
        2,
        "--model",
        model,
        "--prompts",
        prompts,
        "--out",
        tmp_path / "s",
        "--temperature",
        0.7,
        "--top-p",
        0.9,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in (tmp_path / "s/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # the flag beat the config file's k=5
    assert rows[0]["sampling"] == {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 4}
    assert json.loads((tmp_path / "s/metrics.json").read_text())["completions"] == 2

    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(
        "".join(json.dumps(ranking_row(r)) + "\n" for r in count_rule_rankings(12, 3, seed=0))
    )
    result = trainer(
        "rm",
        "--model",
        model,
        "--train",
        rankings,
        "--out",
        tmp_path / "rm",
        "--max-steps",
        1,
        "--valid-fraction",
        0.25,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "rm/metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["valid_rankings"] == 3
    assert (tmp_path / "rm/config.json").is_file()
    # stderr is a pipe here, as in a worker's log: no library progress bar ("Loading
    # weights", "Writing model shards") writes raw carriage-return lines into it
    for output in (result.stderr, again.stderr):
        assert "\r" not in output and "Loading weights" not in output


@pytest.mark.slow
def test_malformed_input_exits_2_with_file_and_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "ok"}\n{"id": "b"}\n')
    result = trainer("sample", "--model", tmp_path, "--prompts", prompts, "--out", tmp_path / "o")
    assert result.returncode == 2
    assert f"error: {prompts}:2: missing field 'prompt'" in result.stderr
    result = trainer(
        "rm", "--model", tmp_path, "--train", tmp_path / "missing.jsonl", "--out", tmp_path / "o"
    )
    assert result.returncode == 2
    assert "missing.jsonl: file not found" in result.stderr
    result = trainer(
        "ppo",
        "--policy",
        "x",
        "--prompts",
        prompts,
        "--out",
        tmp_path / "o",
        "--total-steps",
        "lots",
    )
    assert result.returncode == 2
    assert "field 'total_steps' expects int, got 'lots'" in result.stderr


@pytest.mark.slow
def test_sft_ppo_eval_through_the_command_line(tiny_dir, tmp_path):
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        "".join(json.dumps({"prompt": f"Q{i}: ", "completion": "7"}) + "\n" for i in range(8))
    )
    result = trainer(
        "sft",
        "--model",
        tiny_dir,
        "--train",
        demos,
        "--out",
        tmp_path / "sft",
        "--epochs",
        1,
        "--batch-size",
        4,
        "--lr",
        1e-3,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 2

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"Q{i}: ", "category": c, "split": s}) + "\n"
            for i, (c, s) in enumerate(
                [("chat", "train"), ("chat", "train"), ("chat", "test"), ("rewrite", "test")]
            )
        )
    )
    run = tmp_path / "ppo.json"
    run.write_text(
        json.dumps(
            {
                "score_fn": "digit_count",
                "total_steps": 2,
                "batch_size": 2,
                "mini_batch_size": 1,
                "ppo_epochs": 1,
                "max_new_tokens": 4,
                "save_every": 1,
            }
        )
    )
    result = trainer(
        "ppo",
        "--config",
        run,
        "--policy",
        tmp_path / "sft",
        "--prompts",
        prompts,
        "--out",
        tmp_path / "ppo",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ppo/metrics.json").read_text())
    assert metrics["finished"] is True and metrics["steps_done"] == 2
    assert len((tmp_path / "ppo/metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "ppo/config.json").is_file()
    checkpoint = tmp_path / "ppo/checkpoint"
    assert (checkpoint / "trainer_state.json").is_file()
    assert (checkpoint / "optimizer.safetensors").is_file()
    pickles = [p for p in checkpoint.rglob("*") if p.suffix in (".pt", ".bin", ".pkl", ".pth")]
    assert pickles == []  # nothing a resume could unpickle

    result = trainer(
        "eval",
        "--policy",
        tmp_path / "ppo",
        "--reference-policy",
        tmp_path / "sft",
        "--score-fn",
        "length",
        "--prompts",
        prompts,
        "--max-new-tokens",
        4,
        "--train-categories",
        "chat",
        "--out",
        tmp_path / "eval",
    )
    assert result.returncode == 0, result.stderr
    win = json.loads((tmp_path / "eval/metrics.json").read_text())["win_rate"]
    assert win["overall"]["n"] == 2  # the two test-split prompts
    assert win["seen_categories"]["n"] == 1 and win["unseen_categories"]["n"] == 1


@pytest.mark.slow
def test_two_processes_under_torchrun_share_the_work(tiny_dir, tmp_path):
    """The DDP code path (what `accelerate launch` runs on GPUs), as 2 CPU processes (gloo)."""
    rankings = tmp_path / "rankings.jsonl"
    rankings.write_text(
        "".join(json.dumps(ranking_row(r)) + "\n" for r in count_rule_rankings(16, 3, seed=0))
    )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": f"Q{i}:"}) + "\n" for i in range(4)))
    ptx = tmp_path / "ptx.jsonl"
    ptx.write_text(json.dumps({"text": "hello"}) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "trainer",
    ]
    result = subprocess.run(
        [
            *torchrun,
            "rm",
            "--model",
            str(tiny_dir),
            "--train",
            str(rankings),
            "--out",
            str(tmp_path / "rm"),
            "--batch-size",
            "4",
            "--valid-fraction",
            "0.25",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # 12 training rankings in batches of 4 split over 2 processes: 2 steps each, not 3
    assert json.loads((tmp_path / "rm/metrics.json").read_text())["steps"] == 2
    result = subprocess.run(
        [
            *torchrun,
            "ppo",
            "--policy",
            str(tiny_dir),
            "--reward-model",
            str(tmp_path / "rm"),
            "--prompts",
            str(prompts),
            "--split",
            "none",
            "--out",
            str(tmp_path / "ppo"),
            "--total-steps",
            "2",
            "--batch-size",
            "2",
            "--mini-batch-size",
            "1",
            "--max-new-tokens",
            "4",
            "--ptx",
            str(ptx),
            "--ptx-coef",
            "0.5",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "ppo/metrics.json").read_text())["finished"] is True


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "device 'cuda' was asked for, but torch sees no CUDA GPU here"),
        ("cuda:1", "device 'cuda:1' was asked for, but torch sees no CUDA GPU here"),
        ("tpu", "device 'tpu' is not one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_a_device_the_machine_lacks_exits_2_before_any_work(
    tmp_path, monkeypatch, capsys, device, message
):
    import torch

    from trainer.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # so on a GPU machine too
    out = tmp_path / "o"
    argv = ["rm", "--model", str(tmp_path), "--train", str(tmp_path / "t.jsonl")]
    assert main([*argv, "--out", str(out), "--device", device]) == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not out.exists()  # nothing started, nothing written


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"score_fn": "pty:spawn"}, "score_fn: not a registered scorer"),
        ({"score_fn": "os:system"}, "score_fn: not a registered scorer"),
        ({"bootstrap_samples": 10**9}, "bootstrap_samples: at most 1000000"),
        ({"seed": "0"}, "seed: expected a whole number"),
    ],
)
def test_a_hand_written_config_outside_the_contract_exits_2_before_any_work(
    tmp_path, monkeypatch, capsys, settings, message
):
    """The same checks as a round's config: the scorer named in the file is never imported."""
    import importlib

    from trainer.__main__ import main

    imported = []
    real_import = importlib.import_module
    monkeypatch.setattr(
        importlib, "import_module", lambda name, *a: imported.append(name) or real_import(name, *a)
    )
    out = tmp_path / "o"
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"out": str(out), "policy": str(tmp_path), **settings}))
    assert main(["eval", "--config", str(run)]) == 2
    assert f"error: {run}: {message}" in capsys.readouterr().err
    assert not out.exists()
    assert not {"pty", "os"} & set(imported)
