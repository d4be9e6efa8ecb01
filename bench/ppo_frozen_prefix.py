"""PPO steps on SmolLM2-135M-Instruct with the frozen prefix run once per step, with and
without each prompt's K samples sharing its prompt's pass, against whole forward passes every
time (trainer/prefix.py), in the same run, alternating.

The demo round's PPO settings (`cpu-demo`: 16 rollouts of 4 prompts × 4 answers, 32 new tokens,
LoRA r 8 on the last 8 of 30 layers, its adapters off as the reference, RLOO, 2 epochs of 2
minibatches, precision `auto`) on the demo's training prompts. The reward is the hidden rule
(`--score-fn`, a registered scorer) or a trained reward model (`--reward-model DIR`, e.g. a
round's `rm/model`), the same in every arm. Arms (`--arms`): `shared` (the prefix once per
step, each distinct prompt once per pass: what PPO runs), `cached` (the prefix once per step,
every row whole above it) and `whole`. Reports each arm's median step time (the first step of a
run left out: it pays for warm-up), its phases (rollout, scoring, log-probabilities, updates)
and the ratios to `whole`, and checks that the arms gave the same first-step scores (the same
rollouts).

    .venv/bin/python bench/ppo_frozen_prefix.py [--steps 6] [--repeats 2] [--reward-model DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import ppo  # noqa: E402
from trainer.data import write_jsonl  # noqa: E402
from trainer.ppo import PPOConfig, train_ppo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_PROMPTS = ROOT / "apps/collection/demo/prompts.jsonl"
SMOLLM2 = ROOT / "var/models/smollm2-135m-instruct"


ARMS = {"shared": (True, True), "cached": (True, False), "whole": (False, False)}
PHASES = ("rollout", "score", "logprob", "update")


def arm(name: str, args, prompts: Path, out: Path) -> list[dict]:
    ppo.CACHE_FROZEN_PREFIX, ppo.SHARE_PROMPTS = ARMS[name]
    config = PPOConfig(
        policy=str(args.policy),
        reference=str(args.reference or args.policy),
        prompts=str(prompts),
        out=str(out),
        reward_model=str(args.reward_model) if args.reward_model else None,
        score_fn=None if args.reward_model else args.score_fn,
        batch_size=16,
        mini_batch_size=8,
        samples_per_prompt=4,
        advantage="rloo",
        ppo_epochs=2,
        lr=1e-3,
        max_new_tokens=32,
        lora_r=8,
        lora_layers=8,
        adaptive_kl=True,
        kl_target=6.0,
        total_steps=args.steps,
        precision=args.precision,
        threads=args.threads,
        save_every=0,
        seed=args.seed,
    )
    train_ppo(config)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=SMOLLM2)
    parser.add_argument(
        "--prompts", type=Path, default=DEMO_PROMPTS, help="prompts JSONL (its train split)"
    )
    parser.add_argument(
        "--arms", default="shared,cached,whole", help="a comma list of: " + ", ".join(ARMS)
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="a separate reference model (round 2: the base, with --policy round 1's policy)",
    )
    parser.add_argument("--reward-model", type=Path)
    parser.add_argument("--score-fn", default="hidden_rule")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if not args.policy.is_dir():
        print(f"no model at {args.policy}: run `.venv/bin/python -m trainer bootstrap`")
        return 1
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    arms = [name for name in args.arms.split(",") if name in ARMS]
    if not arms:
        parser.error(f"--arms: choose among {', '.join(ARMS)}")
    times: dict[str, list[float]] = {name: [] for name in arms}
    phases: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PHASES} for name in arms}
    scores: dict[str, list[list[float]]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        write_jsonl(
            prompts,
            [
                {"id": r["id"], "prompt": r["prompt"], "split": "train"}
                for r in rows
                if r["split"] == "train"
            ],
        )
        for repeat in range(args.repeats):
            for name in arms:
                metrics = arm(name, args, prompts, Path(tmp) / f"{name}-{repeat}")
                seconds = [m["step_seconds"] for m in metrics[1:]]
                times[name] += seconds
                for phase in PHASES:
                    phases[name][phase] += [m[f"{phase}_seconds"] for m in metrics[1:]]
                scores[name].append([round(m["score"], 4) for m in metrics])
                print(
                    f"{name:7} run {repeat + 1}: steps 2-{args.steps} "
                    f"{statistics.median(seconds):.2f} s median "
                    f"({', '.join(f'{s:.1f}' for s in seconds)}); threads "
                    f"{metrics[-1]['threads']}",
                    flush=True,
                )
    median = {name: statistics.median(times[name]) for name in arms}
    phase_median = {
        name: {p: round(statistics.median(v), 2) for p, v in phases[name].items()} for name in arms
    }
    for name in arms:
        ratio = f", {median['whole'] / median[name]:.2f}x whole" if "whole" in median else ""
        print(f"median step {name}: {median[name]:.2f} s{ratio}; phases {phase_median[name]}")
    # the first step starts from the same weights in every arm: the same rollouts and scores
    same = len({tuple(s[0][:1]) for s in scores.values()}) == 1
    print(f"the same first-step scores in every arm: {same}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "step_seconds": times,
                    "phases": phase_median,
                    "scores": scores,
                    "median": median,
                    "same_first_scores": same,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
