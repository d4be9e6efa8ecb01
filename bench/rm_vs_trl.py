"""Reward-model training: PrefLoop's K-way loss against TRL's pairwise RewardTrainer.

The same tiny model (built in code) and the same comparisons: PrefLoop gets each judgment as
one K-way ranking (K trunk rows, all C(K,2) pairs in one loss term); TRL (1.16) gets the
ranking expanded to C(K,2) (chosen, rejected) pairs, 2 trunk rows each. Both train one epoch
with the same optimiser steps (B rankings vs B*C(K,2) pairs per step), learning rate,
schedule shape and gradient clipping; run r of each side uses seed r (head initialisation,
shuffling); both are scored by the same held-out pairwise accuracy. Runs alternate and the
median epoch time of each side is reported with the ratio, since this machine is noisy.

    .venv/bin/python bench/rm_vs_trl.py --k 4 9 --repeats 3

On a GPU: ``--device cuda --model smollm2-shape`` trains a random-initialised Llama with
SmolLM2-135M-Instruct's shape (576 hidden, 30 layers, 9 heads / 3 KV heads, 1536 MLP, vocab
49152, tied embeddings; 134.5 M parameters) instead of the ~90k-parameter tiny one, so the
time per epoch is that of the demo model without needing its weights (accuracy means little:
the weights are random). ``--precision`` says how both sides compute:

- ``trl-defaults`` (the default on cpu): each side as it ships: PrefLoop in float32 as
  ``python -m trainer rm`` trains, TRL with its own RewardConfig defaults (bf16 autocast and
  gradient checkpointing). Before 2026-11-28 12:40 UTC accelerate's process-wide state
  leaked TRL's bf16 into PrefLoop's later runs; it is now reset before every run.
- ``fp32`` (the default on cuda): both sides in float32; TRL's gradient checkpointing off
  (PrefLoop has none): the same arithmetic on both sides.
- ``bf16``: both sides under bf16 autocast, PrefLoop as under ``accelerate launch
  --mixed_precision bf16``; TRL's gradient checkpointing off.

    python3 bench/rm_vs_trl.py --device cuda --model smollm2-shape --k 4 9 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_models import (  # noqa: E402
    accelerate_precision,
    add_model_arguments,
    build_model,
    model_shape,
    reset_accelerate,
    synchronize,
)
from trainer import models  # noqa: E402
from trainer.data import Ranking  # noqa: E402
from trainer.reward import RewardConfig, evaluate_rankings, train_reward_model  # noqa: E402


def warm_up(model_dir: Path, args) -> None:
    """One untimed forward/backward on the GPU, so CUDA and cuBLAS start-up is in no run."""
    if args.device != "cuda":
        return
    scorer, _ = models.load_scalar_model(str(model_dir), torch.device("cuda"))
    ids = torch.randint(3, 99, (8, 64), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        scores = models.reward_scores(scorer, ids, torch.ones_like(ids))
    scores.float().sum().backward()
    synchronize(args.device)
    del scorer, scores
    torch.cuda.empty_cache()


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
    reset_accelerate(args.precision)
    metrics = train_reward_model(
        RewardConfig(
            model=str(model_dir),
            train="bench",
            out=str(out),
            epochs=1,
            batch_size=args.batch_rankings,
            lr=args.lr,
            max_length=args.max_length,
            device=args.device,
            seed=seed,
            reference_limit=64,
        ),
        train=train,
        valid=valid,
    )
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)  # a 135M-parameter model is 540 MB a run
    return {
        "epoch_seconds": steps[-1]["time_s"],
        "accuracy": metrics["valid_accuracy"],
        "steps": metrics["steps"],
        "mixed_precision": accelerate_precision(),
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
    reset_accelerate(args.precision)
    # fp32/bf16: the same precision as PrefLoop and no gradient checkpointing (PrefLoop has
    # none); trl-defaults: TRL's own (bf16 autocast, gradient checkpointing on)
    matched = (
        {}
        if args.precision == "trl-defaults"
        else {"bf16": args.precision == "bf16", "fp16": False, "gradient_checkpointing": False}
    )
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
        max_length=args.max_length,
        use_cpu=args.device == "cpu",
        seed=seed,
        dataloader_num_workers=0,
        max_grad_norm=1.0,
        **matched,
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(to_pairs(train)),
    )
    result = trainer.train()
    synchronize(args.device)
    model.eval()
    tokenizer = models.load_tokenizer(str(model_dir))
    accuracy = evaluate_rankings(model, tokenizer, valid, args.max_length)
    return {
        "epoch_seconds": result.metrics["train_runtime"],
        "accuracy": accuracy["accuracy"],
        "steps": result.global_step,
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "gradient_checkpointing": bool(config.gradient_checkpointing),
    }


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 9])
    parser.add_argument("--rankings", type=int, default=128, help="training rankings per K")
    parser.add_argument("--valid", type=int, default=128, help="held-out rankings per K")
    parser.add_argument("--batch-rankings", type=int, default=4)
    parser.add_argument("--length", type=int, default=24, help="characters per completion")
    parser.add_argument(
        "--lr", type=float, default=None, help="default: 2e-3 (tiny), 1e-4 (smollm2-shape)"
    )
    add_model_arguments(parser, tiny_help="~90k-parameter Llama")
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
    if args.lr is None:
        args.lr = 2e-3 if args.model == "tiny" else 1e-4
    if args.precision is None:
        args.precision = "trl-defaults" if args.device == "cpu" else "fp32"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    # 128 as before; room for the prompt (~14 characters) and EOS when --length grows
    args.max_length = max(128, args.length + 32)
    if args.threads:
        torch.set_num_threads(args.threads)

    import accelerate
    import transformers
    import trl
    from transformers.utils import logging

    logging.set_verbosity_error()
    results = {
        "machine": platform.processor() or platform.machine(),
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
            "trl": trl.__version__,
            "trl_path": str(Path(trl.__file__).parent),
        },
        "precision": args.precision,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "date": time.strftime("%Y-%m-%d"),
        "settings": vars(args) | {"json": None},
        "by_k": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        model, tokenizer = build_model(args.model, "llama", args.layers)
        results["model"] = {"kind": args.model, **model_shape(model)}
        models.save_model(model, tokenizer, model_dir)
        del model
        warm_up(model_dir, args)
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
                    "mixed_precision_runs": [r["mixed_precision"] for r in rows],
                }
                for name, rows in runs.items()
            }
            summary["trl"]["gradient_checkpointing"] = runs["trl"][0]["gradient_checkpointing"]
            summary["speedup"] = (
                summary["trl"]["epoch_seconds_median"] / summary["prefloop"]["epoch_seconds_median"]
            )
            summary["pairs_per_ranking"] = math.comb(k, 2)
            summary["trunk_rows_per_ranking"] = {"prefloop": k, "trl": 2 * math.comb(k, 2)}
            results["by_k"][str(k)] = summary
            write_results(args.json, results)  # after every K: a time-boxed run keeps the rest
    print(json.dumps(results, indent=2))
    write_results(args.json, results)
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
