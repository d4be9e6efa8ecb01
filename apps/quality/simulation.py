"""Synthetic raters with known behaviour, for tests and bench/agreement_scale.py. Pure numpy.

Each task has K completions with true utilities μ ~ N(0, 1). A rater of kind
- "honest" ranks by μ + σ·ε (Thurstone 1927, case V) with their own σ;
- "random" ranks by ε alone (a random clicker);
- "first" puts the completion shown first on top and ranks the rest honestly.
Each rater sees the completions in a random display order.
"""

from __future__ import annotations

import numpy as np

from apps.quality.measures import DAY, JudgmentArrays


def simulate(
    *,
    n_tasks: int,
    k: int = 4,
    overlap: tuple[int, int] = (3, 10),
    kinds: list[str],
    noise: np.ndarray | float = 0.5,
    days: int = 30,
    gold_share: float = 0.0,
    flag_keys: tuple[str, ...] = ("harmful", "wrong_language"),
    seed: int = 0,
) -> tuple[JudgmentArrays, np.ndarray]:
    """Judgments of `len(kinds)` raters over `n_tasks` tasks; returns (arrays, true μ)."""
    rng = np.random.default_rng(seed)
    n_raters = len(kinds)
    kinds_array = np.asarray(kinds)
    sigma = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n_raters,))
    per_task = rng.integers(overlap[0], min(overlap[1], n_raters) + 1, size=n_tasks)
    task = np.repeat(np.arange(n_tasks, dtype=np.int32), per_task)
    slot = np.arange(task.size) - np.repeat(np.cumsum(per_task) - per_task, per_task)
    # Distinct raters per task: a random start and a stride coprime with the number of raters.
    strides = np.array([s for s in range(1, n_raters + 1) if np.gcd(s, n_raters) == 1])
    start = rng.integers(0, n_raters, size=n_tasks)
    stride = rng.choice(strides, size=n_tasks)
    rater = ((start[task] + slot * stride[task]) % n_raters).astype(np.int32)

    n = task.size
    truth = rng.normal(size=(n_tasks, k))
    noise_draw = rng.normal(size=(n, k))
    kind = kinds_array[rater]
    utility = truth[task] + sigma[rater][:, None] * noise_draw
    utility = np.where((kind == "random")[:, None], noise_draw, utility)
    first_shown = rng.integers(0, k, size=n).astype(np.int8)
    always_first = kind == "first"
    utility[np.flatnonzero(always_first), first_shown[always_first]] = np.inf
    order = np.argsort(-utility, axis=1)
    rank_pos = np.empty((n, k), dtype=np.int8)
    np.put_along_axis(rank_pos, order, np.arange(k, dtype=np.int8)[None, :], axis=1)

    seconds = rng.lognormal(np.log(60), 0.4, size=n)
    seconds = np.where(kind == "random", seconds / 6, seconds)
    flags = np.zeros((n, k), dtype=np.uint32)
    for bit in range(len(flag_keys)):
        flags |= (rng.random((n, k)) < 0.03).astype(np.uint32) << bit
    created = rng.uniform(0, days * DAY, size=n) + 1_700_000_000.0
    reviewed = np.where(rng.random(n) < 0.6, created + rng.uniform(0, 3 * DAY, size=n), np.nan)

    is_gold = rng.random(n_tasks) < gold_share
    gold_order = np.argsort(-truth, axis=1)
    gold_pos = np.empty((n_tasks, k), dtype=np.int8)
    np.put_along_axis(gold_pos, gold_order, np.arange(k, dtype=np.int8)[None, :], axis=1)
    gold_pos[~is_gold] = -1
    arrays = JudgmentArrays(
        task=task,
        rater=rater,
        rank_pos=rank_pos,
        first_shown=first_shown,
        created=created,
        time_spent_ms=seconds * 1000,
        flags=flags,
        included=np.ones(n, dtype=bool),
        reviewed=reviewed,
        task_is_gold=is_gold,
        task_gold_pos=gold_pos,
        task_lengths=rng.integers(50, 1500, size=(n_tasks, k)).astype(np.float64),
        task_ids=np.arange(1, n_tasks + 1),
        rater_ids=np.arange(1, n_raters + 1),
        flag_keys=list(flag_keys),
    )
    return arrays, truth
