"""What a vote's strength of preference is worth, in the one-coin model: pure numpy.

A rater may say, for each adjacent pair of their ranking, how much better the upper answer is:
1 slightly, 2 clearly, 3 much better (`STRENGTH_LEVELS`; 0 where they said nothing). A
"much better" vote on a clear pair is worth more than a "slightly better" one on a near tie,
and by how much differs from rater to rater, so each (rater, level) gets its own accuracy,
measured as a rater's is: by agreement with the other raters, without ground truth.

The model. The one-coin model (rater_pairs.py; Dawid & Skene 1979) with each of a rater's
strength levels as a rater of its own: a vote of rater r at level l is right with
probability a_rl, independently of the other votes on the pair, so two votes agree with
probability a a' + (1 − a)(1 − a'), 2·P(agree) − 1 = s s' with s = 2a − 1, and the skills
of all (rater, level) votes follow from their pairwise agreements by the same fit
(`rater_pairs.pair_sums` and `reliable_agreement` on "virtual raters", one per rater and
level). A vote then weighs w_rl = log(a_rl / (1 − a_rl)), the posterior log-odds it adds
(confidence.py), with a_rl shrunk toward the rater's own accuracy over all their votes (not
toward a crowd-wide prior): a level the statistics have not measured counts as the rater's
average vote, so strengths only move a weight once there is evidence for it. Clipped to
[0.5, 0.98] as every weight: a level at or below chance weighs 0.

Why per rater and level, not one multiplier per level: raters use a scale differently (one
says "much better" about everything, another almost never), and the weight has to follow
what their "much better" is worth, not what the word says. The precedent for asking: the
labelers of InstructGPT rated each output on a 1–7 Likert scale beside the ranking (Ouyang
et al. 2022, appendix B); Anthropic's HH-RLHF interface asked which response is better and
by how much, on a scale (Bai et al. 2022).
"""

from __future__ import annotations

import numpy as np

from apps.quality import rater_pairs
from apps.quality.measures import accuracy_weight

STRENGTH_LEVELS = 3  # 1 slightly, 2 clearly, 3 much better; 0: not given
PRIOR_PAIRS = 20.0  # pseudo-comparisons that pull a level's accuracy toward the rater's


def level_skills(
    rater_ids: np.ndarray,
    task: np.ndarray,
    pref: np.ndarray,
    valid: np.ndarray,
    strength: np.ndarray,
) -> dict[str, np.ndarray]:
    """Skill and comparisons per (rater, level), each (R, STRENGTH_LEVELS + 1) with R the
    sorted unique `rater_ids` (returned as "raters"); column l is level l, column 0 the votes
    without a strength. `pref`, `valid`, `strength` are (judgments, pairs): each judgment is
    split into one pseudo-judgment per level it used, whose rater is the virtual (rater,
    level), and the one-coin fit runs on their agreements. Pseudo-judgments of one judgment
    share no pair, so they are never compared with each other."""
    raters = np.unique(rater_ids)
    columns = STRENGTH_LEVELS + 1
    shape = (raters.shape[0], columns)
    if rater_ids.size == 0:
        return {"raters": raters, "skill": np.full(shape, np.nan), "comparisons": np.zeros(shape)}
    rater_of = np.searchsorted(raters, rater_ids)
    pieces_rater, pieces_task, pieces_pref, pieces_valid = [], [], [], []
    for level in range(columns):
        at_level = valid & (strength == level)
        used = at_level.any(axis=1)
        pieces_rater.append(rater_of[used] * columns + level)
        pieces_task.append(task[used])
        pieces_pref.append(pref[used])
        pieces_valid.append(at_level[used])
    virtual = np.concatenate(pieces_rater)
    sums = rater_pairs.pair_sums(
        virtual,
        np.concatenate(pieces_task),
        np.concatenate(pieces_pref),
        np.concatenate(pieces_valid),
    )
    fitted = rater_pairs.reliable_agreement(sums, np.arange(raters.shape[0] * columns))
    return {
        "raters": raters,
        "skill": fitted["skill"].reshape(shape),
        "comparisons": fitted["comparisons"].reshape(shape),
    }


def strength_weights(
    level_skill: np.ndarray,
    level_comparisons: np.ndarray,
    rater_weight: np.ndarray,
    prior_pairs: float = PRIOR_PAIRS,
) -> np.ndarray:
    """(R, STRENGTH_LEVELS + 1) vote weights; column 0 is each rater's own weight
    (`rater_weight`, measures.skill_reliability: for votes without a strength).

    Column l: the log-odds of a_rl = (1 + s_rl) / 2, measured on the n_rl pairs the rater's
    level-l votes shared with others, shrunk by `prior_pairs` pseudo-comparisons toward a
    prior that adds the crowd's effect of level l to the rater's own log-odds,
    σ(w_r + δ_l), with δ_l = logit(ā_l) − logit(ā): ā_l the accuracy of level-l votes and ā
    that of all strength votes, pooled over the raters above chance (each a_rl counted by its
    n_rl). So an unmeasured level counts as the rater's average vote moved as much as the
    crowd's votes at that level move, and the rater's own votes take over as they come.
    Clipped to [0.5, 0.98] as every weight; a rater whose own weight is 0 (at or below
    chance) weighs 0 at every level.
    """
    rater_weight = np.clip(np.asarray(rater_weight, dtype=np.float64), 0.0, None)
    skill = np.asarray(level_skill, dtype=np.float64)
    n = np.where(np.isfinite(skill), np.asarray(level_comparisons, dtype=np.float64), 0.0)
    accuracy = np.clip((1 + np.nan_to_num(skill)) / 2, 0.0, 1.0)
    honest = rater_weight > 0
    pooled_n = n[honest, 1:].sum(axis=0)
    pooled_right = (accuracy * n)[honest, 1:].sum(axis=0)
    effect = np.zeros(STRENGTH_LEVELS)
    if pooled_n.sum() > 0:
        overall = pooled_right.sum() / pooled_n.sum()
        level = np.where(pooled_n > 0, pooled_right / np.maximum(pooled_n, 1e-12), overall)
        effect = accuracy_weight(level) - accuracy_weight(overall)
    prior = 1.0 / (1.0 + np.exp(-(rater_weight[:, None] + effect[None, :])))
    shrunk = (accuracy[:, 1:] * n[:, 1:] + prior * prior_pairs) / (n[:, 1:] + prior_pairs)
    weights = np.zeros_like(skill)
    weights[:, 0] = rater_weight
    weights[:, 1:] = np.where(honest[:, None], accuracy_weight(shrunk), 0.0)
    return weights
