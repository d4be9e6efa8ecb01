"""Judgments as columns, and the per-judgment math of rater quality: pure numpy.

`JudgmentArrays` holds a project's judgments (built from the database by
`selectors.judgment_arrays`, or synthesised by tests and bench/agreement_scale.py);
`statistics.compute_quality` turns them into a JSON-ready dict of figures (through the sums
of aggregates.py and the figures of figures.py). Its definitions:

- Figures of the project (pairwise agreement, α, κ, series) use *included* judgments only
  (not rejected by a reviewer) on regular tasks; gold tasks are scored against their key.
- A rater's agreement is with the leave-one-out consensus: on each completion pair, the
  majority direction of the *other* raters of that task; pairs where the others are tied
  or split evenly are left out. A tie given by the rater counts as a disagreement.
- Peers: a rater is flagged when a measure lies far from the median of raters with at
  least `min_judgments` judgments (robust z, Hampel 1974), with a floor on the distance so
  that a tight crowd does not flag ordinary noise; on agreement also when the whole 95%
  interval lies below that range, however few their judgments (figures.peer_flags).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apps.quality import agreement as ag

DAY = 86_400.0


@dataclass
class JudgmentArrays:
    """One project's judgments as columns. n judgments, T tasks, R raters, k slots."""

    task: np.ndarray  # (n,) task index
    rater: np.ndarray  # (n,) rater index
    rank_pos: np.ndarray  # (n, k) best-first group index per canonical slot, -1 no slot
    first_shown: np.ndarray  # (n,) canonical slot the rater saw first, -1 unknown
    created: np.ndarray  # (n,) epoch seconds
    time_spent_ms: np.ndarray  # (n,) float, nan unknown
    flags: np.ndarray  # (n, k) bitmask over flag_keys
    included: np.ndarray  # (n,) bool: not rejected by a reviewer
    reviewed: np.ndarray  # (n,) epoch seconds of the review decision, nan while pending
    task_is_gold: np.ndarray  # (T,) bool
    task_gold_pos: np.ndarray  # (T, k) gold best-first group per slot, -1 none
    task_lengths: np.ndarray  # (T, k) length per completion (UTF-8 bytes), nan no slot
    task_ids: np.ndarray  # (T,) database ids
    rater_ids: np.ndarray  # (R,) database ids
    flag_keys: list[str] = field(default_factory=list)
    rater_names: list[str] = field(default_factory=list)
    judgment_ids: np.ndarray | None = None  # (n,) database ids, ascending, where known

    @property
    def n_tasks(self) -> int:
        return int(self.task_ids.shape[0])

    @property
    def n_raters(self) -> int:
        return int(self.rater_ids.shape[0])


@dataclass
class QualityOptions:
    n_boot: int = 1000  # bootstrap resamples for the project's agreement CI
    n_boot_series: int = 200  # ... and for each point of the agreement-over-time series
    min_judgments: int = 10  # fewer: flagged only when clearly below (see figures.peer_flags)
    min_agreement_gap: float = 0.10  # flag agreement this far below the peer median ...
    z_threshold: float = 3.5  # ... or this many robust SDs below, whichever is farther
    max_first_pvalue: float = 1e-3  # position bias: binomial p-value ...
    min_first_excess: float = 0.15  # ... and share of first-ranked-first above 1/K
    min_length_gap: float = 0.25  # length bias: τ with length this far from peers
    min_flag_rate_gap: float = 0.25  # flags set this much more often than peers
    fast_ratio: float = 0.25  # median time below this share of the peer median
    gold_floor: float = 0.6  # gold accuracy below this (with ≥ min_gold pairs)
    min_gold_pairs: int = 12
    seed: int = 0


def group_median(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of non-negative `values` per group (nan skipped), by one sort of group-offset
    keys: group g's values live in [g·span, (g+1)·span)."""
    keep = np.isfinite(values)
    values, groups = values[keep], groups[keep]
    result = np.full(n_groups, np.nan)
    if values.size == 0:
        return result
    span = float(values.max()) * 1.01 + 1.0
    keys = np.sort(groups * span + values)
    sizes = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    has = sizes > 0
    low = keys[starts[has] + (sizes[has] - 1) // 2]
    high = keys[starts[has] + sizes[has] // 2]
    offset = np.flatnonzero(has) * span
    result[has] = ((low - offset) + (high - offset)) / 2
    return result


def leave_one_out(
    pref: np.ndarray,
    valid: np.ndarray,
    task: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    longer_first: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per judgment, sums over its completion pairs of how it stands against the *other*
    raters of its task. `counts` are `agreement.relation_counts` with `weights` (0/1), so
    a judgment's own vote is taken out first; `longer_first[t, p]` is the sign of
    len(a) − len(b) for pair p of task t.

    - matches / decided: pairs where the others have a majority direction, and where the
      judgment follows it (the leave-one-out consensus);
    - same / others: other raters giving the same relation, and all other raters;
    - length_*: preference for the longer completion (+1 per pair where it won, −1 where
      it lost), the judgment's own and the others' on the same pairs.

    The arrays are walked one completion pair at a time (contiguous columns, 16-bit counts),
    which is several times faster than whole (n, pairs) matrices on a million judgments.
    """
    n, n_pairs = pref.shape
    sums = {
        name: np.zeros(n, dtype=np.int64)
        for name in (
            "matches",
            "decided",
            "same",
            "others",
            "length_own",
            "length_pairs",
            "length_others",
            "length_others_pairs",
        )
    }
    if n == 0:
        return sums
    counted = np.asarray(weights) > 0
    planes = np.minimum(counts, np.iinfo(np.int16).max).astype(np.int16)
    for p in range(n_pairs):
        v = np.ascontiguousarray(pref[:, p])
        ok = np.ascontiguousarray(valid[:, p])
        own = (counted & ok).astype(np.int16)
        above, tied, below = (planes[:, p, r][task] for r in (2, 1, 0))
        plus = above - own * (v == 1)
        minus = below - own * (v == -1)
        ties = tied - own * (v == 0)
        decided = ok & (plus != minus)
        sums["decided"] += decided
        sums["matches"] += decided & (v == np.sign(plus - minus))
        same = np.where(v == 1, plus, np.where(v == -1, minus, ties))
        sums["same"] += np.where(ok, same, 0)
        sums["others"] += np.where(ok, plus + minus + ties, 0)
        longer = longer_first[task, p]
        direction = v * longer
        strict = ok & (direction != 0)
        sums["length_own"] += np.where(strict, direction, 0)
        sums["length_pairs"] += strict
        sums["length_others"] += np.where(strict, longer * (plus - minus), 0)
        sums["length_others_pairs"] += np.where(strict, plus + minus, 0)
    return sums


def rater_reliability(matches: np.ndarray, decided: np.ndarray, prior_pairs: float = 20.0):
    """Weight of each rater in the consensus: log-odds of agreeing with the others.

    With independent raters who are right with probability a_r, weighting votes by
    log(a_r / (1 − a_r)) is the optimal decision rule (Nitzan & Paroush 1982). a_r is
    shrunk toward 0.75 by `prior_pairs` pseudo-comparisons and clipped to [0.5, 0.98], so
    a rater at chance weighs 0 and no rater dominates.
    """
    return _vote_weight(matches, decided, prior_pairs)


def _vote_weight(right: np.ndarray, counted: np.ndarray, prior_pairs: float) -> np.ndarray:
    """log(a / (1 − a)) for a = right / counted shrunk toward 0.75 by `prior_pairs`
    pseudo-comparisons and clipped to [0.5, 0.98]."""
    return accuracy_weight((right + 0.75 * prior_pairs) / (counted + prior_pairs))


def accuracy_weight(accuracy) -> np.ndarray:
    """The vote weight of an accuracy: log(a / (1 − a)) with a clipped to [0.5, 0.98] (at or
    below chance 0, never negative; no vote outweighs ~4 others)."""
    accuracy = np.clip(np.asarray(accuracy, dtype=np.float64), 0.5, 0.98)
    return np.log(accuracy / (1 - accuracy))


def skill_reliability(skill: np.ndarray, comparisons: np.ndarray, prior_pairs: float = 20.0):
    """Weight of each rater in the consensus, from their one-coin skill.

    `skill` s = 2a − 1 is fitted to the agreement of every pair of raters who ordered the
    same completion pairs (rater_pairs.py: 2·P(agree) − 1 = s_i s_j), so a rater's accuracy
    a = (1 + s) / 2 is measured against every co-rater at once, each counted by their own
    skill, rather than against the majority of the others on each task (`rater_reliability`,
    which a noisy or adversarial co-rater drags down, and which understates careful raters).
    As there, a is shrunk toward 0.75 by `prior_pairs` pseudo-comparisons (`comparisons`:
    the completion pairs the rater shared with others), clipped to [0.5, 0.98] — a rater
    below chance weighs 0, never a negative weight that would turn their votes around — and
    the weight is log(a / (1 − a)). A rater who shared nothing (skill NaN) gets the prior,
    log 3.
    """
    skill = np.asarray(skill, dtype=np.float64)
    comparisons = np.where(np.isfinite(skill), np.asarray(comparisons, dtype=np.float64), 0.0)
    accuracy = (1 + np.nan_to_num(skill)) / 2
    return _vote_weight(accuracy * comparisons, comparisons, prior_pairs)


def consensus_wins(
    pref: np.ndarray, valid: np.ndarray, task: np.ndarray, n_tasks: int, weight: np.ndarray
) -> np.ndarray:
    """Weighted win matrix per task for `agreement.bradley_terry` (a tie: ½ to each)."""
    k = int(round((1 + np.sqrt(1 + 8 * pref.shape[1])) / 2))
    first, second = ag.slot_pairs(k)
    w = np.where(valid, weight[:, None], 0.0)
    base = task.astype(np.int64)[:, None] * k * k
    a_beats_b = base + first * k + second
    b_beats_a = base + second * k + first
    cells = np.concatenate([a_beats_b.ravel(), b_beats_a.ravel()])
    amounts = np.concatenate(
        [
            (w * np.where(pref == 1, 1.0, np.where(pref == 0, 0.5, 0.0))).ravel(),
            (w * np.where(pref == -1, 1.0, np.where(pref == 0, 0.5, 0.0))).ravel(),
        ]
    )
    return np.bincount(cells, weights=amounts, minlength=n_tasks * k * k).reshape(n_tasks, k, k)


def consensus_scores(arrays: JudgmentArrays, rater_weight: np.ndarray) -> np.ndarray:
    """Bradley–Terry log-strengths (T, k) from included judgments weighted by reliability."""
    pref, valid = ag.pairwise_preferences(arrays.rank_pos)
    weight = rater_weight[arrays.rater] * arrays.included
    wins = consensus_wins(pref, valid, arrays.task, arrays.n_tasks, weight)
    present = np.isfinite(arrays.task_lengths) if arrays.task_lengths.size else None
    return ag.bradley_terry(wins, present)
