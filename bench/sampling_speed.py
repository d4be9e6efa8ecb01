"""Sampling K answers per prompt from SmolLM2-135M-Instruct: PrefLoop's sampler against
transformers' own ``generate`` (what TRL samples with), in the same run, alternating.

Both draw ``--k`` answers of up to ``--new-tokens`` tokens (temperature 1, top-p 0.95) to
``--prompts`` demo prompts in one batch, in float32 on the CPU, the demo round's sampling
stage in miniature. Reports seconds per batch and new tokens per second (tokens up to each
answer's end), and the ratio.

    .venv/bin/python bench/sampling_speed.py [--prompts 8] [--k 4] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer import models  # noqa: E402
from trainer.contract import Prompt  # noqa: E402
from trainer.ops import pad_sequences  # noqa: E402
from trainer.sampling import sample_completions  # noqa: E402

DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "apps/collection/demo/prompts.jsonl"


def demo_prompts(count: int) -> list[Prompt]:
    rows = [json.loads(line) for line in DEMO_PROMPTS.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["split"] == "train"][:count]
    return [Prompt(id=r["id"], prompt=r["prompt"]) for r in train]


def ours(model, tokenizer, prompts, k: int, new_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    _, stats = sample_completions(
        model,
        tokenizer,
        prompts,
        k=k,
        max_new_tokens=new_tokens,
        temperature=1.0,
        top_p=0.95,
        seed=0,
        batch_size=len(prompts) * k,
    )
    return time.perf_counter() - started, stats["new_tokens"]


def transformers_generate(model, tokenizer, prompts, k: int, new_tokens: int):
    ids, mask = pad_sequences(
        [models.encode_prompt(tokenizer, p.prompt) for p in prompts],
        tokenizer.pad_token_id,
        side="left",
    )
    started = time.perf_counter()
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=True,
        temperature=1.0,
        top_p=0.95,
        top_k=0,
        num_return_sequences=k,
        max_new_tokens=new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    seconds = time.perf_counter() - started
    answers = out[:, ids.size(1) :]
    produced = 0
    for row in answers.tolist():
        produced += (
            row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        )
    return seconds, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_BASE_DIR)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    model, tokenizer = models.load_policy(args.model)
    prompts = demo_prompts(args.prompts)
    runs: dict[str, list[tuple[float, int]]] = {"prefloop": [], "transformers": []}
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(args.repeats):
            runs["prefloop"].append(ours(model, tokenizer, prompts, args.k, args.new_tokens))
            runs["transformers"].append(
                transformers_generate(model, tokenizer, prompts, args.k, args.new_tokens)
            )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "prompts": args.prompts,
        "k": args.k,
        "new_tokens": args.new_tokens,
    }
    for name, values in runs.items():
        seconds = [s for s, _ in values]
        result[name] = {
            "seconds": [round(s, 2) for s in seconds],
            "median_seconds": round(statistics.median(seconds), 2),
            "tokens_per_second": round(sum(t for _, t in values) / sum(seconds), 1),
        }
    result["speedup"] = round(
        result["transformers"]["median_seconds"] / result["prefloop"]["median_seconds"], 2
    )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
