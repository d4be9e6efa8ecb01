"""How much can dynamic overlap save on bench/adaptive_collection.py's crowd at all? Pure numpy.

A replica of part (a) of bench/adaptive_collection.py without the database: the same pairs,
the same raters (noise drawn in the same order, each opinion of a pair from the same seed),
the same turns, the engine's order (highest priority, then lowest id; never a task twice to
one rater; never more judgments than the allowance) and the same rule (when a task's
allowance fills, complete it if the posterior of its order reaches the target, else one more
rater up to the maximum), with the raters' weights refreshed every 100 judgments. For fixed
overlap it reproduces the engine's arms judgment for judgment, so it can afford what the
engine cannot in a minute: 40 seeds, many settings, and raters whose truth it knows.

Three ways to weigh a rater's vote (the consensus is the weighted vote, as the quality
module's Bradley–Terry consensus is for K = 2):
- `skill`: what PrefLoop ships (apps/quality: the one-coin skill fitted to rater-pair
  agreement, measures.skill_reliability), from the judgments so far;
- `oracle`: each rater's true accuracy on these pairs (known only here), in the same
  one-coin posterior: the best any reliability estimate could do;
- `bayes`: the exact posterior of the pair's order given the votes, knowing every rater's
  noise and the distribution of the pairs' true gaps (a Thurstone model that knows that
  agreement means an easy pair): the best any stopping rule on these votes could do.

    .venv/bin/python bench/adaptive_overlap_bound.py             # 40 seeds x 160 pairs
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.special import log_ndtr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptive_collection import (  # noqa: E402  (the bench's pairs and crowd)
    ADVERSARIAL,
    HONEST,
    NOISE,
    REFRESH_EVERY,
    RESULTS,
    load_pairs,
)

from apps.quality import rater_pairs  # noqa: E402
from apps.quality.measures import skill_reliability  # noqa: E402

RATERS = HONEST + ADVERSARIAL
PRIOR = float(np.log(3))  # an unmeasured rater's weight (accuracy 0.75)


def crowd(seed: int) -> tuple[list[float], np.ndarray]:
    """Each rater's noise (drawn as bench/adaptive_collection.py draws it) and sign."""
    rng = random.Random(seed)
    noise = [rng.uniform(*NOISE) for _ in range(RATERS)]
    return noise, np.array([1.0] * HONEST + [-1.0] * ADVERSARIAL)


def opinion(seed: int, rater: int, prompt: str, gap: float, noise: float, sign: float) -> int:
    """+1 when the rater puts the first answer above the second: the bench's SimulatedRater
    with its opinion of this pair seeded by (rater, pair), as in the bench."""
    rng = random.Random((seed * 1000 + rater) * 1_000_003 + zlib.crc32(prompt.encode()))
    first, second = rng.gauss(0.0, noise), rng.gauss(0.0, noise)
    return 1 if sign * gap + first - second > 0 else -1


def skill_weights(votes: dict[int, list[tuple[int, int]]]) -> np.ndarray:
    """The shipped weights: rater-pair agreement → one-coin skill → skill_reliability."""
    raters, tasks, prefs = [], [], []
    for task, cast in votes.items():
        for rater, vote in cast:
            raters.append(rater + 1)
            tasks.append(task)
            prefs.append(vote)
    if not raters:
        return np.full(RATERS, PRIOR)
    pref = np.array(prefs, dtype=np.int8)[:, None]
    sums = rater_pairs.pair_sums(
        np.array(raters), np.array(tasks), pref, np.ones_like(pref, dtype=bool)
    )
    fitted = rater_pairs.reliable_agreement(sums, np.arange(1, RATERS + 1))
    return skill_reliability(fitted["skill"], fitted["comparisons"])


def oracle_weights(gaps: np.ndarray, noise: list[float], sign: np.ndarray) -> np.ndarray:
    """Log-odds of each rater's true accuracy over the pairs (clipped as the shipped ones)."""
    from scipy.stats import norm

    accuracy = np.array([norm.cdf(np.abs(gaps) / (s * np.sqrt(2))).mean() for s in noise])
    accuracy = np.where(sign > 0, accuracy, 1 - accuracy)
    accuracy = np.clip(accuracy, 0.5, 0.98)
    return np.log(accuracy / (1 - accuracy))


def bayes_log_odds(cast, noise, sign, grid: np.ndarray) -> float:
    """log P(first better | votes) / P(second better | votes) over the empirical gaps
    (symmetric), each vote's likelihood Φ(v · sign · d / (σ√2)); adversarial votes are
    left out, as the shipped weights leave them out (weight 0)."""
    log_likelihood = np.zeros(grid.size)
    for rater, vote in cast:
        if sign[rater] > 0:
            log_likelihood += log_ndtr(vote * grid / (noise[rater] * np.sqrt(2)))
    top = log_likelihood.max()
    mass = np.exp(log_likelihood - top)
    better, worse = mass[grid > 0].sum(), mass[grid < 0].sum()
    return float(np.log(better) - np.log(worse)) if better > 0 and worse > 0 else 0.0


def run(
    pairs,
    gaps_all,
    seed: int,
    n_tasks: int,
    low: int,
    high: int,
    target: float,
    how: str,
    route: float | None = None,
):
    """One arm: (judgments per task, consensus accuracy against the rule). With `route`, a
    rater whose weight is below that quantile of the raters' weights gets only a task's
    first `low` slots, never an extra one (what the engine does not do)."""
    chosen = random.Random(seed).sample(range(len(pairs)), n_tasks)
    gap = gaps_all[chosen]
    prompts = [pairs[i].prompt for i in chosen]
    noise, sign = crowd(seed)
    turns = random.Random(seed)
    allowance = [low] * n_tasks
    votes: dict[int, list[tuple[int, int]]] = {t: [] for t in range(n_tasks)}
    is_open = [True] * n_tasks
    grid = np.concatenate([np.abs(gaps_all[gaps_all != 0]), -np.abs(gaps_all[gaps_all != 0])])
    fixed_weights = oracle_weights(gaps_all[gaps_all != 0], noise, sign)
    weights = fixed_weights if how == "oracle" else np.full(RATERS, PRIOR)

    def log_odds(task: int) -> float:
        if how == "bayes":
            return bayes_log_odds(votes[task], noise, sign, grid)
        return float(sum(weights[r] * v for r, v in votes[task]))

    done, idle = 0, set()
    while len(idle) < RATERS:
        rater = turns.randrange(RATERS)
        if rater in idle:
            continue
        extra_ok = route is None or weights[rater] >= np.quantile(weights, route)
        task = next(
            (
                t
                for t in range(n_tasks)
                if is_open[t]
                and len(votes[t]) < allowance[t]
                and all(r != rater for r, _ in votes[t])
                and (extra_ok or len(votes[t]) < low)
            ),
            None,
        )
        if task is None:
            idle.add(rater)
            continue
        vote = opinion(seed, rater, prompts[task], gap[task], noise[rater], sign[rater])
        votes[task].append((rater, vote))
        done += 1
        idle.clear()
        if len(votes[task]) >= allowance[task]:
            sure = 1 / (1 + np.exp(-abs(log_odds(task))))
            if sure >= target or allowance[task] >= high:
                is_open[task] = False
            else:
                allowance[task] += 1
        if how == "skill" and done % REFRESH_EVERY == 0:
            weights = skill_weights(votes)
    if how == "skill":
        weights = skill_weights(votes)
    right = counted = 0.0
    for task in range(n_tasks):
        if gap[task] == 0:
            continue
        counted += 1
        score = log_odds(task)
        right += 0.5 if score == 0 else float((score > 0) == (gap[task] > 0))
    return done / n_tasks, right / counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--tasks", type=int, default=160)
    parser.add_argument("--out", type=Path, default=RESULTS / "bound.json")
    parser.add_argument(
        "--route",
        type=float,
        help="instead: the shipped weights with extra slots only for raters at or above "
        "this quantile of the weights (0.5: the better half)",
    )
    args = parser.parse_args(argv)
    if args.route is not None:
        return routed(args)
    started = time.perf_counter()
    pairs = load_pairs()
    gaps = np.array([p.truth[0] - p.truth[1] for p in pairs])
    seeds = range(args.seeds)
    arms = [(f"fixed {n}", n, n, 2.0) for n in (1, 2, 3, 4, 5)]
    arms += [
        (f"dynamic {low}-{high} at {target}", low, high, target)
        for low, high in ((1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5))
        for target in (0.7, 0.8, 0.9, 0.95)
    ]
    rows = []
    for how in ("skill", "oracle", "bayes"):
        base = None
        for name, low, high, target in arms:
            if how == "bayes" and low != high and target == 0.95:
                continue  # slow (a posterior over 4,600 gaps per decision), and no cheaper
            runs = [run(pairs, gaps, s, args.tasks, low, high, target, how) for s in seeds]
            per_task = float(np.mean([r[0] for r in runs]))
            accuracy = float(np.mean([r[1] for r in runs]))
            if name == "fixed 3":
                base = accuracy
            row = {"weights": how, "arm": name, "per_task": per_task, "accuracy": accuracy}
            if base is not None and low != high:
                row["saving_vs_fixed3"] = 1 - per_task / 3
                row["gap_vs_fixed3"] = accuracy - base
            rows.append(row)
            print(
                f"{how:7} {name:26} {per_task:5.2f} per task  accuracy {accuracy:.4f}"
                + (
                    f"  ({row['saving_vs_fixed3']:.1%} fewer judgments than fixed 3, "
                    f"accuracy {row['gap_vs_fixed3']:+.4f})"
                    if "saving_vs_fixed3" in row
                    else ""
                ),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"seeds": args.seeds, "tasks_per_seed": args.tasks, "rows": rows}, indent=1)
    )
    print(f"{time.perf_counter() - started:.0f} s; wrote {args.out}")
    return 0


def routed(args) -> int:
    """Would serving extra slots only to the better raters reach the target?"""
    pairs = load_pairs()
    gaps = np.array([p.truth[0] - p.truth[1] for p in pairs])
    seeds = range(args.seeds)
    base = np.mean([run(pairs, gaps, s, args.tasks, 3, 3, 2.0, "skill")[1] for s in seeds])
    print(f"fixed 3: accuracy {base:.4f}")
    for low, high, target in ((1, 3, 0.8), (1, 3, 0.85), (1, 4, 0.8), (2, 4, 0.7)):
        runs = [
            run(pairs, gaps, s, args.tasks, low, high, target, "skill", args.route) for s in seeds
        ]
        per_task = float(np.mean([r[0] for r in runs]))
        accuracy = float(np.mean([r[1] for r in runs]))
        print(
            f"routed {low}-{high} at {target}: {per_task:.2f} per task, accuracy {accuracy:.4f}"
            f" ({1 - per_task / 3:.1%} fewer judgments than fixed 3, {accuracy - base:+.4f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
