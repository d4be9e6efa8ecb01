"""Reward-model training: PrefLoop's K-way loss against TRL's pairwise RewardTrainer.

The same tiny model (built in code) and the same comparisons: PrefLoop gets each judgment as
one K-way ranking (K trunk rows, all C(K,2) pairs in one loss term); TRL (1.16) gets the
ranking expanded to C(K,2) (chosen, rejected) pairs, 2 trunk rows each. Both train one epoch
with the same optimiser steps (B rankings vs B*C(K,2) pairs per step), learning rate,
schedule shape and gradient clipping; run r of each side uses seed r (head initialisation,
shuffling); both are scored by the same held-out pairwise accuracy. Runs alternate and the
median epoch time of each side is reported with the ratio, since this machine is noisy.

    .venv/bin/python bench/rm_vs_trl.py --k 4 9 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer import models  # noqa: E402
from trainer.data import Ranking  # noqa: E402
from trainer.reward import RewardConfig, evaluate_rankings, train_reward_model  # noqa: E402


def make_rankings(n: int, k: int, seed: int, length: int) -> list[Ranking]:
    """Completions with distinct numbers of "x": more is better, no ties."""
    rng = random.Random(seed)
    rankings = []
    for i in range(n):
        counts = rng.sample(range(length + 1), k)
        completions = []
        for count in counts:
            chars = ["x"] * count + [rng.choice("aby") for _ in range(length - count)]
            rng.shuffle(chars)
            completions.append("".join(chars))
        order = sorted(range(k), key=lambda j: -counts[j])
        rankings.append(Ranking(f"Q{seed}.{i}: write", completions, [[j] for j in order]))
    return rankings


def to_pairs(rankings: list[Ranking]) -> list[dict]:
    return [
        {"prompt": r.prompt, "chosen": r.completions[win], "rejected": r.completions[lose]}
        for r in rankings
        for win, lose in r.strict_pairs()
    ]


def run_prefloop(model_dir: Path, train, valid, args, work: Path, seed: int) -> dict:
    out = work / "prefloop"
    metrics = train_reward_model(
        RewardConfig(
            model=str(model_dir),
            train="bench",
            out=str(out),
            epochs=1,
            batch_size=args.batch_rankings,
            lr=args.lr,
            max_length=128,
            device="cpu",
            seed=seed,
            reference_limit=64,
        ),
        train=train,
        valid=valid,
    )
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "epoch_seconds": steps[-1]["time_s"],
        "accuracy": metrics["valid_accuracy"],
        "steps": metrics["steps"],
    }


def run_trl(model_dir: Path, train, valid, args, work: Path, seed: int) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    tokenizer = models.load_tokenizer(str(model_dir))
    tokenizer.padding_side = "right"
    torch.manual_seed(seed)  # the fresh head's initialisation, as PrefLoop seeds its own
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    k = train[0].k
    config = TRLRewardConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=args.batch_rankings * math.comb(k, 2),
        num_train_epochs=1,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        report_to=[],
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        max_length=128,
        use_cpu=True,
        seed=seed,
        dataloader_num_workers=0,
        max_grad_norm=1.0,
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(to_pairs(train)),
    )
    result = trainer.train()
    model.eval()
    accuracy = evaluate_rankings(model, models.load_tokenizer(str(model_dir)), valid, 128)
    return {
        "epoch_seconds": result.metrics["train_runtime"],
        "accuracy": accuracy["accuracy"],
        "steps": result.global_step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 9])
    parser.add_argument("--rankings", type=int, default=128, help="training rankings per K")
    parser.add_argument("--valid", type=int, default=128, help="held-out rankings per K")
    parser.add_argument("--batch-rankings", type=int, default=4)
    parser.add_argument("--length", type=int, default=24, help="characters per completion")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (0: torch default); 1 keeps "
        "a shared 2-core machine from thrashing",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("var/bench/rm_vs_trl.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import trl
    from transformers.utils import logging

    logging.set_verbosity_error()
    results = {
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "settings": vars(args) | {"json": None},
        "by_k": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        model, tokenizer = models.build_tiny("llama", seed=0)
        models.save_model(model, tokenizer, model_dir)
        for k in args.k:
            train = make_rankings(args.rankings, k, seed=1, length=args.length)
            valid = make_rankings(args.valid, k, seed=2, length=args.length)
            runs = {"prefloop": [], "trl": []}
            for repeat in range(args.repeats):
                for name, fn in (("prefloop", run_prefloop), ("trl", run_trl)):
                    work = Path(tmp) / f"{name}-{k}-{repeat}"
                    runs[name].append(fn(model_dir, train, valid, args, work, seed=repeat))
                    print(f"K={k} {name} run {repeat}: {runs[name][-1]}", flush=True)
            summary = {
                name: {
                    "epoch_seconds_median": statistics.median(r["epoch_seconds"] for r in rows),
                    "accuracy_mean": statistics.mean(r["accuracy"] for r in rows),
                    "accuracy_median": statistics.median(r["accuracy"] for r in rows),
                    "accuracy_runs": [round(r["accuracy"], 4) for r in rows],
                    "epoch_seconds_runs": [r["epoch_seconds"] for r in rows],
                    "steps": rows[0]["steps"],
                }
                for name, rows in runs.items()
            }
            summary["speedup"] = (
                summary["trl"]["epoch_seconds_median"] / summary["prefloop"]["epoch_seconds_median"]
            )
            summary["pairs_per_ranking"] = math.comb(k, 2)
            summary["trunk_rows_per_ranking"] = {"prefloop": k, "trl": 2 * math.comb(k, 2)}
            results["by_k"][str(k)] = summary
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print("\n| K | PrefLoop s/epoch | TRL s/epoch | speed-up | PrefLoop acc | TRL acc |")
    print("|---|---|---|---|---|---|")
    for k, s in results["by_k"].items():
        print(
            f"| {k} | {s['prefloop']['epoch_seconds_median']:.2f} | "
            f"{s['trl']['epoch_seconds_median']:.2f} | {s['speedup']:.2f}x | "
            f"{s['prefloop']['accuracy_mean']:.3f} | {s['trl']['accuracy_mean']:.3f} |"
        )


if __name__ == "__main__":
    main()
