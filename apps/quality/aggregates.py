"""Sufficient statistics of the rater-quality figures: sums that split over tasks. Pure numpy.

Every figure of `statistics.compute_quality` is a function of sums over judgments in which a
judgment's term depends only on the judgments of its own task: its leave-one-out agreement
compares it with the other raters *of that task*, and Krippendorff's and Fleiss' statistics
are sums over units inside tasks. So the sums of a set of tasks can be computed from those
tasks' judgments alone, and a project's sums are the sums over any partition of its tasks.

`task_set_sums` computes them for the tasks in a `JudgmentArrays`; `QualitySums` adds and
subtracts them. The incremental refresh (apps/quality/state.py) takes away the sums of the
tasks that changed since the last refresh, as they were then, and adds them as they are now.
What is per task and not a sum (a task's agreeing rater pairs, its last active day) comes
back in `TaskValues`, which the caller overwrites for those tasks.

Days are whole UTC days since the epoch; arrays by day start at `QualitySums.day_origin`,
and are lined up when sums are added. Weeks are made of days when the figures are drawn
(apps/quality/figures.py), counted from the first day with a judgment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apps.quality import agreement as ag
from apps.quality import rater_pairs
from apps.quality.measures import DAY, JudgmentArrays, leave_one_out

# Per rater: sums over their judgments (names match figures.py's use).
RATER_SUMS = (
    "judgments",
    "matches",  # pairs where the judgment follows the other raters' majority ...
    "decided",  # ... out of the pairs where the others have one
    "judged",  # judgments with at least one decided pair (the units of the agreement CI)
    "matches_sq",  # Σ matches², Σ decided², Σ matches·decided: the CI's linearised variance
    "decided_sq",
    "matches_decided",
    "same",  # other raters giving the same relation, out of all other raters
    "others",
    "length_own",
    "length_pairs",
    "length_own_sq",  # Σ own², Σ pairs², Σ own·pairs: the interval of the τ with length
    "length_pairs_sq",
    "length_own_pairs",
    "length_others",
    "length_others_pairs",
    "gold_correct",
    "gold_scored",
    "first_credit",  # the completion shown first ranked first (a tie shares the credit)
    "first_known",  # judgments whose display order is known
    "first_chance",  # Σ 1 / slots over those: the share a chance ranking would give
    "flagged_cells",
    "cells",
)
# Per rater and day: the measures' trends.
GRID_SUMS = (
    "judgments",
    "matches",
    "decided",
    "gold_correct",
    "gold_scored",
    "first_credit",
    "first_known",
    "flagged_cells",
    "cells",
)


@dataclass
class QualitySums:
    """Additive statistics of a set of judgments. Arrays of different lengths (more raters
    or days on one side) are padded with zeros when added; arrays by day (names starting
    "day_" or "grid_", days last) begin at day `day_origin` and are lined up first."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    day_origin: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    @property
    def pairs(self) -> dict[str, np.ndarray]:
        """The rater-pair sums (rater_pairs.py): keyed rows, not positional arrays."""
        return {name: self.values[name] for name in rater_pairs.PAIR_KEYS if name in self.values}

    def combine(self, other: QualitySums, sign: float = 1.0) -> QualitySums:
        origin = min(self.day_origin, other.day_origin)
        result = rater_pairs.combine(self.pairs, other.pairs, sign)
        for name in self.values.keys() | other.values.keys():
            if name in rater_pairs.PAIR_KEYS:
                continue
            mine, theirs = self.values.get(name), other.values.get(name)
            if mine is None:
                mine = np.zeros_like(theirs)
            if theirs is None:
                theirs = np.zeros_like(mine)
            by_day = name.startswith(("day_", "grid_"))
            mine_at = self.day_origin - origin if by_day else 0
            theirs_at = other.day_origin - origin if by_day else 0
            shape = [max(a, b) for a, b in zip(mine.shape, theirs.shape, strict=True)]
            if by_day:
                shape[-1] = max(mine_at + mine.shape[-1], theirs_at + theirs.shape[-1])
            total = np.zeros(shape)
            total[_place(mine.shape, mine_at)] += mine
            total[_place(theirs.shape, theirs_at)] += sign * theirs
            result[name] = total
        return QualitySums(result, day_origin=origin)

    def __add__(self, other: QualitySums) -> QualitySums:
        return self.combine(other, 1.0)

    def __sub__(self, other: QualitySums) -> QualitySums:
        return self.combine(other, -1.0)


def _place(shape: tuple, day_offset: int) -> tuple[slice, ...]:
    """Where an array of `shape` sits in a larger one, its last axis moved by `day_offset`."""
    where = [slice(0, n) for n in shape]
    if shape:
        where[-1] = slice(day_offset, day_offset + shape[-1]) if day_offset else where[-1]
    return tuple(where)


@dataclass
class TaskValues:
    """Per task of the arrays given to `task_set_sums` (their order): not sums."""

    judgments: np.ndarray  # every judgment, rejected or gold included
    agree: np.ndarray  # rater pairs giving the same relation, over the task's completion pairs
    total: np.ndarray  # all rater pairs, over its completion pairs
    last_day: np.ndarray  # latest day (since the epoch) of a judgment in the figures; -1 none


def day_number(times: np.ndarray) -> np.ndarray:
    """Whole UTC days since the epoch."""
    return np.floor(np.asarray(times, dtype=np.float64) / DAY).astype(np.int64)


def task_set_sums(arrays: JudgmentArrays, *, n_raters: int) -> tuple[QualitySums, TaskValues]:
    """The sums of every judgment in `arrays`, which must hold *all* judgments of its tasks.

    `arrays.rater` indexes the caller's raters (`n_raters` of them); `arrays.task` the tasks
    of `arrays` alone.
    """
    n, n_tasks = arrays.task.shape[0], arrays.n_tasks
    pref, valid = ag.pairwise_preferences(arrays.rank_pos)
    is_gold = arrays.task_is_gold[arrays.task]
    in_stats = arrays.included & ~is_gold
    stats_weight = in_stats.astype(np.float64)
    counts = ag.relation_counts(pref, valid, arrays.task, n_tasks, weights=stats_weight)
    agree, total = ag.agreeing_rater_pairs(counts)
    day_of = day_number(arrays.created)
    origin = int(day_of.min()) if n else 0
    day = day_of - origin
    last_day = np.full(n_tasks, -1, dtype=np.int64)
    np.maximum.at(last_day, arrays.task[in_stats], day_of[in_stats])
    tasks = TaskValues(
        judgments=np.bincount(arrays.task, minlength=n_tasks),
        agree=agree,
        total=total,
        last_day=last_day,
    )

    values: dict[str, np.ndarray] = {
        "judgments": np.array(float(n)),
        "included": np.array(float(in_stats.sum())),
        "pending": np.array(float(np.count_nonzero(~np.isfinite(arrays.reviewed)))),
        "coincidence_pairs": ag.coincidences(counts.reshape(-1, ag.RELATIONS)),
        "coincidence_ranks": ag.coincidences(
            ag.rank_position_counts(arrays.rank_pos[in_stats], arrays.task[in_stats], n_tasks)
        ),
        **_flag_sums(arrays, in_stats),
        **rater_pairs.pair_sums(
            arrays.rater_ids[arrays.rater[in_stats]],
            arrays.task[in_stats],
            pref[in_stats],
            valid[in_stats],
        ),
    }
    n_days = int(day.max()) + 1 if n else 1
    values["day_judgments"] = np.bincount(day, minlength=n_days).astype(np.float64)
    reviewed = np.isfinite(arrays.reviewed)
    reviewed_day = np.clip(day_number(arrays.reviewed[reviewed]) - origin, 0, None)
    values["day_reviewed"] = np.bincount(reviewed_day, minlength=1).astype(np.float64)

    per_judgment = _judgment_terms(arrays, pref, valid, counts, stats_weight)
    rater = arrays.rater.astype(np.int64)
    cell = rater * n_days + day
    for name in RATER_SUMS:
        values[f"rater_{name}"] = np.bincount(rater, weights=per_judgment[name], minlength=n_raters)
    for name in GRID_SUMS:
        values[f"grid_{name}"] = np.bincount(
            cell, weights=per_judgment[name], minlength=n_raters * n_days
        ).reshape(n_raters, n_days)
    return QualitySums(values, day_origin=origin), tasks


def _judgment_terms(arrays, pref, valid, counts, stats_weight) -> dict[str, np.ndarray]:
    """Each judgment's term of every per-rater sum (columns walked one at a time: a sum
    across a short axis of a million rows is slow in numpy)."""
    n, k = arrays.rank_pos.shape
    first, second = ag.slot_pairs(k)
    lengths = np.nan_to_num(arrays.task_lengths, nan=0.0)
    longer_first = np.sign(lengths[:, first] - lengths[:, second]).astype(np.int8)
    loo = leave_one_out(pref, valid, arrays.task, counts, stats_weight, longer_first)
    matches = loo["matches"].astype(np.float64)
    decided = loo["decided"].astype(np.float64)

    # gold: only the judgments of gold tasks score anything
    gold_correct, gold_scored = np.zeros(n), np.zeros(n)
    on_gold = np.flatnonzero(arrays.task_is_gold[arrays.task])
    if on_gold.size:
        gold_pref, gold_valid = ag.pairwise_preferences(arrays.task_gold_pos)
        task = arrays.task[on_gold]
        scored = gold_valid[task] & valid[on_gold] & (gold_pref[task] != 0)
        gold_scored[on_gold] = scored.sum(axis=1)
        gold_correct[on_gold] = (scored & (pref[on_gold] == gold_pref[task])).sum(axis=1)

    slots = np.zeros(n, dtype=np.int64)
    on_top = np.zeros(n, dtype=np.int64)
    flagged = np.zeros(n, dtype=np.int64)
    for slot in range(k):
        position = np.ascontiguousarray(arrays.rank_pos[:, slot])
        present = position >= 0
        slots += present
        on_top += position == 0
        flagged += present & (np.ascontiguousarray(arrays.flags[:, slot]) != 0)
    known = arrays.first_shown >= 0
    first_slot = np.where(known, arrays.first_shown, 0).astype(np.int64)
    first_on_top = (arrays.rank_pos[np.arange(n), first_slot] == 0) & known
    return {
        "judgments": np.ones(n),
        "matches": matches,
        "decided": decided,
        "judged": (decided > 0).astype(np.float64),
        "matches_sq": matches**2,
        "decided_sq": decided**2,
        "matches_decided": matches * decided,
        "same": loo["same"],
        "others": loo["others"],
        "length_own": loo["length_own"],
        "length_pairs": loo["length_pairs"],
        "length_own_sq": loo["length_own"].astype(np.float64) ** 2,
        "length_pairs_sq": loo["length_pairs"].astype(np.float64) ** 2,
        "length_own_pairs": loo["length_own"].astype(np.float64) * loo["length_pairs"],
        "length_others": loo["length_others"],
        "length_others_pairs": loo["length_others_pairs"],
        "gold_correct": gold_correct,
        "gold_scored": gold_scored,
        "first_credit": np.where(first_on_top, 1.0 / np.maximum(on_top, 1), 0.0),
        "first_known": known,
        "first_chance": np.where(known, 1.0 / np.maximum(slots, 1), 0.0),
        "flagged_cells": flagged,
        "cells": slots,
    }


def _flag_sums(arrays: JudgmentArrays, in_stats: np.ndarray) -> dict[str, np.ndarray]:
    """Per flag key: Fleiss' κ's sums over (task, completion) units, and how often it is set."""
    k = arrays.rank_pos.shape[1]
    keep = (arrays.rank_pos >= 0) & in_stats[:, None]
    unit = (arrays.task.astype(np.int64)[:, None] * k + np.arange(k))[keep]
    size = arrays.n_tasks * k
    everyone = np.bincount(unit, minlength=size)
    kept_flags = arrays.flags[keep]
    kappa, flagged = [], []
    for bit in range(len(arrays.flag_keys)):
        set_here = ((kept_flags >> bit) & 1).astype(bool)
        yes = np.bincount(unit[set_here], minlength=size)
        kappa.append(ag.fleiss_sums_binary(yes, everyone))
        flagged.append(float(set_here.sum()))
    n_flags = len(arrays.flag_keys)
    return {
        "flag_kappa": np.array(kappa).reshape(n_flags, 4),
        "flag_set": np.array(flagged),
        "flag_cells": np.array(float(keep.sum())),
    }
