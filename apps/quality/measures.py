"""Project statistics, per-rater measures and consensus over a whole project: pure numpy.

`compute_quality` takes a `JudgmentArrays` (columns, built from the database by
`selectors.judgment_arrays`, or synthesised by tests and bench/agreement_scale.py) and
returns a JSON-ready dict. Its definitions:

- Figures of the project (pairwise agreement, α, κ, series) use *included* judgments only
  (not rejected by a reviewer) on regular tasks; gold tasks are scored against their key.
- A rater's agreement is with the leave-one-out consensus: on each completion pair, the
  majority direction of the *other* raters of that task; pairs where the others are tied
  or split evenly are left out. A tie given by the rater counts as a disagreement.
- Peers: a rater is flagged when a measure lies far from the median of raters with at
  least `min_judgments` judgments (robust z, Hampel 1974), with a floor on the distance so
  that a tight crowd does not flag ordinary noise; the reason names both values.
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
    task_lengths: np.ndarray  # (T, k) characters per completion, nan no slot
    task_ids: np.ndarray  # (T,) database ids
    rater_ids: np.ndarray  # (R,) database ids
    flag_keys: list[str] = field(default_factory=list)
    rater_names: list[str] = field(default_factory=list)

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
    min_judgments: int = 10  # fewer than this: measures shown, never flagged
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


def _safe_ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def _json_number(value, digits: int = 4):
    value = float(value)
    return None if not np.isfinite(value) else round(value, digits)


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


def time_buckets(created: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Bucket index per timestamp: days, or weeks when the data spans more than 120 days."""
    if created.size == 0:
        return np.zeros(0, dtype=np.int64), 0.0, DAY
    start = np.floor(created.min() / DAY) * DAY
    width = DAY if created.max() - start <= 120 * DAY else 7 * DAY
    return ((created - start) // width).astype(np.int64), float(start), width


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
    """
    planes = counts.astype(np.int32)
    own = (weights.astype(np.int32)[:, None] * valid).astype(np.int32)
    plus = planes[:, :, 2][task] - own * (pref == 1)
    minus = planes[:, :, 0][task] - own * (pref == -1)
    ties = planes[:, :, 1][task] - own * (pref == 0)
    decided = valid & (plus != minus)
    same = np.where(pref == 1, plus, np.where(pref == -1, minus, ties))
    longer = longer_first[task]
    direction = pref * longer
    strict = valid & (direction != 0)
    return {
        "matches": (decided & (pref == np.sign(plus - minus))).sum(axis=1),
        "decided": decided.sum(axis=1),
        "same": np.where(valid, same, 0).sum(axis=1),
        "others": np.where(valid, plus + minus + ties, 0).sum(axis=1),
        "length_own": np.where(strict, direction, 0).sum(axis=1),
        "length_pairs": strict.sum(axis=1),
        "length_others": np.where(strict, longer * (plus - minus), 0).sum(axis=1),
        "length_others_pairs": np.where(strict, plus + minus, 0).sum(axis=1),
    }


def rater_reliability(matches: np.ndarray, decided: np.ndarray, prior_pairs: float = 20.0):
    """Weight of each rater in the consensus: log-odds of agreeing with the others.

    With independent raters who are right with probability a_r, weighting votes by
    log(a_r / (1 − a_r)) is the optimal decision rule (Nitzan & Paroush 1982). a_r is
    shrunk toward 0.75 by `prior_pairs` pseudo-comparisons and clipped to [0.5, 0.98], so
    a rater at chance weighs 0 and no rater dominates.
    """
    accuracy = (matches + 0.75 * prior_pairs) / (decided + prior_pairs)
    accuracy = np.clip(accuracy, 0.5, 0.98)
    return np.log(accuracy / (1 - accuracy))


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


def _series(arrays, in_stats, agree_t, total_t, options, rng) -> dict:
    bucket, start, width = time_buckets(arrays.created)
    n_buckets = int(bucket.max()) + 1 if bucket.size else 0
    if n_buckets == 0:
        return {"bucket_seconds": width, "start": start, "points": []}
    last = np.full(arrays.n_tasks, -1, dtype=np.int64)
    np.maximum.at(last, arrays.task[in_stats], bucket[in_stats])
    rated = (last >= 0) & (total_t > 0)
    task_bucket = last[rated]
    agree_b = np.bincount(task_bucket, agree_t[rated], minlength=n_buckets)
    total_b = np.bincount(task_bucket, total_t[rated], minlength=n_buckets)
    per_bucket = np.bincount(bucket, minlength=n_buckets)
    reviewed = np.isfinite(arrays.reviewed)
    reviewed_bucket = np.clip(
        ((arrays.reviewed[reviewed] - start) // width).astype(np.int64), 0, None
    )
    reviewed_b = np.bincount(np.minimum(reviewed_bucket, n_buckets - 1), minlength=n_buckets)
    backlog = np.cumsum(per_bucket) - np.cumsum(reviewed_b)
    order = np.argsort(task_bucket, kind="stable")
    bounds = np.searchsorted(task_bucket[order], np.arange(n_buckets + 1))
    agree_sorted, total_sorted = agree_t[rated][order], total_t[rated][order]
    points = []
    for b in range(n_buckets):
        low = high = float("nan")
        if total_b[b] > 0:
            piece = slice(bounds[b], bounds[b + 1])
            low, high = ag.bootstrap_ratio_ci(
                agree_sorted[piece], total_sorted[piece], n_boot=options.n_boot_series, rng=rng
            )
        points.append(
            {
                "t": start + b * width,
                "agreement": _json_number(agree_b[b] / total_b[b]) if total_b[b] else None,
                "ci": [_json_number(low), _json_number(high)],
                "tasks": int(np.count_nonzero(task_bucket == b)),
                "judgments": int(per_bucket[b]),
                "backlog": int(backlog[b]),
            }
        )
    return {"bucket_seconds": width, "start": start, "points": points}


def _flag_kappas(arrays: JudgmentArrays, in_stats: np.ndarray) -> dict:
    k = arrays.rank_pos.shape[1]
    slot_exists = arrays.rank_pos >= 0
    keep = slot_exists & in_stats[:, None]
    unit = (arrays.task.astype(np.int64)[:, None] * k + np.arange(k))[keep]
    result = {}
    for bit, key in enumerate(arrays.flag_keys):
        flagged = ((arrays.flags >> bit) & 1).astype(bool)[keep]
        size = arrays.n_tasks * k
        yes = np.bincount(unit, weights=flagged, minlength=size)
        everyone = np.bincount(unit, minlength=size)
        table = np.stack([yes, everyone - yes], axis=1)
        result[key] = {
            "kappa": _json_number(ag.fleiss_kappa(table)),
            "rate": _json_number(flagged.mean() if flagged.size else float("nan")),
        }
    return result


def compute_quality(arrays: JudgmentArrays, options: QualityOptions | None = None) -> dict:
    """Project figures, per-rater measures with flags and trends, and consensus weights."""
    options = options or QualityOptions()
    rng = np.random.default_rng(options.seed)
    n, n_tasks, n_raters = arrays.task.shape[0], arrays.n_tasks, arrays.n_raters
    pref, valid = ag.pairwise_preferences(arrays.rank_pos)
    gold_judgment = arrays.task_is_gold[arrays.task]
    in_stats = arrays.included & ~gold_judgment
    stats_weight = in_stats.astype(np.float64)
    counts = ag.relation_counts(pref, valid, arrays.task, n_tasks, weights=stats_weight)
    agree_t, total_t = ag.agreeing_rater_pairs(counts)
    rated = total_t > 0
    low, high = ag.bootstrap_ratio_ci(
        agree_t[rated], total_t[rated], n_boot=options.n_boot, rng=rng
    )
    project = {
        "judgments": int(n),
        "judgments_included": int(in_stats.sum()),
        "tasks": int(np.count_nonzero(np.bincount(arrays.task, minlength=n_tasks))),
        "tasks_with_overlap": int(rated.sum()),
        "raters": int(np.count_nonzero(np.bincount(arrays.rater, minlength=n_raters))),
        "pending_review": int(np.count_nonzero(~np.isfinite(arrays.reviewed))),
        "pairwise_agreement": _json_number(
            agree_t.sum() / total_t.sum() if total_t.sum() else np.nan
        ),
        "pairwise_agreement_ci": [_json_number(low), _json_number(high)],
        "alpha_pairs_nominal": _json_number(ag.krippendorff_alpha_pairs(counts[rated])),
        "alpha_ranks_ordinal": _json_number(
            ag.krippendorff_alpha_ranks(arrays.rank_pos[in_stats], arrays.task[in_stats], n_tasks)
        ),
        "flags": _flag_kappas(arrays, in_stats),
        "series": _series(arrays, in_stats, agree_t, total_t, options, rng),
    }
    raters = _rater_measures(arrays, pref, valid, counts, stats_weight, options)
    return {"project": project, "raters": raters}


def _rater_measures(arrays, pref, valid, counts, stats_weight, options) -> list[dict]:
    n_raters = arrays.n_raters
    rater = arrays.rater

    def per_rater(values):
        return np.bincount(rater, weights=np.asarray(values, dtype=np.float64), minlength=n_raters)

    judgments = np.bincount(rater, minlength=n_raters)
    k = arrays.rank_pos.shape[1]
    first, second = ag.slot_pairs(k)
    lengths = np.nan_to_num(arrays.task_lengths, nan=0.0)
    longer_first = np.sign(lengths[:, first] - lengths[:, second]).astype(np.int8)
    sums = leave_one_out(pref, valid, arrays.task, counts, stats_weight, longer_first)
    matches, decided = sums["matches"], sums["decided"]
    agreement = _safe_ratio(per_rater(matches), per_rater(decided))
    peer_agreement = _safe_ratio(per_rater(sums["same"]), per_rater(sums["others"]))
    weight = rater_reliability(per_rater(matches), per_rater(decided))

    gold_pref, gold_valid = ag.pairwise_preferences(arrays.task_gold_pos)
    is_gold = arrays.task_is_gold[arrays.task]
    scored = gold_valid[arrays.task] & valid & (gold_pref[arrays.task] != 0) & is_gold[:, None]
    correct = (scored & (pref == gold_pref[arrays.task])).sum(axis=1)
    gold_pairs = per_rater(scored.sum(axis=1))
    gold_accuracy = _safe_ratio(per_rater(correct), gold_pairs)

    slots = (arrays.rank_pos >= 0).sum(axis=1)
    known = arrays.first_shown >= 0
    first_slot = np.where(known, arrays.first_shown, 0).astype(np.int64)
    top = arrays.rank_pos == 0
    first_on_top = top[np.arange(top.shape[0]), first_slot] & known
    credit = np.where(first_on_top, 1.0 / np.maximum(top.sum(axis=1), 1), 0.0)
    shown = per_rater(known)
    first_rate = _safe_ratio(per_rater(credit), shown)
    chance = _safe_ratio(per_rater(np.where(known, 1.0 / np.maximum(slots, 1), 0.0)), shown)
    first_p = np.where(
        shown > 0,
        ag.binomial_excess_pvalue(np.round(per_rater(credit)), shown, np.nan_to_num(chance)),
        np.nan,
    )

    length_tau = _safe_ratio(per_rater(sums["length_own"]), per_rater(sums["length_pairs"]))
    peer_length_tau = _safe_ratio(
        per_rater(sums["length_others"]), per_rater(sums["length_others_pairs"])
    )

    cells = arrays.rank_pos >= 0
    flag_rate = _safe_ratio(
        per_rater(((arrays.flags != 0) & cells).sum(axis=1)), per_rater(cells.sum(axis=1))
    )
    median_seconds = group_median(arrays.time_spent_ms / 1000.0, rater, n_raters)

    measures = {
        "judgments": judgments.astype(np.float64),
        "agreement": agreement,
        "peer_agreement": peer_agreement,
        "gold_accuracy": gold_accuracy,
        "first_ranked_first": first_rate,
        "first_chance": chance,
        "first_pvalue": first_p,
        "length_tau": length_tau,
        "peer_length_tau": peer_length_tau,
        "flag_rate": flag_rate,
        "median_seconds": median_seconds,
        "weight": weight,
    }
    flags = _peer_flags(measures, gold_pairs, options)
    trends = _rater_trends(
        arrays, matches, decided, correct, scored.sum(axis=1), credit, known, cells
    )
    rows = []
    for r in range(n_raters):
        if judgments[r] == 0:
            continue
        row = {"rater_id": int(arrays.rater_ids[r])}
        if arrays.rater_names:
            row["name"] = arrays.rater_names[r]
        for name, values in measures.items():
            row[name] = _json_number(values[r], 6 if name == "first_pvalue" else 4)
        row["judgments"] = int(judgments[r])
        row["gold_pairs"] = int(gold_pairs[r])
        row["flags"] = flags[r]
        row["trend"] = trends[r]
        rows.append(row)
    return rows


def _peer_flags(measures: dict, gold_pairs: np.ndarray, options: QualityOptions) -> list[list]:
    n_raters = measures["judgments"].shape[0]
    flags: list[list] = [[] for _ in range(n_raters)]
    eligible = measures["judgments"] >= options.min_judgments

    def crowd(name):
        return ag.robust_spread(measures[name][eligible])

    agreement_median, agreement_sd = crowd("agreement")
    agreement_cut = agreement_median - max(
        options.z_threshold * np.nan_to_num(agreement_sd), options.min_agreement_gap
    )
    time_median, _ = crowd("median_seconds")
    flag_median, flag_sd = crowd("flag_rate")
    flag_cut = flag_median + max(
        options.z_threshold * np.nan_to_num(flag_sd), options.min_flag_rate_gap
    )
    for r in np.flatnonzero(eligible):
        value = measures["agreement"][r]
        if np.isfinite(value) and value < agreement_cut:
            flags[r].append(
                {
                    "measure": "agreement",
                    "reason": f"agrees with the other raters' consensus {value:.0%} of the time; "
                    f"peers' median {agreement_median:.0%}",
                }
            )
        rate, chance = measures["first_ranked_first"][r], measures["first_chance"][r]
        if (
            measures["first_pvalue"][r] < options.max_first_pvalue
            and rate - chance > options.min_first_excess
        ):
            flags[r].append(
                {
                    "measure": "position_bias",
                    "reason": f"ranks the first completion shown first {rate:.0%} of the time "
                    f"(chance {chance:.0%}, binomial p = {measures['first_pvalue'][r]:.1e})",
                }
            )
        own, peers = measures["length_tau"][r], measures["peer_length_tau"][r]
        if np.isfinite(own) and np.isfinite(peers) and abs(own - peers) > options.min_length_gap:
            side = "longer" if own > peers else "shorter"
            flags[r].append(
                {
                    "measure": "length_bias",
                    "reason": f"prefers the {side} completion more than peers "
                    f"(τ with length {own:+.2f} against {peers:+.2f} on the same tasks)",
                }
            )
        flag_rate = measures["flag_rate"][r]
        if np.isfinite(flag_rate) and flag_rate > flag_cut:
            flags[r].append(
                {
                    "measure": "flag_rate",
                    "reason": f"flags {flag_rate:.0%} of completions; peers' median "
                    f"{flag_median:.0%}",
                }
            )
        seconds = measures["median_seconds"][r]
        if (
            np.isfinite(seconds)
            and np.isfinite(time_median)
            and seconds < options.fast_ratio * time_median
        ):
            flags[r].append(
                {
                    "measure": "speed",
                    "reason": f"median {seconds:.0f} s per task; peers' median {time_median:.0f} s",
                }
            )
    for r in range(n_raters):
        accuracy = measures["gold_accuracy"][r]
        if gold_pairs[r] >= options.min_gold_pairs and accuracy < options.gold_floor:
            flags[r].append(
                {
                    "measure": "gold_accuracy",
                    "reason": f"matches the gold answers on {accuracy:.0%} of comparisons "
                    f"(floor {options.gold_floor:.0%})",
                }
            )
    return flags


def _rater_trends(arrays, matches, decided, correct, gold_scored, credit, known, cells):
    """Per rater and time bucket: judgments, agreement, gold accuracy, first-ranked-first,
    flag rate — the measures' trends over time."""
    bucket, start, width = time_buckets(arrays.created)
    n_raters = arrays.n_raters
    n_buckets = int(bucket.max()) + 1 if bucket.size else 1
    cell = arrays.rater.astype(np.int64) * n_buckets + bucket
    size = n_raters * n_buckets

    def grid(values):
        return np.bincount(
            cell, weights=np.asarray(values, dtype=np.float64), minlength=size
        ).reshape(n_raters, n_buckets)

    count = grid(np.ones_like(credit))
    agreement = _safe_ratio(grid(matches), grid(decided))
    gold = _safe_ratio(grid(correct), grid(gold_scored))
    first = _safe_ratio(grid(credit), grid(known))
    flag_rate = _safe_ratio(
        grid(((arrays.flags != 0) & cells).sum(axis=1)), grid(cells.sum(axis=1))
    )
    columns = {
        "judgments": count,
        "agreement": agreement,
        "gold_accuracy": gold,
        "first_ranked_first": first,
        "flag_rate": flag_rate,
    }
    times = (start + np.arange(n_buckets) * width).tolist()
    rounded = {name: _json_list(values) for name, values in columns.items()}
    trends = []
    for r in range(n_raters):
        used = np.flatnonzero(count[r]).tolist()
        trend = {"t": [times[b] for b in used]}
        for name, rows in rounded.items():
            row = rows[r]
            trend[name] = [row[b] for b in used]
        trends.append(trend)
    return trends


def _json_list(values: np.ndarray, digits: int = 4) -> list:
    """Nested lists of rounded floats with None for nan: JSON without a per-value call."""
    rounded = np.round(np.asarray(values, dtype=np.float64), digits)
    finite = np.isfinite(rounded)
    listed = rounded.tolist()
    if finite.all():
        return listed
    return _none_for_nan(listed)


def _none_for_nan(listed):
    if isinstance(listed, list):
        return [_none_for_nan(item) for item in listed]
    return None if listed != listed else listed
