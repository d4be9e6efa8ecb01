"""The reward model's feature pass on SmolLM2-135M-Instruct with each prompt run once for its
K answers (trainer/prompt_cache.py) against every row run whole, in the same run, alternating.

Reads the answers of a round that ``bench/demo_round.py --keep`` left behind (each task's
prompt and its K answers, as ``bench/rm_data_curve.py`` does) and computes the RM stage's
features (``trainer.reward.completion_features``: the cpu-demo preset's depths, mean pooling,
max length, batch size and precision ``auto``) of ``--answers`` of them, sorted as the RM
stage sorts them. Reports each arm's median time over ``--repeats``, the ratio, the share of
tokens the shared arm runs, and the largest difference between the two arms' features.

    .venv/bin/python bench/rm_features_speed.py --round /tmp/prefloop-demo-round-XXXX \\
        [--answers 256] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from apps.loop.config import PRESETS  # noqa: E402
from bench.rm_data_curve import round_tasks  # noqa: E402
from trainer import models, reward  # noqa: E402
from trainer.prompt_cache import split_point  # noqa: E402
from trainer.runlog import use_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=Path, required=True, help="a kept demo round's directory")
    parser.add_argument("--model", default=models.DEFAULT_BASE_DIR)
    parser.add_argument("--answers", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    preset = PRESETS["cpu-demo"]["rm"]
    texts = sorted({(p, a) for p, answers in round_tasks(args.round) for a in answers})
    texts = texts[: args.answers]
    use_threads(args.threads, False)
    model, tokenizer = models.load_scalar_model(args.model)
    precision = models.resolve_precision("auto", torch.device("cpu"))
    total = models.num_layers(model)
    depths = sorted({d for d in preset["feature_layers"] if d <= total})
    settings = (depths, "mean", preset["max_length"], preset["eval_batch_size"], precision)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    features = {}
    for _ in range(args.repeats):
        for shared in (True, False):
            reward.SHARE_PROMPTS = shared
            started = time.perf_counter()
            features[shared] = reward.completion_features(model, tokenizer, texts, *settings)
            seconds[shared].append(time.perf_counter() - started)
    reward.SHARE_PROMPTS = True
    encoded = [reward.encode_scored(tokenizer, p, a, preset["max_length"]) for p, a in texts]
    tokens = sum(len(row) for row, _ in encoded)
    answer_tokens = sum(len(row) - split_point(row, span) for row, span in encoded)
    prompts = len({p for p, _ in texts})
    prompt_tokens = sum(
        split_point(row, span)
        for row, span in dict(zip([p for p, _ in texts], encoded, strict=True)).values()
    )
    whole, shared = statistics.median(seconds[False]), statistics.median(seconds[True])
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "answers": len(texts),
        "prompts": prompts,
        "precision": precision,
        "threads": args.threads,
        "depths": depths,
        "whole_seconds": [round(s, 2) for s in seconds[False]],
        "shared_seconds": [round(s, 2) for s in seconds[True]],
        "whole_median": round(whole, 2),
        "shared_median": round(shared, 2),
        "speedup": round(whole / shared, 2),
        "tokens_whole": tokens,
        "tokens_shared": answer_tokens + prompt_tokens,
        # per answer |shared - whole| / |whole| (Euclidean norms), the largest over answers and
        # depths: bf16 rounds the two arms' different matrix shapes differently
        "max_relative_difference": max(
            float(
                (
                    (features[True][d] - features[False][d]).norm(dim=1)
                    / features[False][d].norm(dim=1)
                ).max()
            )
            for d in depths
        ),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
