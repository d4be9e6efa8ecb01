"""What the demo's reward model gains from more tasks or more raters per task, in simulation
on real SmolLM2 answers.

Reads the answers of a round that ``bench/demo_round.py --keep`` left behind (its snapshot's
rankings: each task's prompt and K answers), computes the frozen trunk's features of every
answer once (``trainer.reward.completion_features``, the preset's depths and pooling), then
draws raters again and again as ``simulate_raters`` does (``apps.loop.simulation``: 6
raters, noise σ ~ U(0.05, 0.25) on the hidden rule, one inverted) and, per draw, holds out
``--held-out`` tasks, fits the head as the RM stage does (``choose_head`` + ``fit_head``:
depth and L2 by 3-fold CV over prompts) on a given number of training tasks, and scores it
against the held-out tasks' skill-weighted consensus (``trainer.evaluate.consensus_hits``)
and against the noiseless rule. Rankings are weighted by ``accuracy_weight`` of each rater's
accuracy against the rule: a stand-in for the quality module's measured skill.

Also: ``--held-out-overlaps`` (raters per held-out task: the yardstick's sharpness),
``--pairs`` (heads that read two depths at once), ``--precision bf16`` and ``--whole-rows``
(the feature pass as the RM stage runs it on a bf16 CPU, or every row whole: the same seeds
draw the same raters and splits, so two runs compare draw by draw), ``--cache`` (features
kept between runs of the same settings).

    .venv/bin/python bench/rm_data_curve.py --round /tmp/prefloop-demo-round-XXXX \\
        [--train-tasks 54 72 90] [--overlaps 3] [--draws 12]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from apps.loop.scoring import score  # noqa: E402
from apps.loop.simulation import SimulatedRater  # noqa: E402
from apps.quality.measures import accuracy_weight  # noqa: E402
from trainer import models, reward  # noqa: E402
from trainer.contract import Ranking  # noqa: E402
from trainer.data import read_rankings  # noqa: E402
from trainer.evaluate import consensus_hits  # noqa: E402
from trainer.reward import choose_head, completion_features, fit_head, index_rankings  # noqa: E402

DEPTHS = [10, 15, 20, 25, 30]
L2S = [0.1, 0.3, 1.0, 3.0]


def round_tasks(root: Path) -> list[tuple[str, list[str]]]:
    """(prompt, answers) of every task in the kept round's snapshot rankings."""
    tasks: dict[tuple[str, int | None], list[str]] = {}
    for path in sorted(root.glob("**/rm/rankings-*.jsonl")):
        for ranking in read_rankings(str(path)):
            tasks.setdefault((ranking.prompt, ranking.task_id), ranking.completions)
    return [(prompt, answers) for (prompt, _), answers in tasks.items()]


def rate(tasks, overlap: int, seed: int) -> list[list[tuple[int, Ranking]]]:
    """Per task, ``overlap`` distinct simulated raters' (rater, ranking)."""
    rng = random.Random(seed)
    raters = [
        SimulatedRater(f"r{i}", rng.uniform(0.05, 0.25), i == 5, rng=random.Random(seed * 10 + i))
        for i in range(6)
    ]
    rated = []
    for task_id, (prompt, answers) in enumerate(tasks):
        rows = []
        for i in rng.sample(range(6), overlap):
            groups, _ = raters[i].rank(
                prompt, [{"id": j, "text": a} for j, a in enumerate(answers)]
            )
            rows.append((i, Ranking(prompt, answers, groups, task_id=task_id)))
        rated.append(rows)
    return rated


def weighted(rated, truth) -> list[list[Ranking]]:
    """The rankings with each rater's weight: accuracy_weight of its accuracy on the rule."""
    right: dict[int, int] = {}
    total: dict[int, int] = {}
    for rows in rated:
        for rater, ranking in rows:
            for winner, loser in ranking.strict_pairs():
                a = truth[(ranking.prompt, ranking.completions[winner])]
                b = truth[(ranking.prompt, ranking.completions[loser])]
                if a != b:
                    right[rater] = right.get(rater, 0) + (a > b)
                    total[rater] = total.get(rater, 0) + 1
    weight = {r: float(accuracy_weight(right.get(r, 0) / total[r])) for r in total}
    return [
        [
            Ranking(r.prompt, r.completions, r.ranking, weight.get(rater, 0.0), task_id=r.task_id)
            for rater, r in rows
        ]
        for rows in rated
    ]


def rule_accuracy(held: list[Ranking], score_of, truth) -> float:
    """Of the held-out tasks' answer pairs the rule orders, the share ``score_of`` orders so."""
    right = pairs = 0
    for ranking in {(r.prompt, r.task_id): r for r in held}.values():
        answers = ranking.completions
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                a, b = truth[(ranking.prompt, answers[i])], truth[(ranking.prompt, answers[j])]
                if a != b:
                    pairs += 1
                    ours = score_of(ranking.prompt, answers[i]) - score_of(
                        ranking.prompt, answers[j]
                    )
                    right += (ours > 0) == (a > b) and ours != 0
    return right / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=Path, required=True, help="a kept demo round's directory")
    parser.add_argument("--model", default=models.DEFAULT_BASE_DIR)
    parser.add_argument("--train-tasks", type=int, nargs="+", default=[54, 72, 90])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[3])
    parser.add_argument("--held-out", type=int, default=18)
    parser.add_argument(
        "--held-out-overlaps",
        type=int,
        nargs="+",
        default=None,
        help="raters per held-out task (default: each --overlaps value): the yardstick's size",
    )
    parser.add_argument(
        "--pairs",
        action="store_true",
        help="also let the head read two depths at once (each pair of depths, concatenated)",
    )
    parser.add_argument("--draws", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the trunk's features here between runs"
    )
    parser.add_argument("--precision", default="fp32", help="of the feature pass: fp32 or bf16")
    parser.add_argument(
        "--whole-rows",
        action="store_true",
        help="run every row whole in the feature pass (default: each prompt once, as the RM stage)",
    )
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    tasks = round_tasks(args.round)
    if len(tasks) < args.held_out + max(args.train_tasks):
        parser.error(f"{len(tasks)} tasks: fewer than --held-out + the largest --train-tasks")
    texts = sorted({(p, a) for p, answers in tasks for a in answers})
    row_of = {text: i for i, text in enumerate(texts)}
    truth = {text: score(*text) for text in texts}
    started = time.perf_counter()
    if args.cache and args.cache.exists():
        features = torch.load(args.cache)
    else:
        model, tokenizer = models.load_scalar_model(args.model)
        reward.SHARE_PROMPTS = not args.whole_rows
        features = completion_features(
            model, tokenizer, texts, DEPTHS, "mean", 160, 16, args.precision
        )
        if args.cache:
            torch.save(features, args.cache)
    feature_seconds = time.perf_counter() - started
    if args.pairs:
        features |= {
            f"{a}+{b}": torch.cat([features[a], features[b]], dim=1)
            for i, a in enumerate(DEPTHS)
            for b in DEPTHS[i + 1 :]
        }
    torch.set_num_threads(1)
    results = []
    settings = [
        (overlap, held_overlap, train_tasks)
        for overlap in args.overlaps
        for held_overlap in args.held_out_overlaps or [overlap]
        for train_tasks in args.train_tasks
    ]
    for overlap, held_overlap, train_tasks in settings:
        consensus, rule, chosen = [], [], []
        for draw in range(args.draws):
            # each task's raters in a random order: the first `overlap` (or, on a
            # held-out task, `held_overlap`) of them rate it
            rated = weighted(rate(tasks, max(overlap, held_overlap), 1000 + draw), truth)
            order = list(range(len(tasks)))
            random.Random(draw).shuffle(order)
            held = [r for t in order[: args.held_out] for r in rated[t][:held_overlap]]
            train = [r for t in order[args.held_out :][:train_tasks] for r in rated[t][:overlap]]
            index = index_rankings(train, row_of)
            depth, l2, _ = choose_head(features, index, L2S, 3, draw)
            chosen.append(str(depth))
            scores = features[depth] @ fit_head(features[depth], index, l2)

            def score_of(prompt, answer, scores=scores):
                return float(scores[row_of[(prompt, answer)]])

            hits, counts = consensus_hits(held, score_of)
            consensus.append(sum(hits) / sum(counts))
            rule.append(rule_accuracy(held, score_of, truth))
        row = {
            "overlap": overlap,
            "held_out_overlap": held_overlap,
            "train_tasks": train_tasks,
            "consensus_mean": round(statistics.mean(consensus), 4),
            "consensus_se": round(statistics.stdev(consensus) / math.sqrt(len(consensus)), 4),
            "consensus_at_least_0_70": sum(c >= 0.70 for c in consensus),
            "rule_mean": round(statistics.mean(rule), 4),
            "draws": len(consensus),
            "consensus_by_draw": [round(c, 4) for c in consensus],
            "depths_chosen": chosen,
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "round": str(args.round),
        "tasks": len(tasks),
        "answers": len(texts),
        "held_out_tasks": args.held_out,
        "feature_seconds": round(feature_seconds, 1),
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
