"""Adaptive collection with raters of known truth: what dynamic overlap and uncertainty
selection save.

The real assignment engine (`assignment_next`, `judgment_submit`) and the real quality code
(statistics refresh → raters' weights, dynamic overlap's slot decider, the Bradley–Terry
consensus) run in process on PostgreSQL. The raters are `apps.loop.simulation.SimulatedRater`
(the demo's): each ranks by the hidden rule of apps/loop/scoring.py plus Gaussian noise of
its own size, uniform in [0.05, 0.4] as `manage.py simulate_raters` draws it (two such
raters agree on 71% of HH-RLHF pairs, close to InstructGPT's 72.6%); two more are
adversarial (they rank by the negated rule). The items are the 2,307 usable pairs of
HH-RLHF's harmless-base test split (../shared/data), answers to real prompts; the hidden
rule decides which answer is better (pairs it scores equal are left out of accuracies).
Raters take turns in a random order, each rater's opinion of a pair drawn from a seed of
(rater, pair) so that arms differ only in whom the engine asked; the statistics (and so the
weights) are refreshed every REFRESH_EVERY judgments, as the beat job does every 10 minutes
in production. Arms run in up to --jobs forked processes (2 by default).

(a) Dynamic overlap against fixed overlap 3, on the same tasks and raters: judgments spent,
    and the final consensus's pairwise accuracy against the hidden rule.
    Target: accuracy within 0.01 of fixed overlap 3 with at least 30% fewer judgments.
(b) Uncertainty against random selection. A candidate pool of prompts (one task each,
    overlap 1), and held-out prompts. Rounds of ROUND_JUDGMENTS judgments: before each, the
    open tasks' priorities are set from the current reward model's uncertainty
    (trainer/selection.py; the first round has no model and is random) or at random; the
    raters work through the queue by priority; the reward model is then refitted on every
    judgment so far (all alike: with overlap 1 no two raters share a task, so there is no
    reliability to weigh them by). The reward model is a cheap feature-based one: a linear
    Bradley–Terry model on generic text features (character classes, length, word overlap
    with the prompt, 128 hashed words); --heads N > 1 draws N heads from its Laplace
    posterior (an ensemble). Held-out accuracy against the hidden rule after each round.
    Target: uncertainty reaches random's accuracy at the full budget with at least 30%
    fewer judgments.

    .venv/bin/python bench/adaptive_collection.py --check    # exit 1 if a target is missed
    .venv/bin/python bench/adaptive_collection.py --sweep --seeds 10 --tasks 160 \
        --overlap-min 2 --overlap-max 4 --target 0.7 --pool 1500 --held-out 800 --budget 300
        # BENCHMARKS.md's run: numbers, JSON and PNG

The default size (5 seeds, 80 tasks per seed, a pool of 400 and 120 judgments per arm) is
the check's: a smoke test of the pipeline that fits in a minute, too small to measure a
one-point difference (the 95% interval of (a)'s gap over 5 seeds is about ±7 points).

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres); uses the database
`prefloop_adaptive` (created and migrated on first use; --fresh recreates it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import random
import re
import secrets
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("PREFLOOP_ADAPTIVE_DB", "prefloop_adaptive")  # two runs at once: two names
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
HH_PATH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
RESULTS = ROOT / "bench" / "results" / "adaptive-collection"
CHECK_RESULTS = ROOT / "var" / "bench" / "adaptive-collection-check"

os.environ.update(
    DJANGO_SETTINGS_MODULE="annotation_site.settings.production",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    SECRET_KEY=secrets.token_urlsafe(50),  # production settings want a real-looking key
    ALLOWED_HOSTS="127.0.0.1,localhost",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))

HONEST, ADVERSARIAL = 8, 2
NOISE = (0.05, 0.4)
REFRESH_EVERY = 100
TARGET_SAVING = 0.30
ACCURACY_SLACK = 0.01


@dataclass(frozen=True)
class Pair:
    prompt: str
    answers: tuple[str, str]
    truth: tuple[float, float]  # hidden-rule scores


def load_pairs() -> list[Pair]:
    from apps.loop.scoring import score
    from trainer.data import split_hh_rlhf

    pairs = []
    seen = set()
    with gzip.open(HH_PATH, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            split = split_hh_rlhf(row["chosen"], row["rejected"])
            if isinstance(split, str):
                continue
            prompt, chosen, rejected = (part.strip() for part in split)
            if prompt in seen:
                continue
            seen.add(prompt)
            pairs.append(
                Pair(prompt, (chosen, rejected), (score(prompt, chosen), score(prompt, rejected)))
            )
    return pairs


def ensure_database(fresh: bool) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if fresh and exists:
            conn.execute(f"DROP DATABASE {DB_NAME} WITH (FORCE)")
        if fresh or not exists:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        # A simulation, not a durability test: commits need not wait for the WAL flush,
        # which on a machine shared with other suites took most of the run's time.
        conn.execute(f"ALTER DATABASE {DB_NAME} SET synchronous_commit = off")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)  # quick when nothing is new


class Runner:
    """Runs jobs — (function, keyword arguments), each one arm of one seed on its own project
    and raters, so none sees another's rows — `workers` at a time in forked processes (each
    opens its own database connection). `submit` returns a function that waits for the
    results, in job order, so both parts' arms can share the workers."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers > 1:
            from django.db import connections

            connections.close_all()  # a forked child must not share the parent's socket
            context = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def submit(self, jobs: list[tuple[Callable, dict]]) -> Callable[[], list]:
        if self.pool is None:
            return lambda: [function(**kwargs) for function, kwargs in jobs]
        futures = [self.pool.submit(function, **kwargs) for function, kwargs in jobs]
        return lambda: [future.result() for future in futures]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# --- the simulated crowd on the real engine -------------------------------------------------


def make_raters(seed: int, tag: str):
    """HONEST + ADVERSARIAL (account, simulated behaviour, opinion seed) triples; each
    rater's noise level is drawn from the seed."""
    from django.contrib.auth import get_user_model

    from apps.accounts.services import rater_profile_get_or_create, user_roles_set
    from apps.core.roles import Role
    from apps.loop.simulation import SimulatedRater

    rng = random.Random(seed)
    crowd = []
    for index in range(HONEST + ADVERSARIAL):
        # No password (simulated raters never log in): hashing one costs more than a task.
        user = get_user_model().objects.create_user(
            username=f"{tag}-r{index}-{uuid.uuid4().hex[:6]}", password=None
        )
        user_roles_set(user=user, roles=[Role.LABELER])
        rater_profile_get_or_create(user=user)
        behaviour = SimulatedRater(
            username=user.username,
            noise=rng.uniform(*NOISE),
            adversarial=index >= HONEST,
            rng=random.Random(seed * 1000 + index),
        )
        crowd.append((user, behaviour, seed * 1000 + index))
    return crowd


def make_project(tag: str, **settings):
    from apps.collection.models import Project

    return Project.objects.create(
        name=tag, slug=f"{tag}-{uuid.uuid4().hex[:8]}", k=2, lease_seconds=3600, **settings
    )


def add_tasks(
    project, pairs: list[Pair], priority: int = 0, fixed_overlap: int | None = None
) -> dict[int, Pair]:
    """One ranking task per pair, written in bulk with the allowance `task_create` gives a
    ranking task of this project (dynamic overlap: start at `overlap`, at most
    `overlap_max`), or with `fixed_overlap` that fixed allowance (an explicit overlap)."""
    from apps.collection.models import Completion, Prompt, Task, TaskCompletion

    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, text=pair.prompt, text_sha256=uuid.uuid4().hex) for pair in pairs
    )
    completions = Completion.objects.bulk_create(
        Completion(prompt=prompt, text=text, source=Completion.Source.IMPORTED)
        for prompt, pair in zip(prompts, pairs, strict=True)
        for text in pair.answers
    )
    maximum = max(project.overlap_max, project.overlap) if project.dynamic_overlap else None
    if fixed_overlap is not None:
        maximum = None
    tasks = Task.objects.bulk_create(
        Task(
            project=project,
            prompt=prompt,
            overlap=fixed_overlap or project.overlap,
            max_overlap=maximum,
            priority=priority,
        )
        for prompt in prompts
    )
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=task, completion=completions[2 * i + j], position=j)
        for i, task in enumerate(tasks)
        for j in range(2)
    )
    return {task.pk: pair for task, pair in zip(tasks, pairs, strict=True)}


def work(project, crowd, rng: random.Random, *, budget: int | None = None, refresh=True) -> int:
    """Raters take turns (random order) until nothing is left for anyone or `budget`
    judgments are in. The statistics are refreshed every REFRESH_EVERY judgments and at the
    end (unless `refresh` is False)."""
    from apps.collection.leasing import assignment_next
    from apps.collection.services import judgment_submit
    from apps.quality.services import quality_snapshot_refresh

    done = 0
    idle: set[int] = set()
    while len(idle) < len(crowd) and (budget is None or done < budget):
        index = rng.randrange(len(crowd))
        if index in idle:
            continue
        user, behaviour, key = crowd[index]
        lease = assignment_next(project=project, rater=user)
        if lease is None:
            idle.add(index)
            continue
        content = lease._task_content
        # Each rater's opinion of a pair is drawn from its own seed (rater, pair), so a rater
        # who judges the same pair in two arms gives the same answer there: the arms differ
        # only in whom the engine asked, which is what they compare (common random numbers;
        # the gap between arms is far less noisy than with fresh draws per judgment). In
        # canonical order, not the rater's display order (a random shuffle the bench cannot
        # seed): the simulated rater draws its noise per item in list order.
        behaviour.rng = random.Random(key * 1_000_003 + zlib.crc32(content.prompt_text.encode()))
        shown = [{"id": cid, "text": text} for cid, text in content.completions.items()]
        ranking, _ = behaviour.rank(content.prompt_text, shown)
        judgment_submit(
            assignment_id=lease.pk, rater=user, client_key=uuid.uuid4(), ranking=ranking
        )
        done += 1
        idle.clear()
        if refresh and done % REFRESH_EVERY == 0:
            quality_snapshot_refresh(project_id=project.pk)
    if refresh:
        quality_snapshot_refresh(project_id=project.pk)
    return done


def consensus_accuracy(project, tasks: dict[int, Pair]) -> tuple[float, int]:
    """Share of tasks (pairs the hidden rule does not tie) whose consensus order is right;
    a tied consensus counts one half."""
    from apps.collection.models import TaskCompletion
    from apps.quality.selectors import project_consensus

    consensus = project_consensus(project=project, task_ids=list(tasks))
    first_answer = dict(
        TaskCompletion.objects.filter(task_id__in=list(tasks), position=0).values_list(
            "task_id", "completion_id"
        )
    )
    right = counted = 0.0
    for task_id, pair in tasks.items():
        if pair.truth[0] == pair.truth[1]:
            continue
        counted += 1
        scores = consensus[task_id]["scores"]
        first = scores[first_answer[task_id]]
        second = next(s for cid, s in scores.items() if cid != first_answer[task_id])
        if first == second:
            right += 0.5
        elif (first > second) == (pair.truth[0] > pair.truth[1]):
            right += 1
    return right / counted, int(counted)


# --- (a) dynamic against fixed overlap -------------------------------------------------------


def overlap_arm(
    pairs: list[Pair], seed: int, tag: str, warmup: list[Pair] | None = None, **settings
) -> dict:
    """One arm of (a). With `warmup` pairs the raters come measured: they first judge those
    at fixed overlap 3 in the same project (the statistics refreshed as always), which
    counts in their weights and not in the arm's judgments or accuracy."""
    from apps.collection.models import Task
    from apps.quality.models import OverlapDecision

    project = make_project(tag, **settings)
    crowd = make_raters(seed, tag)
    if warmup:
        add_tasks(project, warmup, fixed_overlap=3)
        work(project, crowd, random.Random(30_000 + seed))
    tasks = add_tasks(project, pairs)
    judgments = work(project, crowd, random.Random(seed))
    accuracy, counted = consensus_accuracy(project, tasks)
    open_left = Task.objects.filter(project=project, status=Task.Status.OPEN).count()
    outcomes = {
        outcome: OverlapDecision.objects.filter(project=project, outcome=outcome).count()
        for outcome in OverlapDecision.Outcome.values
    }
    return {
        "judgments": judgments,
        "per_task": judgments / len(tasks),
        "accuracy": accuracy,
        "pairs_scored": counted,
        "open_left": open_left,
        "decisions": outcomes,
    }


def part_a(
    pairs: list[Pair],
    seeds: list[int],
    n_tasks: int,
    dynamic: dict,
    runner: Runner,
    warmup: int = 0,
):
    jobs = []
    for seed in seeds:
        chosen = random.Random(seed).sample(pairs, n_tasks)
        taken = {pair.prompt for pair in chosen}
        others = [pair for pair in pairs if pair.prompt not in taken]
        warm = random.Random(20_000 + seed).sample(others, warmup) if warmup else None
        jobs.append(
            (
                overlap_arm,
                {
                    "pairs": chosen,
                    "seed": seed,
                    "tag": f"a{seed}-fixed",
                    "warmup": warm,
                    "overlap": 3,
                },
            )
        )
        jobs.append(
            (
                overlap_arm,
                {
                    "pairs": chosen,
                    "seed": seed,
                    "tag": f"a{seed}-dynamic",
                    "warmup": warm,
                    "dynamic_overlap": True,
                    **dynamic,
                },
            )
        )
    pending = runner.submit(jobs)

    def finish():
        results = pending()
        rows = []
        for index, seed in enumerate(seeds):
            fixed, adaptive = results[2 * index], results[2 * index + 1]
            rows.append({"seed": seed, "fixed3": fixed, "dynamic": adaptive})
            print(
                f"  (a) seed {seed}: fixed 3 {fixed['judgments']} judgments, accuracy "
                f"{fixed['accuracy']:.3f}; dynamic {adaptive['judgments']} "
                f"({adaptive['per_task']:.2f} per task), accuracy {adaptive['accuracy']:.3f}",
                flush=True,
            )
        fixed_j = sum(r["fixed3"]["judgments"] for r in rows)
        dynamic_j = sum(r["dynamic"]["judgments"] for r in rows)
        fixed_acc = float(np.mean([r["fixed3"]["accuracy"] for r in rows]))
        dynamic_acc = float(np.mean([r["dynamic"]["accuracy"] for r in rows]))
        gaps = [r["dynamic"]["accuracy"] - r["fixed3"]["accuracy"] for r in rows]
        saving = 1 - dynamic_j / fixed_j
        return {
            "settings": dynamic,
            "warmup": warmup,
            "tasks_per_seed": n_tasks,
            "seeds": rows,
            "sweep": [],
            "fixed3": {"judgments": fixed_j, "accuracy": fixed_acc},
            "dynamic": {"judgments": dynamic_j, "accuracy": dynamic_acc},
            "saving": saving,
            "accuracy_gap": dynamic_acc - fixed_acc,
            "accuracy_gap_ci95": mean_ci(gaps),
            "met": saving >= TARGET_SAVING and dynamic_acc >= fixed_acc - ACCURACY_SLACK,
        }

    return finish


def mean_ci(values: list[float]) -> list[float]:
    """A 95% interval of the mean over seeds (t with n − 1 degrees of freedom)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return [float(values.mean()), float(values.mean())]
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return [float(values.mean() - half), float(values.mean() + half)]


def sweep_a(
    pairs: list[Pair], seeds: list[int], n_tasks: int, dynamic: dict, runner: Runner
) -> list[dict]:
    """The accuracy-against-judgments curves: fixed overlap 1 … 5, and dynamic overlap at
    several targets (the configured start and maximum), on the same tasks and raters."""
    arms = [("fixed", {"overlap": n}) for n in (1, 2, 4, 5)] + [
        ("dynamic", {**dynamic, "dynamic_overlap": True, "confidence_target": target})
        for target in (0.8, 0.85, 0.9, 0.95)
        if target != dynamic["confidence_target"]
    ]
    jobs = [
        (
            overlap_arm,
            {
                "pairs": random.Random(seed).sample(pairs, n_tasks),
                "seed": seed,
                "tag": f"s{seed}-{kind}",
                **settings,
            },
        )
        for kind, settings in arms
        for seed in seeds
    ]
    pending = runner.submit(jobs)

    def finish():
        results = pending()
        points = []
        for index, (kind, settings) in enumerate(arms):
            runs = results[index * len(seeds) : (index + 1) * len(seeds)]
            point = {
                "kind": kind,
                "settings": settings,
                "per_task": float(np.mean([r["per_task"] for r in runs])),
                "accuracy": float(np.mean([r["accuracy"] for r in runs])),
            }
            points.append(point)
            print(
                f"  (a) sweep {kind} {settings}: {point['per_task']:.2f} per task, "
                f"accuracy {point['accuracy']:.3f}",
                flush=True,
            )
        return points

    return finish


# --- (b) uncertainty against random selection ------------------------------------------------

HASHED_WORDS = 128
WORD = re.compile(r"[a-z']+")


def features(prompt: str, answer: str) -> np.ndarray:
    """Generic text features a cheap reward model can weigh (not the hidden rule's own)."""
    text = answer.strip()
    n = max(len(text), 1)
    words = WORD.findall(text.lower())
    prompt_words = {w for w in WORD.findall(prompt.lower()) if len(w) > 2}
    answer_words = set(words)
    dense = [
        sum(map(str.isalpha, text)) / n,
        sum(map(str.isdigit, text)) / n,
        text.count(" ") / n,
        sum(map(text.count, ".,'?!")) / n,
        np.log1p(len(words)),
        len(words) / 100,
        len(answer_words & prompt_words) / max(len(answer_words | prompt_words), 1),
        len(answer_words & prompt_words) / max(len(prompt_words), 1),
        float(not text),
    ] + [float(lo <= len(words) < hi) for lo, hi in [(1, 11), (11, 21), (21, 41), (41, 81)]]
    hashed = np.zeros(HASHED_WORDS)
    for word in words:
        hashed[zlib.crc32(word.encode()) % HASHED_WORDS] = 1.0
    return np.concatenate([dense, hashed / np.sqrt(max(hashed.sum(), 1.0))])


def fit_reward_model(
    differences: np.ndarray, outcomes: np.ndarray, weights: np.ndarray, l2: float = 1.0
) -> np.ndarray:
    """Linear Bradley–Terry: P(a ≻ b) = σ(w · (φ_a − φ_b)), weighted L2-penalised maximum
    likelihood by Newton's method (the objective is concave)."""
    w = np.zeros(differences.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-(differences @ w)))
        gradient = differences.T @ (weights * (p - outcomes)) + l2 * w
        hessian = (differences * (weights * p * (1 - p))[:, None]).T @ differences
        step = np.linalg.solve(hessian + l2 * np.eye(len(w)), gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def priorities_set(priority: dict[int, int]) -> None:
    """Set many tasks' priorities in one statement (what the sampling stage writes; the
    ORM's bulk_update builds a CASE of a thousand branches, which took most of (b)'s time)."""
    from django.db import connection

    from apps.collection.models import Task
    from apps.core import sql

    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {sql.table(Task)} t SET priority = v.priority "
            "FROM unnest(%s::bigint[], %s::integer[]) AS v(id, priority) WHERE t.id = v.id",
            [list(priority), list(priority.values())],
        )


def laplace_heads(
    differences: np.ndarray,
    outcomes: np.ndarray,
    weights: np.ndarray,
    w: np.ndarray,
    n: int,
    seed: int,
    l2: float = 1.0,
) -> np.ndarray:
    """`n` heads drawn from the Laplace approximation of the fitted head's posterior,
    N(w, H⁻¹) with H the penalised likelihood's Hessian at w: a small ensemble whose
    disagreement is the head's own uncertainty about its weights."""
    p = 1 / (1 + np.exp(-(differences @ w)))
    hessian = (differences * (weights * p * (1 - p))[:, None]).T @ differences
    covariance = np.linalg.inv(hessian + l2 * np.eye(len(w)))
    return np.random.default_rng(seed).multivariate_normal(w, covariance, size=n)


def selection_arm(
    pool: list[Pair],
    held_out: list[Pair],
    phi_pool: np.ndarray,
    phi_held: np.ndarray,
    seed: int,
    strategy: str,
    budget: int,
    per_round: int,
    heads: int,
) -> list[tuple[int, float]]:
    """One arm of (b): rounds of `per_round` judgments through the real engine, the open
    tasks' priorities set before each round by `strategy`, the reward model refitted after.
    With `heads` > 1 the uncertainty is that of a Laplace ensemble of the head."""
    from apps.collection.models import Judgment, Task, TaskCompletion
    from trainer.selection import PRIORITY_SCALE, choose_uncertain, priority_from_uncertainty

    tag = f"b{seed}-{strategy}"
    project = make_project(tag, overlap=1)
    tasks = add_tasks(project, pool)
    task_ids = list(tasks)
    row_of = {task_id: i for i, task_id in enumerate(task_ids)}
    first_answer = dict(
        TaskCompletion.objects.filter(task_id__in=task_ids, position=0).values_list(
            "task_id", "completion_id"
        )
    )
    crowd = make_raters(seed, tag)
    rng = random.Random(seed)
    truth = np.array([np.sign(p.truth[0] - p.truth[1]) for p in held_out])
    scored = truth != 0
    held_difference = phi_held[:, 0] - phi_held[:, 1]
    pool_difference = phi_pool[:, 0] - phi_pool[:, 1]
    curve, model, done = [], None, 0
    while done < budget:
        open_ids = list(
            Task.objects.filter(project=project, status=Task.Status.OPEN)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if strategy == "uncertainty" and model is not None:
            rows_open = [row_of[t] for t in open_ids]
            rewards = np.stack([phi_pool[rows_open, j] @ model.T for j in (0, 1)], axis=-1)
            priority = {  # rewards[i] is (heads, 2): trainer/selection.py's own measure
                t: priority_from_uncertainty(choose_uncertain(rewards[i], 2).uncertainty)
                for i, t in enumerate(open_ids)
            }
        else:
            priority = {t: rng.randrange(PRIORITY_SCALE + 1) for t in open_ids}
        priorities_set(priority)
        # Overlap 1: no two raters share a task, so the statistics have nothing to measure a
        # rater by (every weight would be the prior) and are not refreshed; judgments count
        # alike.
        done += work(project, crowd, rng, budget=min(per_round, budget - done), refresh=False)
        rows = list(
            Judgment.objects.filter(task__project=project).values_list(
                "task_id", "rater_id", "ranking"
            )
        )
        index = np.array([row_of[t] for t, _, _ in rows])
        outcome = np.array([float(r[0][0] == first_answer[t]) for t, _, r in rows])
        weight = np.ones(len(rows))
        head = fit_reward_model(pool_difference[index], outcome, weight)
        accuracy = float((np.sign(held_difference[scored] @ head) == truth[scored]).mean())
        curve.append((done, accuracy))
        model = (
            laplace_heads(pool_difference[index], outcome, weight, head, heads, seed + done)
            if heads > 1
            else head[None, :]
        )
    return curve


def judgments_to_reach(curve: list[tuple[int, float]], level: float) -> float:
    """Judgments at which a (mean) curve first reaches `level`, linearly interpolated."""
    previous = None
    for n, accuracy in curve:
        if accuracy >= level:
            if previous is None:
                return float(n)
            n0, a0 = previous
            return float(n0 + (level - a0) * (n - n0) / (accuracy - a0))
        previous = (n, accuracy)
    return float("inf")


def part_b(pairs, seeds, pool_size, held_size, budget, per_round, heads, runner: Runner) -> dict:
    strategies = ("random", "uncertainty")
    phi = np.array([[features(p.prompt, a) for a in p.answers] for p in pairs])  # once
    jobs = []
    for seed in seeds:
        chosen = random.Random(10_000 + seed).sample(range(len(pairs)), pool_size + held_size)
        order = [pairs[i] for i in chosen]
        for strategy in strategies:
            jobs.append(
                (
                    selection_arm,
                    {
                        "pool": order[:pool_size],
                        "held_out": order[pool_size:],
                        "phi_pool": phi[chosen[:pool_size]],
                        "phi_held": phi[chosen[pool_size:]],
                        "seed": seed,
                        "strategy": strategy,
                        "budget": budget,
                        "per_round": per_round,
                        "heads": heads,
                    },
                )
            )
    pending = runner.submit(jobs)

    def finish():
        results = iter(pending())
        curves: dict[str, list] = {strategy: [] for strategy in strategies}
        for seed in seeds:
            for strategy in strategies:
                curve = next(results)
                curves[strategy].append(curve)
                print(
                    f"  (b) seed {seed} {strategy}: " + " ".join(f"{n}:{a:.3f}" for n, a in curve),
                    flush=True,
                )
        mean = {
            strategy: [
                (runs[0][i][0], float(np.mean([run[i][1] for run in runs])))
                for i in range(len(runs[0]))
            ]
            for strategy, runs in curves.items()
        }
        level = mean["random"][-1][1]
        needed = judgments_to_reach(mean["uncertainty"], level)
        saving = 1 - needed / budget
        finals = [
            mine[-1][1] - theirs[-1][1]
            for mine, theirs in zip(curves["uncertainty"], curves["random"], strict=True)
        ]
        return {
            "pool": pool_size,
            "held_out": held_size,
            "budget": budget,
            "per_round": per_round,
            "heads": heads,
            "saving_ci95": saving_interval(curves, budget),
            "final_gap_ci95": mean_ci(finals),
            "seeds_ahead_at_budget": int(sum(gap > 0 for gap in finals)),
            "curves": curves,
            "mean": mean,
            "random_final_accuracy": level,
            "uncertainty_judgments_to_match": needed,
            "saving": saving,
            "met": saving >= TARGET_SAVING,
        }

    return finish


def saving_interval(curves: dict[str, list], budget: int, draws: int = 2000) -> list[float]:
    """A 95% bootstrap interval of (b)'s saving: the seeds resampled with replacement, both
    arms' mean curves and the judgments uncertainty needs recomputed on each draw."""
    mine = np.array([[a for _, a in run] for run in curves["uncertainty"]])
    theirs = np.array([[a for _, a in run] for run in curves["random"]])
    steps = [n for n, _ in curves["random"][0]]
    rng = np.random.default_rng(0)
    savings = []
    for _ in range(draws):
        pick = rng.integers(0, len(mine), len(mine))
        level = theirs[pick].mean(axis=0)[-1]
        needed = judgments_to_reach(list(zip(steps, mine[pick].mean(axis=0), strict=True)), level)
        savings.append(1 - needed / budget)
    # no interpolation: a draw whose curve never reaches the level has a saving of −inf
    low, high = np.percentile(savings, [2.5, 97.5], method="inverted_cdf")
    return [float(low), float(high)]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    a = result["a"]
    for name, label, marker in (("fixed3", "fixed overlap 3", "s"), ("dynamic", "dynamic", "o")):
        xs = [row[name]["per_task"] for row in a["seeds"]]
        ys = [row[name]["accuracy"] for row in a["seeds"]]
        left.scatter(xs, ys, marker=marker, label=f"{label} (each seed)", alpha=0.6)
        left.scatter([np.mean(xs)], [np.mean(ys)], marker=marker, s=160, edgecolor="black")
    for kind, marker in (("fixed", "s"), ("dynamic", "o")):
        points = [(p["per_task"], p["accuracy"]) for p in a.get("sweep", []) if p["kind"] == kind]
        if kind == "fixed":
            points.append(
                (
                    a["fixed3"]["judgments"] / a["tasks_per_seed"] / len(a["seeds"]),
                    a["fixed3"]["accuracy"],
                )
            )
        else:
            points.append(
                (
                    a["dynamic"]["judgments"] / a["tasks_per_seed"] / len(a["seeds"]),
                    a["dynamic"]["accuracy"],
                )
            )
        if len(points) > 1:
            points.sort()
            left.plot(
                *zip(*points, strict=True),
                marker=marker,
                linestyle="--",
                label=f"{kind} overlap (mean over seeds)",
            )
    left.set_xlabel("judgments per task")
    left.set_ylabel("consensus accuracy vs hidden rule")
    left.set_title("(a) dynamic vs fixed overlap")
    left.legend(loc="lower right")
    b = result["b"]
    for strategy, runs in b["curves"].items():
        color = "C0" if strategy == "random" else "C1"
        for run in runs:
            right.plot(*zip(*run, strict=True), alpha=0.15, color=color)
        right.plot(
            *zip(*b["mean"][strategy], strict=True),
            color=color,
            linewidth=2.5,
            label=f"{strategy} (mean of {len(runs)} seeds)",
        )
    right.axhline(b["random_final_accuracy"], color="grey", linestyle=":", linewidth=1)
    right.set_xlabel("judgments")
    right.set_ylabel("reward model held-out pairwise accuracy")
    right.set_title("(b) uncertainty vs random selection")
    right.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=80, help="(a) tasks per seed")
    parser.add_argument("--overlap-min", type=int, default=1)
    parser.add_argument("--overlap-max", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.8, help="(a) confidence target")
    parser.add_argument("--pool", type=int, default=400, help="(b) candidate prompts")
    parser.add_argument("--held-out", type=int, default=400, help="(b) held-out prompts")
    parser.add_argument("--budget", type=int, default=120, help="(b) judgments per arm")
    parser.add_argument("--per-round", type=int, default=30, help="(b) judgments per round")
    parser.add_argument(
        "--heads", type=int, default=1, help="(b) reward heads (> 1: a Laplace ensemble)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="arms run at once, each in its own process (default: up to 2)",
    )
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="(a) raters come measured: this many other pairs at fixed overlap 3 first, in "
        "both arms (not counted in either's judgments or accuracy)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="(a) also fixed overlap 1-5 and other targets"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--fresh", action="store_true", help="recreate the database first")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where result.json goes (default: {RESULTS.relative_to(ROOT)}; under --check "
        f"{CHECK_RESULTS.relative_to(ROOT)}, so a check leaves the published result alone)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = CHECK_RESULTS if args.check else RESULTS

    started = time.perf_counter()
    ensure_database(args.fresh)
    pairs = load_pairs()
    seeds = list(range(args.seeds))
    dynamic = {
        "overlap": args.overlap_min,
        "overlap_max": args.overlap_max,
        "confidence_target": args.target,
    }
    print(f"{len(pairs)} HH-RLHF pairs; seeds {seeds}", flush=True)
    result: dict = {}
    runner = Runner(args.jobs)
    finish: dict[str, Callable] = {}  # every arm is submitted first, so both parts share
    if args.part in ("a", "both"):
        finish["a"] = part_a(pairs, seeds, args.tasks, dynamic, runner, args.warmup)
        if args.sweep:
            finish["sweep"] = sweep_a(pairs, seeds, args.tasks, dynamic, runner)
    if args.part in ("b", "both"):
        finish["b"] = part_b(
            pairs,
            seeds,
            args.pool,
            args.held_out,
            args.budget,
            args.per_round,
            args.heads,
            runner,
        )
    for name, collect in finish.items():
        if name == "sweep":
            result["a"]["sweep"] = collect()
        else:
            result[name] = collect()
    runner.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    met = True
    if "a" in result:
        a = result["a"]
        met &= a["met"]
        print(
            f"(a) fixed overlap 3: {a['fixed3']['judgments']} judgments, accuracy "
            f"{a['fixed3']['accuracy']:.4f}; dynamic {dynamic}: {a['dynamic']['judgments']} "
            f"judgments ({a['saving']:.1%} fewer), accuracy {a['dynamic']['accuracy']:.4f} "
            f"({a['accuracy_gap']:+.4f}, 95% CI over seeds {a['accuracy_gap_ci95'][0]:+.4f} to "
            f"{a['accuracy_gap_ci95'][1]:+.4f}) -> {'met' if a['met'] else 'MISSED'}"
        )
    if "b" in result:
        b = result["b"]
        met &= b["met"]
        reached = (
            f"reaches it with {b['uncertainty_judgments_to_match']:.0f} ({b['saving']:.1%} fewer)"
            if np.isfinite(b["uncertainty_judgments_to_match"])
            else "does not reach it within the budget"
        )
        print(
            f"(b) random reaches {b['random_final_accuracy']:.4f} with {b['budget']} "
            f"judgments; uncertainty {reached} (95% bootstrap interval over seeds "
            f"{' to '.join(f'{x:.0%}' if np.isfinite(x) else 'never' for x in b['saving_ci95'])}"
            "); ahead at the budget in "
            f"{b['seeds_ahead_at_budget']} of {len(seeds)} seeds -> "
            f"{'met' if b['met'] else 'MISSED'}"
        )
    print(f"{result['seconds']} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    if not args.check and args.part == "both":
        plot(result, args.out / "curves.png")
        print(f"wrote {args.out / 'result.json'} and {args.out / 'curves.png'}")
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
