"""Which rankings to ask raters for: the reward model's uncertainty, as pure numpy.

No torch here: the web side (the sampling stage that turns samples into tasks) and
bench/adaptive_collection.py call these functions on rewards computed elsewhere.

The measure. A reward model trained with InstructGPT's ranking loss (Ouyang et al. 2022,
eq. 1) predicts P(a ≻ b) = σ(r_a − r_b). How unsure it is of that pair is the variance of
the predicted outcome, scaled to [0, 1]:

    u(a, b) = 4 · p̄ (1 − p̄),   p̄ = mean over heads of σ(r_a − r_b)

1 is a coin flip, 0 a certain order. With one reward head this is the score margin, mapped
through the model's own link; with a small ensemble of heads (rows of `rewards`) p̄ is the
ensemble's predictive probability, so disagreement between heads also counts as
uncertainty. A ranking task's uncertainty is the mean u over the pairs it shows — the pairs
the reward model will train on — and with more than K samples of a prompt, the K to show
are the subset with the highest such mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

EXHAUSTIVE_SUBSETS = 5000  # above this many K-subsets, choose the K greedily
# Task priority = round(uncertainty × this), 0 … 30,000 (a task's priority is a small integer).
# Fine enough that prompts the reward model is nearly even on still sort by how nearly:
# at 1,000, every pair within p = 0.5 ± 0.016 tied at the top and was served in id order.
PRIORITY_SCALE = 30_000


def _as_heads(rewards) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    return rewards[None, :] if rewards.ndim == 1 else rewards


def pair_uncertainty(rewards) -> np.ndarray:
    """(n, n) matrix of u(a, b) for the n samples of one prompt; `rewards` is (n,) or
    (heads, n). The diagonal is 0."""
    heads = _as_heads(rewards)
    difference = heads[:, :, None] - heads[:, None, :]
    p = (1.0 / (1.0 + np.exp(-difference))).mean(axis=0)
    u = 4.0 * p * (1.0 - p)
    np.fill_diagonal(u, 0.0)
    return u


def subset_uncertainty(u: np.ndarray, subset) -> float:
    """Mean u over the pairs of `subset` (indices into u)."""
    subset = list(subset)
    if len(subset) < 2:
        return 0.0
    block = u[np.ix_(subset, subset)]
    pairs = len(subset) * (len(subset) - 1)
    return float(block.sum() / pairs)


@dataclass(frozen=True)
class Choice:
    """The samples of one prompt to show, and how unsure the reward model is of them."""

    shown: list[int]  # indices into the prompt's samples, ascending
    uncertainty: float  # mean u over the shown pairs, 0 … 1


def choose_uncertain(rewards, k: int) -> Choice:
    """The k samples whose pairs the reward model is least sure of (all of them if ≤ k).

    Exhaustive over the k-subsets while there are at most EXHAUSTIVE_SUBSETS of them
    (12 samples, k = 4: 495), else greedy: start from the least certain pair, then add the
    sample that raises the subset's total uncertainty most. Ties go to the lower index.
    """
    u = pair_uncertainty(rewards)
    n = u.shape[0]
    if n <= k:
        return Choice(list(range(n)), subset_uncertainty(u, range(n)))
    if comb(n, k) <= EXHAUSTIVE_SUBSETS:
        best = max(
            combinations(range(n), k),
            key=lambda s: (subset_uncertainty(u, s), [-i for i in s]),
        )
        return Choice(list(best), subset_uncertainty(u, best))
    a, b = np.unravel_index(int(np.argmax(u)), u.shape)
    chosen = sorted({int(a), int(b)})
    while len(chosen) < k:
        rest = [i for i in range(n) if i not in chosen]
        gains = u[np.ix_(rest, chosen)].sum(axis=1)
        chosen = sorted([*chosen, rest[int(np.argmax(gains))]])
    return Choice(chosen, subset_uncertainty(u, chosen))


def choose_random(n: int, k: int, rng: np.random.Generator) -> list[int]:
    """k of n sample indices uniformly at random (all of them if n ≤ k), ascending."""
    if n <= k:
        return list(range(n))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def priority_from_uncertainty(uncertainty: float) -> int:
    """Task priority (higher is served first) from an uncertainty in [0, 1]."""
    return int(round(min(max(float(uncertainty), 0.0), 1.0) * PRIORITY_SCALE))
