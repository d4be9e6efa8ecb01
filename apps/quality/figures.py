"""The rater-quality figures from their sufficient statistics (aggregates.py). Pure numpy.

`quality_figures` returns what reviewers see, as JSON-ready data:
{"project": {...}, "raters": [...]} (the shape `statistics.compute_quality` documents).
Everything here is a function of sums and per-task values, so a refresh that updated the
sums of a few tasks costs what drawing the figures costs, not what reading a million
judgments costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.quality import agreement as ag
from apps.quality import rater_pairs
from apps.quality.aggregates import QualitySums, TaskValues
from apps.quality.measures import DAY, QualityOptions, skill_reliability

# A rater who orders a pair at random follows the others' majority half of the time: the
# honest raters' range never starts below this, however noisy they are.
CHANCE = 0.5


@dataclass
class RaterIndex:
    """The raters the sums' rows stand for: database ids, names, median seconds per task."""

    ids: np.ndarray
    names: list[str]
    median_seconds: np.ndarray


def safe_ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def json_number(value, digits: int = 4):
    value = float(value)
    return None if not np.isfinite(value) else round(value, digits)


def quality_figures(
    sums: QualitySums,
    tasks: TaskValues,
    raters: RaterIndex,
    *,
    flag_keys: list[str],
    options: QualityOptions,
) -> dict:
    """Project figures, per-rater measures with flags and trends, and consensus weights."""
    rng = np.random.default_rng(options.seed)
    rated = tasks.total > 0
    low, high = ag.bootstrap_ratio_ci(
        tasks.agree[rated], tasks.total[rated], n_boot=options.n_boot, rng=rng
    )
    total = tasks.total.sum()
    project = {
        "judgments": int(sums["judgments"]),
        "judgments_included": int(sums["included"]),
        "tasks": int(np.count_nonzero(tasks.judgments)),
        "tasks_with_overlap": int(rated.sum()),
        "raters": int(np.count_nonzero(sums["rater_judgments"])),
        "pending_review": int(sums["pending"]),
        "pairwise_agreement": json_number(tasks.agree.sum() / total if total else np.nan),
        "pairwise_agreement_ci": [json_number(low), json_number(high)],
        "alpha_pairs_nominal": json_number(
            ag.alpha_from_coincidences(sums["coincidence_pairs"], "nominal")
        ),
        "alpha_ranks_ordinal": json_number(
            ag.alpha_from_coincidences(sums["coincidence_ranks"], "ordinal")
        ),
        "flags": {
            key: {
                "kappa": json_number(ag.kappa_from_sums(sums["flag_kappa"][bit])),
                "rate": json_number(safe_ratio(sums["flag_set"][bit], sums["flag_cells"])),
            }
            for bit, key in enumerate(flag_keys)
        },
    }
    buckets = Buckets.of(sums)
    project["series"] = _series(sums, tasks, buckets, options, rng)
    return {"project": project, "raters": _rater_rows(sums, raters, buckets, options)}


@dataclass
class Buckets:
    """Days, or weeks when the judgments span more than 120 days, from the first day with a
    judgment (`first_day`, in days since the epoch; sums' day arrays start at `origin`)."""

    first_day: int
    origin: int
    days_per_bucket: int
    count: int

    @classmethod
    def of(cls, sums: QualitySums) -> Buckets:
        active = np.flatnonzero(sums["day_judgments"])
        if active.size == 0:
            return cls(first_day=0, origin=sums.day_origin, days_per_bucket=1, count=0)
        span = int(active[-1] - active[0]) + 1
        per = 1 if span - 1 <= 120 else 7
        return cls(
            first_day=sums.day_origin + int(active[0]),
            origin=sums.day_origin,
            days_per_bucket=per,
            count=(span - 1) // per + 1,
        )

    @property
    def start(self) -> float:
        return self.first_day * DAY

    @property
    def seconds(self) -> float:
        return self.days_per_bucket * DAY

    def of_days(self, days: np.ndarray) -> np.ndarray:
        """Bucket of each day since the epoch."""
        since = np.asarray(days) - self.first_day
        return np.clip(since // self.days_per_bucket, 0, max(self.count - 1, 0))

    def sum_columns(self, grid: np.ndarray) -> np.ndarray:
        """(rows, days from `origin`) → (rows, buckets), summing the days of each bucket; a
        day before the first joins the first bucket, one after the last the last."""
        width = self.count * self.days_per_bucket
        days = np.zeros((grid.shape[0], width))
        offset = self.first_day - self.origin  # column of the first day in `grid`
        before = grid[:, : max(offset, 0)].sum(axis=1)
        inside = grid[:, max(offset, 0) : offset + width]
        days[:, : inside.shape[1]] = inside
        days[:, 0] += before
        days[:, width - 1] += grid[:, offset + width :].sum(axis=1)
        return days.reshape(grid.shape[0], self.count, self.days_per_bucket).sum(axis=2)


def _series(sums, tasks: TaskValues, buckets: Buckets, options, rng) -> dict:
    if buckets.count == 0:
        return {"bucket_seconds": DAY, "start": 0.0, "points": []}
    n_buckets = buckets.count
    rated = (tasks.last_day >= 0) & (tasks.total > 0)
    task_bucket = buckets.of_days(tasks.last_day[rated])
    agree_t, total_t = tasks.agree[rated], tasks.total[rated]
    agree_b = np.bincount(task_bucket, agree_t, minlength=n_buckets)
    total_b = np.bincount(task_bucket, total_t, minlength=n_buckets)
    per_bucket = buckets.sum_columns(sums["day_judgments"][None, :])[0]
    reviewed_b = buckets.sum_columns(sums["day_reviewed"][None, :])[0]
    backlog = np.cumsum(per_bucket) - np.cumsum(reviewed_b)
    order = np.argsort(task_bucket, kind="stable")
    bounds = np.searchsorted(task_bucket[order], np.arange(n_buckets + 1))
    tasks_b = np.diff(bounds)
    agree_sorted, total_sorted = agree_t[order], total_t[order]
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
                "t": buckets.start + b * buckets.seconds,
                "agreement": json_number(agree_b[b] / total_b[b]) if total_b[b] else None,
                "ci": [json_number(low), json_number(high)],
                "tasks": int(tasks_b[b]),
                "judgments": int(per_bucket[b]),
                "backlog": int(backlog[b]),
            }
        )
    return {"bucket_seconds": buckets.seconds, "start": buckets.start, "points": points}


def _rater_measures(sums: QualitySums, raters: RaterIndex) -> dict[str, np.ndarray]:
    def total(name):
        values = sums[f"rater_{name}"]
        padded = np.zeros(raters.ids.shape[0])
        padded[: values.shape[0]] = values
        return padded

    shown = total("first_known")
    chance = safe_ratio(total("first_chance"), shown)
    ci_low, ci_high = ag.clustered_ratio_ci(
        total("matches"),
        total("decided"),
        total("judged"),
        total("matches_sq"),
        total("decided_sq"),
        total("matches_decided"),
    )
    reliable = rater_pairs.reliable_agreement(sums.pairs, raters.ids)
    # τ with length as a share: (τ + 1) / 2 = Σ (own + pairs) / 2 over Σ pairs
    own, pairs = total("length_own"), total("length_pairs")
    tau_low, tau_high = ag.clustered_ratio_ci(
        (own + pairs) / 2,
        pairs,
        total("judged"),
        (total("length_own_sq") + 2 * total("length_own_pairs") + total("length_pairs_sq")) / 4,
        total("length_pairs_sq"),
        (total("length_own_pairs") + total("length_pairs_sq")) / 2,
    )
    return {
        "length_tau_low": 2 * tau_low - 1,
        "length_tau_high": 2 * tau_high - 1,
        "judgments": total("judgments"),
        "agreement": safe_ratio(total("matches"), total("decided")),
        "reliable_agreement": reliable["agreement"],
        "reliable_low": reliable["low"],
        "reliable_high": reliable["high"],
        "skill": reliable["skill"],
        "agreement_low": ci_low,
        "agreement_high": ci_high,
        "peer_agreement": safe_ratio(total("same"), total("others")),
        "gold_accuracy": safe_ratio(total("gold_correct"), total("gold_scored")),
        "first_ranked_first": safe_ratio(total("first_credit"), shown),
        "first_chance": chance,
        "first_pvalue": np.where(
            shown > 0,
            ag.binomial_excess_pvalue(
                np.round(total("first_credit")), shown, np.nan_to_num(chance)
            ),
            np.nan,
        ),
        "length_tau": safe_ratio(total("length_own"), total("length_pairs")),
        "peer_length_tau": safe_ratio(total("length_others"), total("length_others_pairs")),
        "flag_rate": safe_ratio(total("flagged_cells"), total("cells")),
        "median_seconds": raters.median_seconds,
        "weight": skill_reliability(reliable["skill"], reliable["comparisons"]),
        "gold_pairs": total("gold_scored"),
    }


# Measures a rater row reports, in this order (the CI and the gold pairs are added apart).
ROW_MEASURES = (
    "judgments",
    "agreement",
    "peer_agreement",
    "gold_accuracy",
    "first_ranked_first",
    "first_chance",
    "first_pvalue",
    "length_tau",
    "peer_length_tau",
    "flag_rate",
    "median_seconds",
    "weight",
)


def _rater_rows(sums, raters: RaterIndex, buckets: Buckets, options) -> list[dict]:
    measures = _rater_measures(sums, raters)
    flags, evidence = peer_flags(measures, options)
    trends = _rater_trends(sums, raters.ids.shape[0], buckets)
    rows = []
    for r in np.argsort(raters.ids, kind="stable"):
        if measures["judgments"][r] == 0:
            continue
        row = {"rater_id": int(raters.ids[r])}
        if raters.names:
            row["name"] = raters.names[r]
        for name in ROW_MEASURES:
            row[name] = json_number(measures[name][r], 6 if name == "first_pvalue" else 4)
        row["judgments"] = int(measures["judgments"][r])
        row["agreement_ci"] = [
            json_number(measures["agreement_low"][r]),
            json_number(measures["agreement_high"][r]),
        ]
        row["reliable_agreement"] = json_number(measures["reliable_agreement"][r])
        row["reliable_agreement_ci"] = [
            json_number(measures["reliable_low"][r]),
            json_number(measures["reliable_high"][r]),
        ]
        row["skill"] = json_number(measures["skill"][r])
        row["gold_pairs"] = int(measures["gold_pairs"][r])
        row["flags"] = flags[r]
        row["evidence"] = evidence[r]
        row["trend"] = trends[r]
        rows.append(row)
    return rows


def peer_flags(measures: dict, options: QualityOptions) -> tuple[list[list], list[dict]]:
    """Each rater's flags (measure and reason) and how much evidence there is about them.

    Agreement here is with the reliable raters (rater_pairs.py: the share of completion
    pairs both ordered alike, over the raters whose skill is above chance), which an
    adversarial co-rater does not drag down. The crowd is the raters with at least
    `min_judgments` judgments (all raters with an agreement figure while fewer than three
    have that many); their median less max(z · robust SD, min_agreement_gap) is the crowd's
    cut, and the honest raters' range starts at the higher of that cut and chance (an
    honest rater, however careless, agrees at least at chance). A rater is flagged on
    agreement when
    - the whole 95% interval of their agreement lies below the honest raters' range,
      however few their judgments (an adversarial rater shows within a handful), or
    - with enough judgments, their agreement itself lies below the crowd's cut.
    The other measures flag only raters with enough judgments. `evidence` says which:
    {"enough": bool, "judgments": n, "needed": N}.
    """
    n_raters = measures["judgments"].shape[0]
    flags: list[list] = [[] for _ in range(n_raters)]
    eligible = measures["judgments"] >= options.min_judgments
    agreement = measures["reliable_agreement"]
    crowd = eligible & np.isfinite(agreement)
    if crowd.sum() < 3:
        crowd = np.isfinite(agreement)

    def spread(name, among):
        return ag.robust_spread(measures[name][among])

    agreement_median, agreement_sd = spread("reliable_agreement", crowd)
    agreement_cut = agreement_median - max(
        options.z_threshold * np.nan_to_num(agreement_sd), options.min_agreement_gap
    )
    honest_bottom = max(agreement_cut, CHANCE) if np.isfinite(agreement_cut) else CHANCE
    time_median, _ = spread("median_seconds", eligible)
    length_median, _ = spread("length_tau", eligible)
    flag_median, flag_sd = spread("flag_rate", eligible)
    flag_cut = flag_median + max(
        options.z_threshold * np.nan_to_num(flag_sd), options.min_flag_rate_gap
    )
    low, high = measures["reliable_low"], measures["reliable_high"]
    for r in range(n_raters):
        value = agreement[r]
        whole_interval_below = np.isfinite(high[r]) and high[r] < honest_bottom
        far_below = eligible[r] and np.isfinite(value) and value < agreement_cut
        if whole_interval_below or far_below:
            against = " (they rank against the others)" if high[r] < CHANCE else ""
            bottom = honest_bottom if whole_interval_below else agreement_cut
            flags[r].append(
                {
                    "measure": "agreement",
                    "reason": f"agrees with the reliable raters on {value:.0%} of the pairs "
                    f"both ordered (95% CI {low[r]:.0%}–{high[r]:.0%}){against}; the honest "
                    f"raters' range starts at {bottom:.0%} "
                    f"(median {agreement_median:.0%}, chance {CHANCE:.0%})",
                }
            )
    for r in np.flatnonzero(eligible):
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
        low, high = measures["length_tau_low"][r], measures["length_tau_high"][r]
        # The whole interval of their τ beyond the others on the same tasks and beyond the
        # crowd's usual τ: the others of a few tasks can be one biased (or, in a small crowd,
        # adversarial) rater, and a few judgments give a wide τ.
        references = [value for value in (peers, length_median) if np.isfinite(value)]
        if np.isfinite(own) and len(references) == 2:
            longer = low > max(references) + options.min_length_gap
            shorter = high < min(references) - options.min_length_gap
            if longer or shorter:
                flags[r].append(
                    {
                        "measure": "length_bias",
                        "reason": f"prefers the {'longer' if longer else 'shorter'} completion "
                        f"more than peers (τ with length {own:+.2f}, 95% CI {low:+.2f} to "
                        f"{high:+.2f}, against {peers:+.2f} on the same tasks; raters' "
                        f"median {length_median:+.2f})",
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
        if measures["gold_pairs"][r] >= options.min_gold_pairs and accuracy < options.gold_floor:
            flags[r].append(
                {
                    "measure": "gold_accuracy",
                    "reason": f"matches the gold answers on {accuracy:.0%} of comparisons "
                    f"(floor {options.gold_floor:.0%})",
                }
            )
    evidence = [
        {
            "enough": bool(eligible[r]),
            "judgments": int(measures["judgments"][r]),
            "needed": options.min_judgments,
        }
        for r in range(n_raters)
    ]
    return flags, evidence


def _rater_trends(sums: QualitySums, n_raters: int, buckets: Buckets) -> list[dict]:
    """Per rater and time bucket: judgments, agreement, gold accuracy, first-ranked-first,
    flag rate — the measures' trends over time."""
    count = max(buckets.count, 1)
    grid_buckets = Buckets(buckets.first_day, buckets.origin, buckets.days_per_bucket, count)

    def grid(name):
        values = sums[f"grid_{name}"]
        padded = np.zeros((n_raters, values.shape[1]))
        padded[: values.shape[0]] = values
        return grid_buckets.sum_columns(padded)

    judgments = grid("judgments")
    columns = {
        "judgments": judgments,
        "agreement": safe_ratio(grid("matches"), grid("decided")),
        "gold_accuracy": safe_ratio(grid("gold_correct"), grid("gold_scored")),
        "first_ranked_first": safe_ratio(grid("first_credit"), grid("first_known")),
        "flag_rate": safe_ratio(grid("flagged_cells"), grid("cells")),
    }
    times = buckets.start + np.arange(count) * buckets.seconds
    shown = {name: _json_values(values) for name, values in columns.items()}
    trends = []
    for r in range(n_raters):
        used = np.flatnonzero(judgments[r])
        trend = {"t": times[used].tolist()}
        for name, values in shown.items():
            trend[name] = values[r, used].tolist()
        trends.append(trend)
    return trends


def _json_values(values: np.ndarray, digits: int = 4) -> np.ndarray:
    """Rounded floats, None for nan, as an object array (tolist() gives JSON-ready lists)."""
    rounded = np.round(np.asarray(values, dtype=np.float64), digits)
    shown = rounded.astype(object)
    shown[~np.isfinite(rounded)] = None
    return shown
