"""Agreement figures and consensus weights for a snapshot, from the quality module's math.

Pure functions on plain rows (no ORM). The quality app owns the statistics
(apps/quality/agreement.py, measures.py); this module only adapts a snapshot's judgments to
their array form.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from apps.quality import agreement as quality_agreement
from apps.quality.measures import rater_reliability


@dataclass(frozen=True)
class JudgmentRow:
    judgment_id: int
    task_id: int
    rater: str
    slots: list[int]  # completion ids in the task's canonical order
    ranking: list[list[int]]  # best-first groups of completion ids


def _arrays(rows: list[JudgmentRow]):
    k_max = max((len(r.slots) for r in rows), default=2)
    tasks = {tid: i for i, tid in enumerate(sorted({r.task_id for r in rows}))}
    rank_pos = np.zeros((len(rows), k_max), dtype=np.int8)
    for i, row in enumerate(rows):
        rank_pos[i] = quality_agreement.ranking_to_positions(
            row.ranking, quality_agreement.slot_index(row.slots), k_max
        )
    unit = np.array([tasks[r.task_id] for r in rows], dtype=np.int64)
    pref, valid = quality_agreement.pairwise_preferences(rank_pos)
    return pref, valid, unit, len(tasks)


def agreement_figures(rows: list[JudgmentRow]) -> dict:
    """Inter-rater agreement on induced pairwise comparisons (InstructGPT §5.1's measure)."""
    if not rows:
        return {"judgments": 0, "pairwise_agreement": None, "source": "none"}
    pref, valid, unit, n_units = _arrays(rows)
    counts = quality_agreement.relation_counts(pref, valid, unit, n_units)
    n = counts.sum(axis=-1)
    agree_per_unit = (counts * (counts - 1) / 2).sum(axis=-1).sum(axis=-1)
    total_per_unit = (n * (n - 1) / 2).sum(axis=-1)
    figures: dict = {
        "judgments": len(rows),
        "tasks": int(n_units),
        "tasks_with_overlap": int((total_per_unit > 0).sum()),
        "rater_pairs": int(total_per_unit.sum()),
    }
    if total_per_unit.sum() == 0:
        figures.update(pairwise_agreement=None, source="no task has two raters")
        return figures
    figures["pairwise_agreement"] = _round(quality_agreement.pairwise_agreement(counts))
    low, high = quality_agreement.bootstrap_ratio_ci(agree_per_unit, total_per_unit)
    figures["pairwise_agreement_ci"] = [_round(low), _round(high)]
    figures["krippendorff_alpha_pairs"] = _round(quality_agreement.krippendorff_alpha_pairs(counts))
    figures["source"] = "apps.quality.agreement"
    return figures


def rater_weights(rows: list[JudgmentRow]) -> tuple[dict[str, float], str]:
    """Per-rater reliability weights (mean 1 over judgments), and where they came from.

    A rater's accuracy is how often their strict pairwise preferences agree with the
    majority of the *other* raters on the same task; the quality module turns it into a
    log-odds weight (0 at chance). Raters with no overlapping judgment get weight 1.
    """
    if not rows:
        return {}, "uniform (no judgments)"
    by_task: dict[int, list[JudgmentRow]] = defaultdict(list)
    for row in rows:
        by_task[row.task_id].append(row)
    matches: dict[str, float] = defaultdict(float)
    decided: dict[str, float] = defaultdict(float)
    for task_rows in by_task.values():
        if len(task_rows) < 2:
            continue
        pref, valid, _, _ = _arrays(task_rows)
        for j, row in enumerate(task_rows):
            others = np.delete(np.arange(len(task_rows)), j)
            majority = np.sign((pref[others] * valid[others]).sum(axis=0))
            strict = valid[j] & (pref[j] != 0) & (majority != 0)
            matches[row.rater] += float((pref[j][strict] == majority[strict]).sum())
            decided[row.rater] += float(strict.sum())
    raters = sorted({r.rater for r in rows})
    weights = rater_reliability(
        np.array([matches[r] for r in raters]), np.array([decided[r] for r in raters])
    )
    by_rater = {r: float(w) for r, w in zip(raters, weights, strict=True)}
    mean = np.mean([by_rater[r.rater] for r in rows])
    if not mean > 0:
        return {r: 1.0 for r in raters}, "uniform (every rater at chance)"
    return (
        {r: round(w / mean, 4) for r, w in by_rater.items()},
        "apps.quality.measures.rater_reliability",
    )


def _round(value) -> float | None:
    value = float(value)
    return None if not np.isfinite(value) else round(value, 4)
