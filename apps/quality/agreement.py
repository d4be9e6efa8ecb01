"""Agreement statistics for ranked comparisons: pure functions on numpy arrays, no ORM.

The shared representation is one row per judgment and one column per completion slot of
its task, in the task's canonical order (not the order the rater saw):

    rank_pos[j, k]  best-first group index (0 = best; equal values are a tie), -1 = no slot.

From it `pairwise_preferences` derives, for every unordered slot pair (a < b),

    pref[j, p]  +1 when a ≻ b, -1 when b ≻ a, 0 for a tie;  valid[j, p] when both slots exist.

Everything else (agreement, α, τ-b, consensus) works on those arrays, so that a million
judgments cost a few vector operations, not a Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from krippendorff import krippendorff as _kripp
from scipy import stats

MIN_CLUSTERS = 10  # clusters below which a clustered interval counts each as one trial
RELATIONS = 3  # index of a relation in count arrays: 0 = "b ≻ a", 1 = tie, 2 = "a ≻ b"


def slot_pairs(k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """The unordered slot pairs (a < b) of a task with `k_max` slots, in a fixed order."""
    first, second = np.triu_indices(k_max, 1)
    return first, second


def ranking_to_positions(
    ranking: list[list[int]] | None, slot_of: Mapping[int, int], k_max: int
) -> np.ndarray:
    """Best-first groups of completion ids → group index per canonical slot, -1 where no
    completion of the ranking sits (`slot_of`: completion id → slot). The one place a ranking
    becomes rank positions: quality statistics, screening and the loop's snapshots use it."""
    positions = np.full(k_max, -1, dtype=np.int8)
    for group_index, group in enumerate(ranking or []):
        for cid in group:
            slot = slot_of.get(cid)
            if slot is not None:
                positions[slot] = group_index
    return positions


def slot_index(completion_ids: list[int]) -> dict[int, int]:
    """completion id → slot, for completions in their canonical order."""
    return {cid: i for i, cid in enumerate(completion_ids)}


def pairwise_preferences(rank_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Induced pairwise preferences of each judgment (see the module docstring).

    A ranking of K items induces C(K, 2) comparisons; InstructGPT trains its reward model on
    exactly these (Ouyang et al. 2022, §3.5 eq. 1) and measures agreement on them (§5.1).
    """
    first, second = slot_pairs(rank_pos.shape[1])
    a = rank_pos[:, first].astype(np.int16)
    b = rank_pos[:, second].astype(np.int16)
    valid = (a >= 0) & (b >= 0)
    pref = np.sign(b - a).astype(np.int8)
    pref[~valid] = 0
    return pref, valid


def relation_counts(
    pref: np.ndarray, valid: np.ndarray, unit: np.ndarray, n_units: int, weights=None
) -> np.ndarray:
    """Counts of each relation per (unit, pair): shape (n_units, n_pairs, 3).

    `unit[j]` is the task index of judgment j; `weights[j]` (default 1) lets a caller leave
    judgments out (weight 0) without copying the arrays.
    """
    n, n_pairs = pref.shape
    unit = np.asarray(unit, dtype=np.int64)
    counts = np.zeros((n_units, n_pairs, RELATIONS))
    integral = weights is None or np.array_equal(weights, np.asarray(weights).astype(bool))
    for p in range(n_pairs):
        cell = unit * RELATIONS + (pref[:, p].astype(np.int64) + 1)
        keep = valid[:, p]
        if integral:  # 0/1 weights: count the kept judgments (a third of the work)
            if weights is not None:
                keep = keep & np.asarray(weights, dtype=bool)
            column = np.bincount(cell[keep], minlength=n_units * RELATIONS)
        else:
            w = np.where(keep, np.asarray(weights, dtype=np.float64), 0.0)
            column = np.bincount(cell, weights=w, minlength=n_units * RELATIONS)
        counts[:, p, :] = column.reshape(n_units, RELATIONS)
    return counts


def agreeing_rater_pairs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: (rater pairs giving the same relation, all rater pairs), summed over pairs.

    `counts` has shape (units, pairs, relations). n raters put a comparison in relation v
    n_v times, so C(n_v, 2) rater pairs agree on it out of C(n, 2).
    """
    n = counts.sum(axis=-1)
    agree = (counts * (counts - 1) / 2).sum(axis=-1)
    total = n * (n - 1) / 2
    return agree.sum(axis=-1), total.sum(axis=-1)


def pairwise_agreement(counts: np.ndarray) -> float:
    """Inter-annotator agreement as InstructGPT reports it (Ouyang et al. 2022, §5.1 and
    appendix B.5: "training labelers agree with each other 72.6 ± 1.5% of the time").

    The share of pairs of raters on the same task who put a completion pair in the same
    relation (a ≻ b, b ≻ a, or a tie), pooled over every completion pair of every task.
    Without ties, two raters who each flip a comparison with probability p agree with
    probability (1 − p)² + p².
    """
    agree, total = agreeing_rater_pairs(counts)
    denominator = total.sum()
    return float(agree.sum() / denominator) if denominator else float("nan")


def bootstrap_ratio_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of sum(numerators) / sum(denominators), resampling units.

    Efron & Tibshirani 1993, ch. 13 (percentile interval). The unit is the task: the
    judgments of one task are dependent, so tasks, not judgments, are drawn with
    replacement (as for InstructGPT's agreement figure, Ouyang et al. 2022, appendix B.5).
    Drawing T tasks with replacement is drawing how often each *distinct* (numerator,
    denominator) pair is picked, a multinomial over the distinct pairs: the same
    distribution, at the cost of the distinct pairs (a few hundred) rather than T.
    """
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    units = numerators.shape[0]
    if units == 0 or denominators.sum() == 0:
        return float("nan"), float("nan")
    rng = rng or np.random.default_rng(0)
    pairs, multiplicity = _unique_rows(np.stack([numerators, denominators], axis=1))
    picks = rng.multinomial(units, multiplicity / units, size=n_boot).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = (picks @ pairs[:, 0]) / (picks @ pairs[:, 1])
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a matrix and how often each occurs; small non-negative integers
    are packed into one int64 key per row first, which sorts far faster than rows."""
    integral = rows.size and rows.min() >= 0 and np.array_equal(rows, np.round(rows))
    base = int(rows.max()) + 1 if integral else 0
    if not integral or float(base) ** rows.shape[1] >= 2.0**62:
        return np.unique(rows, axis=0, return_counts=True)
    powers = base ** np.arange(rows.shape[1], dtype=np.int64)
    _, first, multiplicity = np.unique(
        rows.astype(np.int64) @ powers, return_index=True, return_counts=True
    )
    return rows[first], multiplicity


def krippendorff_alpha(
    value_counts: np.ndarray, level: str = "nominal", values: np.ndarray | None = None
) -> float:
    """Krippendorff's α from a units × values count matrix, missing data allowed.

    Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability": α = 1 − D_o / D_e from
    the coincidence matrix (`coincidences`). The expected coincidences and the distance
    metric of each level come from the `krippendorff` package (Castro 2017). Equal to
    `krippendorff.alpha(value_counts=...)` (tests check both against the paper).
    `values` is the value of each column (default 0, 1, ...; only the ratio metric cares).
    """
    return alpha_from_coincidences(coincidences(value_counts), level, values)


def coincidences(value_counts: np.ndarray) -> np.ndarray:
    """The coincidence matrix o_ck = Σ_u (n_uc n_uk − [c = k] n_uc) / (m_u − 1) over units
    with m_u ≥ 2 pairable values (Krippendorff 2011). A sum over units, so the matrices of
    disjoint sets of units add up; one matrix product for all units."""
    value_counts = np.asarray(value_counts, dtype=np.float64)
    n_values = value_counts.shape[1]
    pairable = value_counts.sum(axis=1)
    rows = value_counts[pairable >= 2]
    if rows.shape[0] == 0:
        return np.zeros((n_values, n_values))
    scale = 1.0 / (pairable[pairable >= 2] - 1)
    products = (rows * scale[:, None]).T @ rows
    return products - np.diag((rows * scale[:, None]).sum(axis=0))


def alpha_from_coincidences(
    coincidence: np.ndarray, level: str = "nominal", values: np.ndarray | None = None
) -> float:
    """α = 1 − D_o / D_e from a coincidence matrix; nan when fewer than two values occur
    (nothing pairable, or one value overall: D_e is zero)."""
    n_v = coincidence.sum(axis=0)
    if np.count_nonzero(n_v > 1e-9) <= 1:
        return float("nan")
    expected = _kripp._random_coincidences(n_v)
    domain = np.arange(coincidence.shape[0]) if values is None else np.asarray(values)
    distance = _kripp._distances(domain, _kripp._distance_metric(level), n_v)
    return float(1 - (coincidence * distance).sum() / (expected * distance).sum())


def krippendorff_alpha_pairs(counts: np.ndarray) -> float:
    """Nominal α on induced pairwise preferences: each (task, completion pair) is a unit,
    each rater a coder, the relation (≻, ≺, tie) the value (Krippendorff 2011)."""
    return krippendorff_alpha(counts.reshape(-1, RELATIONS), "nominal")


def rank_position_counts(rank_pos: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray:
    """Counts of each best-first position per (task, slot): shape (n_units * k_max, k_max)."""
    k_max = rank_pos.shape[1]
    unit = np.asarray(unit, dtype=np.int64)
    counts = np.zeros((n_units, k_max, k_max), dtype=np.int64)
    for slot in range(k_max):
        position = rank_pos[:, slot].astype(np.int64)
        present = position >= 0
        cell = unit[present] * k_max + position[present]
        counts[:, slot, :] = np.bincount(cell, minlength=n_units * k_max).reshape(n_units, k_max)
    return counts.reshape(n_units * k_max, k_max)


def krippendorff_alpha_ranks(rank_pos: np.ndarray, unit: np.ndarray, n_units: int) -> float:
    """Ordinal α on within-task rank positions: each (task, completion) is a unit, its
    best-first position the ordinal value (Krippendorff 2011, ordinal metric)."""
    return krippendorff_alpha(rank_position_counts(rank_pos, unit, n_units), "ordinal")


def kendall_tau_b(x, y) -> float:
    """Kendall's τ-b between two rankings of the same items, ties allowed.

    τ_b = (n_c − n_d) / sqrt((n_0 − n_1)(n_0 − n_2)) with n_1, n_2 the pairs tied in x, in y
    (Kendall 1945, "The treatment of ties in ranking problems"; the definition of
    `scipy.stats.kendalltau(variant="b")`). O(n²): meant for rankings of a task's K items.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    first, second = np.triu_indices(len(x), 1)
    sx = np.sign(x[second] - x[first])
    sy = np.sign(y[second] - y[first])
    return tau_b_from_signs(sx, sy)


def tau_b_from_signs(sx: np.ndarray, sy: np.ndarray) -> float:
    """τ-b from pairwise signs (+1/−1/0 per item pair) of two rankings; see `kendall_tau_b`."""
    denominator = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float((sx * sy).sum() / denominator) if denominator else float("nan")


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ for many raters (Fleiss 1971, "Measuring nominal scale agreement among many
    raters"): subjects × categories counts of raters who chose each category.

    P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / Σ_i n_i,
    P̄_e = Σ_j p_j², κ = (P̄ − P̄_e) / (1 − P̄_e). Subjects may have different numbers of
    raters (each P_i uses its own n_i); subjects with fewer than two are skipped.
    """
    return kappa_from_sums(fleiss_sums(counts))


def fleiss_sums(counts: np.ndarray) -> np.ndarray:
    """What Fleiss' κ needs, as sums over subjects (so disjoint subject sets add up):
    [Σ P_i, number of subjects, Σ_i n_ij for each category...], over subjects with n_i ≥ 2."""
    counts = np.asarray(counts, dtype=np.float64)
    per_subject = counts.sum(axis=1)
    keep = per_subject >= 2
    counts, per_subject = counts[keep], per_subject[keep]
    p_i = ((counts**2).sum(axis=1) - per_subject) / (per_subject * (per_subject - 1))
    return np.concatenate([[p_i.sum(), counts.shape[0]], counts.sum(axis=0)])


def fleiss_sums_binary(yes: np.ndarray, everyone: np.ndarray) -> np.ndarray:
    """`fleiss_sums` of a yes/no table given as the yes count and the total per subject,
    cheap when few subjects have a yes: a subject all of whose raters agree has P_i = 1."""
    subjects = everyone >= 2
    n_subjects = int(np.count_nonzero(subjects))
    some = subjects & (yes > 0)
    y, n = yes[some].astype(np.float64), everyone[some].astype(np.float64)
    p_some = (y**2 + (n - y) ** 2 - n) / (n * (n - 1))
    yes_total = float(y.sum())
    no_total = float(everyone[subjects].sum()) - yes_total
    p_sum = (n_subjects - int(np.count_nonzero(some))) + float(p_some.sum())
    return np.array([p_sum, n_subjects, yes_total, no_total])


def kappa_from_sums(sums: np.ndarray) -> float:
    """Fleiss' κ from `fleiss_sums` (or the sum of several)."""
    p_sum, subjects, per_category = sums[0], sums[1], sums[2:]
    if subjects < 0.5:
        return float("nan")
    p_j = per_category / per_category.sum()
    p_bar, p_e = p_sum / subjects, (p_j**2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def binomial_excess_pvalue(successes, trials, p0) -> np.ndarray:
    """One-sided binomial test P(X ≥ successes) for X ~ Bin(trials, p0), element-wise."""
    successes = np.asarray(successes)
    return stats.binom.sf(np.ceil(successes) - 1, np.asarray(trials), np.asarray(p0))


def robust_spread(values: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 × MAD (a standard deviation for normal data; Hampel 1974)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    median = float(np.median(values))
    return median, float(1.4826 * np.median(np.abs(values - median)))


def bradley_terry(
    wins: np.ndarray,
    present: np.ndarray | None = None,
    *,
    prior: float = 0.1,
    iterations: int = 50,
    tolerance: float = 1e-9,
) -> np.ndarray:
    """Bradley–Terry log-strengths for many small tournaments at once.

    Bradley & Terry 1952: P(i ≻ j) = σ(s_i − s_j). `wins[t, i, j]` is the (weighted) number
    of times i beat j in task t; a tie adds ½ to each side (Rao & Kupper's convention of
    splitting a tie). The log-likelihood is maximised by Newton's method (it is concave;
    Hunter 2004, "MM algorithms for generalized Bradley–Terry models", §2), batched over
    tasks. `prior` adds that many virtual wins each way between every two present items, a
    symmetric shrinkage that keeps the fit finite when one item wins every comparison.
    Returns s with mean 0 over present items, -inf where an item is absent.
    """
    wins = np.asarray(wins, dtype=np.float64)
    n_tasks, k, _ = wins.shape
    if present is None:
        present = np.ones((n_tasks, k), dtype=bool)
    off_diagonal = ~np.eye(k, dtype=bool)
    pair_present = present[:, :, None] & present[:, None, :] & off_diagonal
    wins = np.where(pair_present, wins + prior, 0.0)
    games = wins + wins.transpose(0, 2, 1)
    won = wins.sum(axis=2)
    count = np.maximum(present.sum(axis=1), 1)[:, None, None]
    # The likelihood only sees differences; J/n fixes the mean and makes the system regular.
    gauge = np.where(present[:, :, None] & present[:, None, :], 1.0, 0.0) / count
    absent = np.where(~present, 1.0, 0.0)[:, :, None] * np.eye(k)[None]
    score = np.zeros((n_tasks, k))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(score[:, None, :] - score[:, :, None]))  # P(i ≻ j)
        gradient = won - (games * p).sum(axis=2)
        curvature = games * p * (1 - p)
        laplacian = np.eye(k)[None] * curvature.sum(axis=2)[:, :, None] - curvature
        step = np.linalg.solve(laplacian + gauge + absent, gradient[:, :, None])[:, :, 0]
        step = np.clip(np.where(present, step, 0.0), -2.0, 2.0)  # damped far from the optimum
        score += step
        if np.abs(step).max(initial=0.0) < tolerance:
            break
    mean = np.where(present, score, 0.0).sum(axis=1, keepdims=True) / count[:, :, 0]
    return np.where(present, score - mean, -np.inf)


def preference_probabilities(log_strength: np.ndarray) -> np.ndarray:
    """Soft labels P(i ≻ j) = σ(s_i − s_j) from Bradley–Terry log-strengths (one task)."""
    difference = log_strength[:, None] - log_strength[None, :]
    return 1.0 / (1.0 + np.exp(-difference))


def scores_to_groups(scores: np.ndarray, tie_tolerance: float = 1e-6) -> list[list[int]]:
    """Best-first groups of item indices; scores within `tie_tolerance` form one group."""
    order = np.argsort(-scores, kind="stable")
    groups: list[list[int]] = []
    previous = None
    for index in order:
        if previous is not None and abs(scores[index] - previous) <= tie_tolerance:
            groups[-1].append(int(index))
        else:
            groups.append([int(index)])
        previous = scores[index]
    return groups


def clustered_ratio_ci(
    matches: np.ndarray,
    decided: np.ndarray,
    units: np.ndarray,
    matches_sq: np.ndarray,
    decided_sq: np.ndarray,
    matches_decided: np.ndarray,
    z: float = 1.96,
) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of a rater's agreement Σm / Σd, where the pairs come in clusters (the
    judgments: the pairs of one ranking are not independent). Element-wise over raters.

    The Wilson score interval (Wilson 1927) with the effective number of comparisons
    n_eff = a(1 − a) / V, V the linearised (ratio-estimator) variance of a = Σm / Σd over
    the u clusters, V = u / (u − 1) · Σ(m_j − a d_j)² / (Σd)² (Kish 1965, the design
    effect). n_eff is kept between u (every pair of a ranking counted as one) and Σd (all
    independent); at a = 0 or 1, where V says nothing, and with fewer than MIN_CLUSTERS
    clusters, it is u. nan without comparisons.
    """
    matches, decided, units = (np.asarray(x, dtype=np.float64) for x in (matches, decided, units))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(decided > 0, matches / np.where(decided > 0, decided, 1), np.nan)
        residual = matches_sq - 2 * share * matches_decided + share**2 * decided_sq
        variance = units / np.maximum(units - 1, 1) * np.maximum(residual, 0) / decided**2
        n_eff = np.where(variance > 0, share * (1 - share) / variance, units)
    n_eff = np.clip(np.nan_to_num(n_eff, nan=0.0), np.minimum(units, decided), decided)
    # A variance from a handful of clusters can be small by luck: below MIN_CLUSTERS units,
    # every cluster counts as one comparison.
    n_eff = np.where(units < MIN_CLUSTERS, np.minimum(units, decided), n_eff)
    return wilson_interval(share, n_eff, z)


def wilson_interval(share: np.ndarray, n: np.ndarray, z: float = 1.96):
    """Wilson score interval of a proportion observed as `share` of `n` trials (element-wise;
    nan where n is 0)."""
    share, n = np.asarray(share, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = 1 + z**2 / n
        centre = (share + z**2 / (2 * n)) / denominator
        half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high
