"""How sure the reliability-weighted consensus is of one task's ordering: pure functions.

Dynamic overlap (docs/adaptive-collection.md) asks this after every judgment that fills a
task's current allowance: confident enough, the task is complete; if not, it gets one more
rater, up to the project's maximum.

The model. Each rater r reports the true order of a completion pair correctly with
probability a_r, independently of the other raters and of the pair (the "one-coin" model of
Dawid & Skene 1979, with one accuracy per rater). With a uniform prior over the two orders,
Bayes' rule gives the posterior log-odds that i ≻ j as a weighted vote:

    log P(i ≻ j | votes) / P(j ≻ i | votes) = Σ_r w_r v_r,   w_r = log(a_r / (1 − a_r)),

with v_r = +1 when r ranked i above j, −1 below, 0 for a tie (no evidence). These w_r are the
consensus weights the quality module already gives raters (`measures.skill_reliability`:
a_r from the one-coin skill fitted to every rater pair's agreement; Nitzan & Paroush 1982
show the same weighted vote is the optimal decision rule), so the posterior costs nothing
new. A rater without a measured reliability gets the prior accuracy, 0.75 (w = log 3); a
rater below chance clips to 0.5, weight 0 (never a negative weight: see that function).

The task's ordering is the Bradley–Terry consensus of the same weighted judgments (what
reviewers and exports see). Its confidence is the *weakest adjacent pair*: the smallest
posterior, over consecutive completions of the consensus order, that the consensus has that
pair the right way round. The order is right exactly when every adjacent pair is, so one
unsure pair is enough to ask another rater, and the extra slot's reason names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.quality import agreement as ag
from apps.quality.measures import skill_reliability

PRIOR_WEIGHT = float(skill_reliability(np.full(1, np.nan), np.zeros(1))[0])  # log 3: a = 0.75


@dataclass(frozen=True)
class OrderConfidence:
    """The consensus ordering of one task and how sure it is."""

    order: list[int]  # completion ids, best first (the Bradley–Terry consensus)
    adjacent: list[float]  # posterior that order[i] ≻ order[i + 1], for each i
    confidence: float  # min(adjacent): the weakest adjacent pair
    weakest: tuple[int, int] | None  # (better, worse) ids of that pair; None with < 2 items
    judgments: int  # judgments that carried weight

    def describe(self) -> str:
        """One sentence for reviewers: how sure, and which pair is least sure."""
        if self.weakest is None:
            return "Nothing to order."
        better, worse = self.weakest
        return (
            f"{self.confidence:.0%} sure of the order; least sure that #{better} beats "
            f"#{worse}, from {self.judgments} judgment{'s' if self.judgments != 1 else ''}"
        )


def pair_votes(rankings: list[list[list[int]]], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(votes, valid), each (judgments, pairs), for every pair (a < b) of `ids` in that
    order: +1 when a ranking puts a above b, −1 below, 0 for a tie; valid where it ranks both."""
    positions = np.zeros((len(rankings), len(ids)), dtype=np.int8)
    slot_of = ag.slot_index(ids)
    for row, ranking in enumerate(rankings):
        positions[row] = ag.ranking_to_positions(ranking, slot_of, len(ids))
    return ag.pairwise_preferences(positions)


def pair_posteriors(votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """P(a ≻ b | votes) for every pair column: σ(Σ_r w_r v_r) (see the module docstring)."""
    log_odds = np.asarray(weights, dtype=np.float64) @ votes.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-log_odds))


def order_confidence(
    rankings: list[list[list[int]]], weights: list[float] | np.ndarray, ids: list[int]
) -> OrderConfidence:
    """The consensus order of `ids` from best-first `rankings` weighted by `weights` (one per
    ranking, the raters' log-odds reliabilities), and the posterior of each adjacent pair."""
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    k = len(ids)
    if k < 2:
        return OrderConfidence(list(ids), [], 1.0, None, 0)
    votes, valid = pair_votes(rankings, ids)
    first, second = ag.slot_pairs(k)
    counted = np.where(valid, weights[:, None], 0.0)
    wins = np.zeros((1, k, k))
    wins[0, first, second] = (counted * np.select([votes > 0, votes == 0], [1.0, 0.5])).sum(0)
    wins[0, second, first] = (counted * np.select([votes < 0, votes == 0], [1.0, 0.5])).sum(0)
    scores = ag.bradley_terry(wins)[0]
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    posterior = pair_posteriors(votes, weights)
    column = {(int(a), int(b)): p for p, (a, b) in enumerate(zip(first, second, strict=True))}
    adjacent = []
    for better, worse in zip(order, order[1:], strict=False):
        p = posterior[column[(min(better, worse), max(better, worse))]]
        adjacent.append(float(p if better < worse else 1.0 - p))
    weakest_at = int(np.argmin(adjacent))
    return OrderConfidence(
        order=[ids[i] for i in order],
        adjacent=[round(p, 6) for p in adjacent],
        confidence=round(min(adjacent), 6),
        weakest=(ids[order[weakest_at]], ids[order[weakest_at + 1]]),
        judgments=int(np.count_nonzero(weights > 0)),
    )
