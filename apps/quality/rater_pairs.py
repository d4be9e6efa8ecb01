"""How often each pair of raters agrees, and what that says about each rater. Pure numpy.

For two raters who both ordered a completion pair, let a_i be the chance that rater i puts it
the way most careful raters would. If raters err independently, they agree with probability
a_i a_j + (1 − a_i)(1 − a_j), so with skill s = 2a − 1,

    2 · P(i and j agree) − 1 = s_i · s_j

(the one-coin model of Dawid & Skene 1979; the rank-one structure of rater agreement that
Ghosh, Kale & McAfee 2011 use to tell good raters from bad without ground truth). An honest
rater, however careless, has s ≥ 0; one who ranks against the others has s < 0. Unlike the
leave-one-out consensus, this does not need the *other* raters of a task to be honest: with
overlap 3, an honest rater whose two co-raters are an honest one and an adversarial one
sees their majority split, while here the adversarial rater's negative skill shows in both
of its pairs.

`pair_sums` counts, per rater pair (keyed by their database ids, so sums of any two sets of
tasks add up), the completion pairs both ordered, those they ordered alike, and the
judgment pairs they came from (the units of the interval). `reliable_agreement` fits the
skills and reports each rater's agreement with the raters who are better than chance.
"""

from __future__ import annotations

import numpy as np

from apps.quality import agreement as ag

PAIR_KEYS = (
    "pairs_key",
    "pairs_agree",
    "pairs_total",
    "pairs_units",
    "pairs_agree_sq",  # Σ over judgment pairs of agree², total², agree·total: the
    "pairs_total_sq",  # clustered interval (agreement.clustered_ratio_ci)
    "pairs_agree_total",
)


DENSE_RATERS = 3000  # up to this many raters, rater pairs are summed in a dense table


def pair_sums(rater_ids: np.ndarray, task: np.ndarray, pref: np.ndarray, valid: np.ndarray):
    """Sums over every two judgments of one task by two raters (ids `rater_ids[j]`):
    {"pairs_key": id_low << 32 | id_high, "pairs_agree", "pairs_total", "pairs_units",
    and the squares and products the interval needs}."""
    order = np.argsort(task, kind="stable")
    task_sorted = task[order]
    # per completion pair, in task order: +1 / −1 as the judgment ordered it, 0 not ordered
    # (missing, or a tie, which takes no side)
    codes = np.ascontiguousarray(np.where(valid & (pref != 0), pref, 0).T[:, order])
    raters, rater_of = np.unique(rater_ids, return_inverse=True)
    rater_sorted = rater_of[order]
    n_raters = raters.shape[0]
    a_parts, b_parts, agree_parts, total_parts = [], [], [], []
    candidates = np.arange(order.size)
    offset = 1
    while candidates.size:  # judgment pairs `offset` apart in task order, within one task
        candidates = candidates[candidates + offset < order.size]
        candidates = candidates[task_sorted[candidates] == task_sorted[candidates + offset]]
        if candidates.size == 0:
            break
        partners = candidates + offset
        agree = np.zeros(candidates.size, dtype=np.int16)
        total = np.zeros(candidates.size, dtype=np.int16)
        for column in codes:
            mine, theirs = column[candidates], column[partners]
            product = mine * theirs  # +1 alike, −1 opposite, 0 one did not order
            total += product != 0
            agree += product > 0
        a_parts.append(rater_sorted[candidates])
        b_parts.append(rater_sorted[partners])
        agree_parts.append(agree)
        total_parts.append(total)
        offset += 1
    if not a_parts:
        return _empty()
    first, second = np.concatenate(a_parts), np.concatenate(b_parts)
    low, high = np.minimum(first, second), np.maximum(first, second)
    agree = np.concatenate(agree_parts).astype(np.float64)
    total = np.concatenate(total_parts).astype(np.float64)
    keep = (low != high) & (total > 0)
    low, high, agree, total = low[keep], high[keep], agree[keep], total[keep]
    if n_raters <= DENSE_RATERS:
        cell = low.astype(np.int64) * n_raters + high
        seen = np.zeros(n_raters * n_raters, dtype=bool)  # a dense table of rater pairs
        seen[cell] = True
        cells = np.flatnonzero(seen)
        position = np.zeros(seen.size, dtype=np.int64)
        position[cells] = np.arange(cells.size)
        inverse = position[cell]
    else:
        cells, inverse = np.unique(low.astype(np.int64) * n_raters + high, return_inverse=True)
    low_ids = raters[cells // n_raters].astype(np.int64)
    high_ids = raters[cells % n_raters].astype(np.int64)
    size = cells.shape[0]
    return {
        "pairs_key": low_ids << 32 | high_ids,
        "pairs_agree": np.bincount(inverse, weights=agree, minlength=size),
        "pairs_total": np.bincount(inverse, weights=total, minlength=size),
        "pairs_units": np.bincount(inverse, minlength=size).astype(np.float64),
        "pairs_agree_sq": np.bincount(inverse, weights=agree**2, minlength=size),
        "pairs_total_sq": np.bincount(inverse, weights=total**2, minlength=size),
        "pairs_agree_total": np.bincount(inverse, weights=agree * total, minlength=size),
    }


def _empty() -> dict[str, np.ndarray]:
    empty = {name: np.zeros(0) for name in PAIR_KEYS}
    empty["pairs_key"] = np.zeros(0, dtype=np.int64)
    return empty


def combine(mine: dict | None, theirs: dict | None, sign: float) -> dict[str, np.ndarray]:
    """The sums of two sets of rater pairs (`sign` −1 takes `theirs` away)."""
    mine, theirs = mine or _empty(), theirs or _empty()
    keys = np.concatenate([mine["pairs_key"], theirs["pairs_key"]]).astype(np.int64)
    unique, inverse = np.unique(keys, return_inverse=True)
    result = {"pairs_key": unique}
    for name in PAIR_KEYS[1:]:
        values = np.concatenate([mine[name], sign * theirs[name]])
        result[name] = np.bincount(inverse, weights=values, minlength=unique.size)
    keep = result["pairs_units"] > 0.5
    return {name: values[keep] for name, values in result.items()}


def reliable_agreement(pairs: dict, rater_ids: np.ndarray, iterations: int = 300):
    """Per rater (in `rater_ids` order): skill s (the fit of s_i s_j to 2·agree − 1, each
    pair weighted by its comparisons; the sign of each group of raters who share tasks set
    so that most of them are better than chance), the agreement with the raters of positive
    skill, its 95% interval (agreement.clustered_ratio_ci over judgment pairs: the
    completion pairs of two rankings are not independent), and the completion pairs each
    rater shared with any other ("comparisons", what the skill rests on)."""
    n = rater_ids.shape[0]
    empty = np.full(n, np.nan)
    if pairs["pairs_key"].size == 0 or n == 0:
        return {
            "skill": empty,
            "agreement": empty,
            "low": empty,
            "high": empty,
            "comparisons": np.zeros(n),
        }
    order = np.argsort(rater_ids)
    sorted_ids = rater_ids[order]

    def position(ids):
        where = np.clip(np.searchsorted(sorted_ids, ids), 0, n - 1)
        return np.where(sorted_ids[where] == ids, order[where], -1)

    i = position(pairs["pairs_key"] >> 32)
    j = position(pairs["pairs_key"] & ((1 << 32) - 1))
    known = (i >= 0) & (j >= 0)
    i, j = i[known], j[known]
    columns = {name: pairs[name][known] for name in PAIR_KEYS[1:]}
    agree, total = columns["pairs_agree"], columns["pairs_total"]
    observed = 2 * agree / total - 1
    skill = _fit_skills(i, j, observed, total, n, iterations)
    skill = _orient(i, j, skill, n)
    # each rater's sums over the pairs whose *other* rater is better than chance
    rater = np.concatenate([i[skill[j] > 0], j[skill[i] > 0]])
    per_rater = {
        name: np.bincount(
            rater,
            weights=np.concatenate([values[skill[j] > 0], values[skill[i] > 0]]),
            minlength=n,
        )
        for name, values in columns.items()
    }
    low, high = ag.clustered_ratio_ci(
        per_rater["pairs_agree"],
        per_rater["pairs_total"],
        per_rater["pairs_units"],
        per_rater["pairs_agree_sq"],
        per_rater["pairs_total_sq"],
        per_rater["pairs_agree_total"],
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        total_r = per_rater["pairs_total"]
        share = np.where(
            total_r > 0, per_rater["pairs_agree"] / np.where(total_r > 0, total_r, 1), np.nan
        )
    comparisons = np.bincount(i, total, minlength=n) + np.bincount(j, total, minlength=n)
    return {
        "skill": skill,
        "agreement": share,
        "low": low,
        "high": high,
        "comparisons": comparisons,
    }


def _fit_skills(i, j, observed, weight, n, iterations) -> np.ndarray:
    """Damped alternating least squares for min Σ w (m_ij − s_i s_j)², s in [−1, 1]
    (undamped, the raters of a pair chase each other's sign and never settle)."""
    skill = np.full(n, 0.5) + np.random.default_rng(0).uniform(-0.05, 0.05, n)
    for _ in range(iterations):
        numerator = np.bincount(i, weight * observed * skill[j], minlength=n) + np.bincount(
            j, weight * observed * skill[i], minlength=n
        )
        denominator = np.bincount(i, weight * skill[j] ** 2, minlength=n) + np.bincount(
            j, weight * skill[i] ** 2, minlength=n
        )
        target = np.where(denominator > 1e-9, numerator / np.maximum(denominator, 1e-9), 0.0)
        updated = np.clip(0.5 * skill + 0.5 * target, -1.0, 1.0)
        if np.max(np.abs(updated - skill)) < 1e-7:
            return updated
        skill = updated
    return skill


def _orient(i, j, skill, n) -> np.ndarray:
    """Flip the sign of each connected group of raters whose skills are mostly negative:
    the fit cannot tell a group from its mirror image, and most raters are honest."""
    parent = np.arange(n)

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    groups = np.array([root(x) for x in range(n)])
    for group in np.unique(groups):
        members = groups == group
        if np.sum(np.sign(skill[members])) < 0:
            skill[members] = -skill[members]
    return skill
