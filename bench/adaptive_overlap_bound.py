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
  agreement means an easy pair): the best posterior on these votes (thresholding it is
  not the best stopping rule, though: see BENCHMARKS.md, "Strength of preference").

With a strength of preference: every rater also says how much better the answer they put
first is, 1 slightly / 2 clearly / 3 much better, cut at STRENGTH_THRESHOLDS from the gap
*they* perceive (the rule's gap plus their noise; an adversarial rater the strength of their
inverted opinion). Four more weightings read it:
- `strength`: a weight per (rater, level), the one-coin skill of each level fitted to
  agreement as `skill` is (bench/strength_votes.py);
- `strength-oracle`: each rater's true accuracy at each level (known only here);
- `strength-bayes`: the exact posterior with the strengths' likelihoods (`--futility`: also
  complete a task when one more vote is expected to add less than that to the chance its
  order is right);
- `graded`: a graded response model (ordered probit per rater, learned prior of the gaps)
  fitted by EM to the votes so far (bench/graded_response.py).
`--warmup N` lets the raters come measured: N other pairs at fixed overlap 3 first, their
votes in every weight refit, not in the arms' cost or accuracy.

    .venv/bin/python bench/adaptive_overlap_bound.py             # 40 seeds x 160 pairs
    .venv/bin/python bench/adaptive_overlap_bound.py --seeds 80 --weights skill,strength \
        --ranges 1-3,1-4 --targets 0.8,0.85,0.9 --warmup 160     # measured raters
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
import graded_response as graded  # noqa: E402
from adaptive_collection import (  # noqa: E402  (the bench's pairs and crowd)
    ADVERSARIAL,
    HONEST,
    NOISE,
    REFRESH_EVERY,
    RESULTS,
    load_pairs,
)
from strength_votes import STRENGTH_LEVELS, level_skills, strength_weights  # noqa: E402

from apps.quality import rater_pairs  # noqa: E402
from apps.quality.measures import skill_reliability  # noqa: E402

# A simulated rater says "slightly better" (1) below the first gap it perceives on the
# hidden rule's scale, "clearly" (2) below the second, "much better" (3) above: the rule's
# gaps on these pairs have quartiles 0.08 / 0.19 / 0.60.
STRENGTH_THRESHOLDS = (0.15, 0.5)
RATERS = HONEST + ADVERSARIAL
PRIOR = float(np.log(3))  # an unmeasured rater's weight (accuracy 0.75)
WEIGHTINGS = (
    "skill",
    "oracle",
    "bayes",
    "strength",
    "strength-oracle",
    "strength-bayes",
    "graded",
)


def crowd(seed: int) -> tuple[list[float], np.ndarray]:
    """Each rater's noise (drawn as bench/adaptive_collection.py draws it) and sign."""
    rng = random.Random(seed)
    noise = [rng.uniform(*NOISE) for _ in range(RATERS)]
    return noise, np.array([1.0] * HONEST + [-1.0] * ADVERSARIAL)


def perceived_strength(perceived_gap: float) -> int:
    """The strength of preference (1-3) a simulated rater reports for the gap it perceives
    (the rule's gap plus its own noise: the truth never enters alone)."""
    return 1 + sum(abs(perceived_gap) >= threshold for threshold in STRENGTH_THRESHOLDS)


def opinion(
    seed: int, rater: int, prompt: str, gap: float, noise: float, sign: float
) -> tuple[int, int]:
    """(+1 when the rater puts the first answer above the second, the strength they report):
    the bench's SimulatedRater with its opinion of this pair seeded by (rater, pair), as in
    the bench. The strength is the size of the gap the rater perceives (their own noise
    included, the truth never), cut at STRENGTH_THRESHOLDS; an adversarial rater reports the
    strength of their inverted opinion."""
    rng = random.Random((seed * 1000 + rater) * 1_000_003 + zlib.crc32(prompt.encode()))
    first, second = rng.gauss(0.0, noise), rng.gauss(0.0, noise)
    perceived = sign * gap + first - second
    return (1 if perceived > 0 else -1), perceived_strength(perceived)


Votes = dict[int, list[tuple[int, int, int]]]  # task -> [(rater, vote, strength)]


def vote_columns(votes: Votes):
    """The votes as the quality module's columns: rater ids (1-based), task, pref and
    strength (n, 1)."""
    cast = [
        (rater + 1, task, vote, level) for task, row in votes.items() for rater, vote, level in row
    ]
    rater, task, pref, level = (np.array(column) for column in zip(*cast, strict=True))
    return rater, task, pref.astype(np.int8)[:, None], level.astype(np.int8)[:, None]


def skill_weights(votes: Votes) -> np.ndarray:
    """The shipped weights: rater-pair agreement → one-coin skill → skill_reliability."""
    if not any(votes.values()):
        return np.full(RATERS, PRIOR)
    raters, tasks, pref, _ = vote_columns(votes)
    sums = rater_pairs.pair_sums(raters, tasks, pref, np.ones_like(pref, dtype=bool))
    fitted = rater_pairs.reliable_agreement(sums, np.arange(1, RATERS + 1))
    return skill_reliability(fitted["skill"], fitted["comparisons"])


def level_weights(votes: Votes) -> np.ndarray:
    """(RATERS, levels + 1) weights of a vote by rater and strength: the quality module's
    per-(rater, level) one-coin skill (apps/quality/strength.py), shrunk toward the rater's
    own skill weight."""
    rater_weight = skill_weights(votes)
    table = np.repeat(rater_weight[:, None], STRENGTH_LEVELS + 1, axis=1)
    if not any(votes.values()):
        return table
    raters, tasks, pref, level = vote_columns(votes)
    fitted = level_skills(raters, tasks, pref, np.ones_like(pref, dtype=bool), level)
    rows = fitted["raters"] - 1
    table[rows] = strength_weights(fitted["skill"], fitted["comparisons"], rater_weight[rows])
    return table


def interval_edges() -> np.ndarray:
    """The perceived-gap edges of the strength levels: level l is [edges[l-1], edges[l])."""
    return np.array([0.0, *STRENGTH_THRESHOLDS, np.inf])


def level_likelihoods(gaps: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """P(right vote at level l | |gap|) and P(wrong vote at level l | |gap|), each
    (gaps, levels + 1) (column 0 unused), for a rater whose perceived gap is the true one
    plus N(0, 2σ²)."""
    from scipy.stats import norm

    edges = interval_edges()
    spread = noise * np.sqrt(2)
    size = np.abs(gaps)[:, None]
    low, high = edges[None, :-1], edges[None, 1:]
    right = norm.cdf((high - size) / spread) - norm.cdf((low - size) / spread)
    wrong = norm.cdf((-low - size) / spread) - norm.cdf((-high - size) / spread)
    pad = np.zeros((gaps.size, 1))
    return np.hstack([pad, right]), np.hstack([pad, wrong])


def oracle_level_weights(gaps: np.ndarray, noise: list[float], sign: np.ndarray) -> np.ndarray:
    """Log-odds of each rater's true accuracy at each strength level over the pairs."""
    table = np.zeros((RATERS, STRENGTH_LEVELS + 1))
    table[:, 0] = oracle_weights(gaps, noise, sign)
    for rater, sigma in enumerate(noise):
        right, wrong = level_likelihoods(gaps, sigma)
        accuracy = right.sum(0)[1:] / np.maximum(right.sum(0)[1:] + wrong.sum(0)[1:], 1e-300)
        accuracy = accuracy if sign[rater] > 0 else 1 - accuracy
        accuracy = np.clip(accuracy, 0.5, 0.98)
        table[rater, 1:] = np.log(accuracy / (1 - accuracy))
    return table


def oracle_weights(gaps: np.ndarray, noise: list[float], sign: np.ndarray) -> np.ndarray:
    """Log-odds of each rater's true accuracy over the pairs (clipped as the shipped ones)."""
    from scipy.stats import norm

    accuracy = np.array([norm.cdf(np.abs(gaps) / (s * np.sqrt(2))).mean() for s in noise])
    accuracy = np.where(sign > 0, accuracy, 1 - accuracy)
    accuracy = np.clip(accuracy, 0.5, 0.98)
    return np.log(accuracy / (1 - accuracy))


def expected_gain(cast, noise, sign, grid) -> float:
    """How much one more vote (of a rater drawn at random among those not on the task; an
    adversarial one adds nothing) is expected to raise the chance that the consensus is
    right, under the exact posterior with strengths: the value of the next judgment, small
    on a clear pair already settled and on a near tie no vote will settle."""
    log_likelihood = np.zeros(grid.size)
    for rater, vote, level in cast:
        if sign[rater] > 0:
            log_right, log_wrong = _tables(grid, noise[rater])
            log_likelihood += np.where(
                np.sign(grid) == vote, log_right[:, level], log_wrong[:, level]
            )
    posterior = np.exp(log_likelihood - log_likelihood.max())
    posterior /= posterior.sum()
    positive = grid > 0
    now = max(posterior[positive].sum(), 1 - posterior[positive].sum())
    gains = []
    on_task = {rater for rater, _, _ in cast}
    for rater in range(RATERS):
        if rater in on_task:
            continue
        if sign[rater] <= 0:
            gains.append(0.0)
            continue
        log_right, log_wrong = _tables(grid, noise[rater])
        after = 0.0
        for vote in (1, -1):
            for level in range(1, STRENGTH_LEVELS + 1):
                like = np.exp(
                    np.where(np.sign(grid) == vote, log_right[:, level], log_wrong[:, level])
                )
                joint = posterior * like
                mass = joint.sum()
                if mass > 0:
                    up = joint[positive].sum()
                    after += max(up, mass - up)
        gains.append(after - now)
    return float(np.mean(gains)) if gains else 0.0


def _tables(grid, sigma):
    """log P(right vote at each level | gap) and log P(wrong ...), per rater noise, cached."""
    key = (id(grid), sigma)
    if key not in _LIKELIHOODS:
        right, wrong = level_likelihoods(grid, sigma)
        _LIKELIHOODS[key] = (np.log(np.maximum(right, 1e-300)), np.log(np.maximum(wrong, 1e-300)))
    return _LIKELIHOODS[key]


_LIKELIHOODS: dict = {}  # (grid, σ) -> log P(vote at each level | gap), right and wrong


def bayes_log_odds(cast, noise, sign, grid: np.ndarray, strengths: bool = False) -> float:
    """log P(first better | votes) / P(second better | votes) over the empirical gaps
    (symmetric), each vote's likelihood Φ(v · sign · d / (σ√2)) — or with `strengths`, the
    chance that the perceived gap falls in the vote's level's interval on its side;
    adversarial votes are left out, as the shipped weights leave them out (weight 0)."""
    log_likelihood = np.zeros(grid.size)
    for rater, vote, level in cast:
        if sign[rater] <= 0:
            continue
        if strengths:
            log_right, log_wrong = _tables(grid, noise[rater])
            agrees = np.sign(grid) == vote
            log_likelihood += np.where(agrees, log_right[:, level], log_wrong[:, level])
        else:
            log_likelihood += log_ndtr(vote * grid / (noise[rater] * np.sqrt(2)))
    top = log_likelihood.max()
    mass = np.exp(log_likelihood - top)
    better, worse = mass[grid > 0].sum(), mass[grid < 0].sum()
    return float(np.log(better) - np.log(worse)) if better > 0 and worse > 0 else 0.0


def warmup_votes(pairs, gaps_all, seed, taken: set, n: int, noise, sign) -> Votes:
    """Votes of the crowd on `n` pairs outside the arm's (three raters each, at random), kept
    under negative task keys so they never mix with the arm's tasks."""
    rng = random.Random(20_000 + seed)
    others = [i for i in range(len(pairs)) if i not in taken]
    history: Votes = {}
    for k, index in enumerate(rng.sample(others, n)):
        cast = []
        for rater in rng.sample(range(RATERS), 3):
            vote, level = opinion(
                seed, rater, pairs[index].prompt, gaps_all[index], noise[rater], sign[rater]
            )
            cast.append((rater, vote, level))
        history[-1 - k] = cast
    return history


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
    futility: float = 0.0,
    trace: list | None = None,
    warmup: int = 0,
    recheck: bool = False,
    refresh_every: int = REFRESH_EVERY,
):
    """One arm: (judgments per task, consensus accuracy against the rule). With `route`, a
    rater whose weight is below that quantile of the raters' weights gets only a task's
    first `low` slots, never an extra one (what the engine does not do). `how` is one of
    WEIGHTINGS; the strength-* ones use each vote's strength, the others ignore it. With
    `futility` > 0 and `strength-bayes` or `graded`, a full task also completes when one
    more judgment is expected to raise the chance that its order is right by less than
    that. With `warmup` > 0 the raters come measured: before the arm, they judged that
    many other pairs at fixed overlap 3 (the same pairs and raters in every arm of a seed),
    and those judgments count in every refit of the weights, not in the arm's cost or
    accuracy. With `recheck`, every refit of the weights looks again at the tasks completed
    as sure enough: one that the new weights leave below the target reopens for one more
    rater (up to the maximum). Weights are refitted every `refresh_every` judgments."""
    chosen = random.Random(seed).sample(range(len(pairs)), n_tasks)
    gap = gaps_all[chosen]
    prompts = [pairs[i].prompt for i in chosen]
    noise, sign = crowd(seed)
    turns = random.Random(seed)
    allowance = [low] * n_tasks
    votes: Votes = {t: [] for t in range(n_tasks)}
    is_open = [True] * n_tasks
    grid = np.concatenate([np.abs(gaps_all[gaps_all != 0]), -np.abs(gaps_all[gaps_all != 0])])
    if how == "oracle":
        weights = oracle_weights(gaps_all[gaps_all != 0], noise, sign)
    elif how == "strength-oracle":
        weights = oracle_level_weights(gaps_all[gaps_all != 0], noise, sign)
    elif how == "strength":
        weights = np.full((RATERS, STRENGTH_LEVELS + 1), PRIOR)
    else:
        weights = np.full(RATERS, PRIOR)
    by_level = how in ("strength", "strength-oracle")
    refit = {"skill": skill_weights, "strength": level_weights}.get(how)
    if how == "graded":
        weights = graded.GradedModel.default(RATERS)

        def refit(votes: Votes) -> graded.GradedModel:
            cast = [(r, t, v, level) for t, row in votes.items() for r, v, level in row]
            r, t, v, level = (np.array(column) for column in zip(*cast, strict=True))
            return graded.fit(r, t, v, level, RATERS, start=weights)

    def log_odds(task: int) -> float:
        if how == "graded":
            p = min(max(graded.sign_posterior(weights, votes[task]), 1e-12), 1 - 1e-12)
            return float(np.log(p / (1 - p)))
        if how in ("bayes", "strength-bayes"):
            return bayes_log_odds(votes[task], noise, sign, grid, how == "strength-bayes")
        if by_level:
            return float(sum(weights[r, level] * v for r, v, level in votes[task]))
        return float(sum(weights[r] * v for r, v, _ in votes[task]))

    def rater_weight(rater: int) -> float:
        if how == "graded":
            return float(weights.alpha[rater])
        return float(weights[rater, 0] if by_level else weights[rater])

    history = warmup_votes(pairs, gaps_all, seed, set(chosen), warmup, noise, sign)
    if refit is not None and history:
        weights = refit(history)
    done, idle = 0, set()
    closed_sure: set[int] = set()

    def reopen_unsure() -> bool:
        reopened = False
        for task in sorted(closed_sure):
            if 1 / (1 + np.exp(-abs(log_odds(task)))) < target and allowance[task] < high:
                closed_sure.discard(task)
                is_open[task] = True
                allowance[task] += 1
                reopened = True
        return reopened

    def step(done: int, idle: set) -> tuple[int, bool]:
        """The next rater in turn takes a task: (judgments so far, whether one was cast)."""
        rater = turns.randrange(RATERS)
        if rater in idle:
            return done, False
        extra_ok = route is None or rater_weight(rater) >= np.quantile(
            [rater_weight(r) for r in range(RATERS)], route
        )
        task = next(
            (
                t
                for t in range(n_tasks)
                if is_open[t]
                and len(votes[t]) < allowance[t]
                and all(r != rater for r, _, _ in votes[t])
                and (extra_ok or len(votes[t]) < low)
            ),
            None,
        )
        if task is None:
            idle.add(rater)
            return done, False
        vote, level = opinion(seed, rater, prompts[task], gap[task], noise[rater], sign[rater])
        votes[task].append((rater, vote, level))
        done += 1
        idle.clear()
        if len(votes[task]) >= allowance[task]:
            sure = 1 / (1 + np.exp(-abs(log_odds(task))))
            futile = futility > 0 and (
                (
                    how == "strength-bayes"
                    and expected_gain(votes[task], noise, sign, grid) < futility
                )
                or (
                    how == "graded"
                    and graded.expected_gain(
                        weights,
                        votes[task],
                        [r for r in range(RATERS) if all(r != v[0] for v in votes[task])],
                    )
                    < futility
                )
            )
            if sure >= target or futile or allowance[task] >= high:
                is_open[task] = False
                if sure >= target:
                    closed_sure.add(task)
                if trace is not None:  # (judgments so far, votes, sureness, right?)
                    right = np.sign(log_odds(task)) == np.sign(gap[task])
                    trace.append((done, len(votes[task]), sure, bool(right), gap[task]))
            else:
                allowance[task] += 1
        return done, True

    while True:
        while len(idle) < RATERS:
            done, more = step(done, idle)
            if refit is not None and more and done % refresh_every == 0:
                weights = refit(votes | history)
                if recheck:
                    reopen_unsure()
        if refit is not None:
            weights = refit(votes | history)
        if not (recheck and reopen_unsure()):
            break
        idle.clear()
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
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here")
    parser.add_argument("--tasks", type=int, default=160)
    parser.add_argument("--out", type=Path, default=RESULTS / "bound.json")
    parser.add_argument(
        "--route",
        type=float,
        help="instead: the shipped weights with extra slots only for raters at or above "
        "this quantile of the weights (0.5: the better half)",
    )
    parser.add_argument(
        "--weights",
        default=",".join(WEIGHTINGS),
        help=f"comma-separated weightings to run, of {', '.join(WEIGHTINGS)}",
    )
    parser.add_argument(
        "--ranges",
        default="1-3,1-4,1-5,2-3,2-4,2-5",
        help="dynamic overlap ranges (start-maximum), comma-separated",
    )
    parser.add_argument(
        "--targets", default="0.7,0.8,0.9,0.95", help="confidence targets, comma-separated"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="raters come measured: this many other pairs at fixed overlap 3 first (their "
        "judgments count in the weights, not in the arms' cost or accuracy)",
    )
    parser.add_argument(
        "--futility",
        type=float,
        default=0.0,
        help="strength-bayes and graded: also complete a task when one more judgment is expected "
        "to raise the chance its order is right by less than this (e.g. 0.04)",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="each refit of the weights reopens, for one more rater, the tasks completed as "
        "sure enough that the new weights leave below the target",
    )
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=REFRESH_EVERY,
        help="refit the weights every this many judgments",
    )
    args = parser.parse_args(argv)
    if args.route is not None:
        return routed(args)
    started = time.perf_counter()
    pairs = load_pairs()
    gaps = np.array([p.truth[0] - p.truth[1] for p in pairs])
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    ranges = [tuple(int(n) for n in part.split("-")) for part in args.ranges.split(",")]
    arms = [(f"fixed {n}", n, n, 2.0) for n in (1, 2, 3, 4, 5)]
    arms += [
        (f"dynamic {low}-{high} at {target}", low, high, float(target))
        for low, high in ranges
        for target in args.targets.split(",")
    ]
    rows = []
    for how in args.weights.split(","):
        base = None
        for name, low, high, target in arms:
            if how == "bayes" and low != high and target == 0.95:
                continue  # slow (a posterior over 4,600 gaps per decision), and no cheaper
            runs = [
                run(
                    pairs,
                    gaps,
                    s,
                    args.tasks,
                    low,
                    high,
                    target,
                    how,
                    futility=args.futility,
                    warmup=args.warmup,
                    recheck=args.recheck,
                    refresh_every=args.refresh_every,
                )
                for s in seeds
            ]
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
        json.dumps(
            {
                "seeds": args.seeds,
                "tasks_per_seed": args.tasks,
                "strength_thresholds": list(STRENGTH_THRESHOLDS),
                "futility": args.futility,
                "warmup": args.warmup,
                "recheck": args.recheck,
                "refresh_every": args.refresh_every,
                "rows": rows,
            },
            indent=1,
        )
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
