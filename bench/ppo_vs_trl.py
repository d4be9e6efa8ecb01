"""One PPO update: PrefLoop's ``trainer.ppo`` against ``trl.experimental.ppo`` (trl 1.12.0).

Same tiny GPT-2 (built in code), same reward/value model (its trunk with a seeded scalar
head), same settings: batch 8 prompts, 16 response tokens, 4 PPO epochs over 2 minibatches,
EOS stop with a missing-EOS penalty, per-token KL (beta 0.05). An update is everything one
iteration does: rollout, reference and value passes, reward, GAE, 4 epochs of minibatch steps.
Each side runs ``--updates`` updates per run; the first update of a run is warm-up and dropped;
runs alternate and the median update time of each side is reported with the ratio.

trl 1.12.0 (the last release with PPO) lives in its own virtualenv so the project keeps 1.16:

    python3.11 -m venv var/bench-venv-trl112
    var/bench-venv-trl112/bin/pip install torch==2.13.0
    var/bench-venv-trl112/bin/pip install torch==2.13.0 trl==1.12.0
    var/bench-venv-trl112/bin/python bench/ppo_vs_trl.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer import models  # noqa: E402
from trainer.data import write_jsonl  # noqa: E402
from trainer.ppo import PPOConfig, train_ppo  # noqa: E402

BATCH, MINI_BATCHES, EPOCHS, RESPONSE = 8, 2, 4, 16
KL_COEF, PENALTY, LR = 0.05, 1.0, 1e-4


def prepare(root: Path, n_prompts: int) -> tuple[Path, Path, Path]:
    from transformers import AutoModelForSequenceClassification

    policy_dir, rm_dir = root / "policy", root / "rm"
    model, tokenizer = models.build_tiny("gpt2", seed=0)
    models.save_model(model, tokenizer, policy_dir)
    torch.manual_seed(1)
    reward = AutoModelForSequenceClassification.from_pretrained(str(policy_dir), num_labels=1)
    torch.nn.init.normal_(reward.score.weight, std=0.5)
    models.save_model(reward, tokenizer, rm_dir)
    prompts = root / "prompts.jsonl"
    write_jsonl(
        prompts,
        [
            {
                "id": str(i),
                "prompt": f"Question {i}: tell me about " + "ab" * (i % 7),
                "category": "generation",
                "split": "train",
            }
            for i in range(n_prompts)
        ],
    )
    return policy_dir, rm_dir, prompts


def run_prefloop(policy_dir: Path, rm_dir: Path, prompts: Path, updates: int, out: Path):
    train_ppo(
        PPOConfig(
            policy=str(policy_dir),
            reward_model=str(rm_dir),
            prompts=str(prompts),
            out=str(out),
            total_steps=updates,
            batch_size=BATCH,
            mini_batch_size=BATCH // MINI_BATCHES,
            ppo_epochs=EPOCHS,
            max_new_tokens=RESPONSE,
            kl_coef=KL_COEF,
            lr=LR,
            missing_eos_penalty=PENALTY,
            save_every=0,
            device="cpu",
            seed=0,
        )
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step_seconds"] for r in rows]


def run_trl(policy_dir: Path, rm_dir: Path, prompts: Path, updates: int, out: Path):
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    tokenizer = models.load_tokenizer(str(policy_dir))
    policy = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    reference = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    reward = AutoModelForSequenceClassification.from_pretrained(str(rm_dir), num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(str(rm_dir), num_labels=1)
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    dataset = Dataset.from_list(
        [{"input_ids": models.encode_prompt(tokenizer, r["prompt"])} for r in rows]
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    clock = Clock()
    config = TRLPPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        num_mini_batches=MINI_BATCHES,
        num_ppo_epochs=EPOCHS,
        response_length=RESPONSE,
        total_episodes=BATCH * updates,
        learning_rate=LR,
        stop_token="eos",
        missing_eos_penalty=PENALTY,
        kl_coef=KL_COEF,
        temperature=1.0,
        report_to=[],
        save_strategy="no",
        num_sample_generations=0,
        use_cpu=True,
        local_rollout_forward_batch_size=BATCH,
        disable_tqdm=True,
        logging_steps=10_000,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        value_model=value,
        train_dataset=dataset,
        callbacks=[clock],
    )
    trainer.train()
    return [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=6, help="updates per run (1st dropped)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (0: torch default); 1 keeps "
        "a shared 2-core machine from thrashing",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("var/bench/ppo_vs_trl.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import trl
    from transformers.utils import logging

    logging.set_verbosity_error()
    times = {"prefloop": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy_dir, rm_dir, prompts = prepare(root, 64)
        for repeat in range(args.repeats):
            for name, fn in (("prefloop", run_prefloop), ("trl", run_trl)):
                per_update = fn(
                    policy_dir, rm_dir, prompts, args.updates, root / f"{name}-{repeat}"
                )
                times[name] += per_update[1:]
                print(
                    f"{name} run {repeat}: " + ", ".join(f"{t:.3f}" for t in per_update), flush=True
                )
    medians = {k: statistics.median(v) for k, v in times.items()}
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "settings": {
            "batch": BATCH,
            "response_tokens": RESPONSE,
            "ppo_epochs": EPOCHS,
            "mini_batches": MINI_BATCHES,
            "updates_per_run": args.updates,
            "repeats": args.repeats,
        },
        "median_update_seconds": medians,
        "samples": {k: len(v) for k, v in times.items()},
        "trl_over_prefloop": medians["trl"] / medians["prefloop"],
    }
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
