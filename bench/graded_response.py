"""Votes with a strength of preference, as a graded response model: pure numpy.

Each completion pair has a latent gap d (positive: the first is better). Rater r perceives
α_r·d plus standard normal noise and reports the side and a strength — 1 slightly, 2 clearly,
3 much better — by cutting the perceived gap at their own thresholds 0 < t_r1 < t_r2: an
ordered-probit graded response model (Samejima 1969) with a discrimination α_r and
thresholds per rater. So a rater's strengths are read on their own scale (one who says
"much better" about everything gets high thresholds), a careless rater has a small α, one who
ranks against the others a negative one (clipped to 0: their votes then count for nothing,
as with the one-coin weights, docs/quality.md), and the prior over d — how many pairs are
near ties — is learned from the votes too. Unlike the one-coin model, where a vote is right
with a fixed probability whatever the pair, agreement here is explained by the pair's gap:
two "much better" votes agree because the pair is clear, not because both raters are
careful.

`fit` estimates everything by expectation–maximisation over a grid of d (a few iterations
warm-started from the previous fit); `sign_posterior` is what the slot decider asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

LEVELS = 3
GRID = np.linspace(-3.0, 3.0, 61)
DEFAULT_THRESHOLDS = (0.5, 1.5)
# An unmeasured rater's discrimination: alone, their "much better" makes the consensus 72%
# sure (under the default prior), below what one unmeasured vote gives in the one-coin model
# (75%), so one vote of someone nobody has measured never completes a task by itself.
DEFAULT_ALPHA = 0.3
# Pseudo-votes pulling a fitted α toward DEFAULT_ALPHA (chosen on seeds 0-9 of
# bench/adaptive_overlap_bound.py: 10 and 20 trusted measured raters too slowly).
PRIOR_VOTES = 5.0


@dataclass
class GradedModel:
    """Per rater (in the order of the ids given to `fit`): discrimination and thresholds;
    and the prior over the grid of gaps."""

    alpha: np.ndarray  # (R,) ≥ 0, as fitted
    thresholds: np.ndarray  # (R, 2), 0 < t1 < t2
    prior: np.ndarray  # (G,) symmetric, sums to 1
    evidence: np.ndarray | None = None  # (R,) votes on pairs someone else also judged

    def effective_alpha(self) -> np.ndarray:
        """α shrunk toward DEFAULT_ALPHA by PRIOR_VOTES pseudo-votes against the rater's
        votes on shared pairs: what the posterior uses, so a rater measured on few pairs
        counts little, as the one-coin weights shrink toward 0.75."""
        n = np.zeros_like(self.alpha) if self.evidence is None else self.evidence
        return (self.alpha * n + DEFAULT_ALPHA * PRIOR_VOTES) / (n + PRIOR_VOTES)

    @classmethod
    def default(cls, n_raters: int) -> GradedModel:
        prior = np.exp(-0.5 * GRID**2)
        return cls(
            alpha=np.full(n_raters, DEFAULT_ALPHA),
            thresholds=np.tile(DEFAULT_THRESHOLDS, (n_raters, 1)).astype(np.float64),
            prior=prior / prior.sum(),
        )


def vote_log_likelihood(
    alpha: float, thresholds: np.ndarray, vote: int, strength: int, grid: np.ndarray = GRID
) -> np.ndarray:
    """log P(vote, strength | d) over the grid. `vote` ±1; `strength` 1..LEVELS, or 0 when
    none was given (then only the side counts)."""
    perceived = vote * alpha * grid  # the perceived gap on the vote's own side
    if strength == 0:
        return np.log(np.maximum(ndtr(perceived), 1e-300))
    edges = np.concatenate([[0.0], thresholds, [np.inf]])
    low, high = edges[strength - 1], edges[strength]
    chance = (
        ndtr(high - perceived) - ndtr(low - perceived)
        if np.isfinite(high)
        else ndtr(perceived - low)
    )
    return np.log(np.maximum(chance, 1e-300))


def task_log_likelihood(model: GradedModel, votes: list[tuple[int, int, int]]) -> np.ndarray:
    """Σ over a task's votes (rater index, ±1, strength) of their log-likelihood on the grid."""
    total = np.zeros(GRID.size)
    alpha = model.effective_alpha()
    for rater, vote, strength in votes:
        total += vote_log_likelihood(alpha[rater], model.thresholds[rater], vote, strength)
    return total


def sign_posterior(model: GradedModel, votes: list[tuple[int, int, int]]) -> float:
    """P(d > 0 | votes): the posterior that the first completion is the better one."""
    log_post = task_log_likelihood(model, votes) + np.log(model.prior)
    post = np.exp(log_post - log_post.max())
    above, below = post[GRID > 0].sum(), post[GRID < 0].sum()
    return float(above / (above + below)) if above + below > 0 else 0.5


CATEGORIES = [(v, s) for v in (1, -1) for s in range(LEVELS + 1)]  # (side, strength)


def fit(
    rater: np.ndarray,
    task: np.ndarray,
    vote: np.ndarray,
    strength: np.ndarray,
    n_raters: int,
    start: GradedModel | None = None,
    iterations: int = 15,
) -> GradedModel:
    """EM for the model on votes given as columns (rater index, task index, ±1, strength)."""
    model = start or GradedModel.default(n_raters)
    model = GradedModel(model.alpha.copy(), model.thresholds.copy(), model.prior.copy())
    if rater.size == 0:
        return model
    _, task_of = np.unique(task, return_inverse=True)
    n_tasks = int(task_of.max()) + 1
    shared = np.bincount(task_of, minlength=n_tasks)[task_of] > 1
    model.evidence = np.bincount(rater[shared], minlength=n_raters).astype(np.float64)
    category = np.array(
        [CATEGORIES.index((int(v), int(s))) for v, s in zip(vote, strength, strict=True)]
    )
    for _ in range(iterations):
        table = np.stack(  # (R, C, G): each rater's log-likelihood of each kind of vote
            [
                [
                    vote_log_likelihood(model.alpha[r], model.thresholds[r], v, s)
                    for v, s in CATEGORIES
                ]
                for r in range(n_raters)
            ]
        )
        log_post = np.zeros((n_tasks, GRID.size))
        np.add.at(log_post, task_of, table[rater, category])
        log_post += np.log(model.prior)
        post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        prior = post.mean(axis=0)
        prior = (prior + prior[::-1]) / 2 + 1e-6
        model.prior = prior / prior.sum()
        weights = np.zeros((n_raters, len(CATEGORIES), GRID.size))
        np.add.at(weights, (rater, category), post[task_of])  # expected counts per gap
        for r in np.unique(rater).tolist():
            model.alpha[r], model.thresholds[r] = _rater_step(
                model.alpha[r], model.thresholds[r], weights[r]
            )
    return model


def _expected(alpha: float, thresholds: np.ndarray, counts: np.ndarray) -> float:
    """The rater's expected log-likelihood: Σ over kinds of vote of their expected counts at
    each gap times the log-likelihood there, with a weak prior keeping α near 1 until the
    votes say otherwise."""
    total = sum(
        float(counts[c] @ vote_log_likelihood(alpha, thresholds, v, s))
        for c, (v, s) in enumerate(CATEGORIES)
        if counts[c].any()
    )
    return total - 0.5 * (alpha - 1.0) ** 2


def _rater_step(alpha, thresholds, counts):
    """α, then each threshold, maximising the expected log-likelihood (a golden-section
    search each: bounded, and robust on a rater with few votes)."""
    alpha = _golden(lambda a: _expected(a, thresholds, counts), 0.0, 6.0)
    t1 = _golden(
        lambda x: _expected(alpha, np.array([x, thresholds[1]]), counts), 0.01, thresholds[1]
    )
    t2 = _golden(lambda x: _expected(alpha, np.array([t1, x]), counts), t1 + 0.01, 6.0)
    return alpha, np.array([t1, t2])


def _golden(function, low, high, steps: int = 18):
    ratio = (np.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = function(c), function(d)
    for _ in range(steps):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = function(d)
    return (a + b) / 2


def expected_gain(
    model: GradedModel, votes: list[tuple[int, int, int]], candidates: list[int]
) -> float:
    """How much one more vote — from a rater drawn at random from `candidates` — is expected
    to raise the chance that the task's order is right: E[max(p', 1 − p')] − max(p, 1 − p)
    over the model's predictive distribution of that vote. Small both on a pair already
    settled and on a near tie no single vote will settle: the value of the next judgment."""
    if not candidates:
        return 0.0
    log_post = task_log_likelihood(model, votes) + np.log(model.prior)
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    above = GRID > 0
    now = max(post[above].sum(), post[GRID < 0].sum())
    alpha = model.effective_alpha()
    gains = []
    for rater in candidates:
        after = 0.0
        for vote, strength in CATEGORIES:
            if strength == 0:
                continue
            joint = post * np.exp(
                vote_log_likelihood(alpha[rater], model.thresholds[rater], vote, strength)
            )
            after += max(joint[above].sum(), joint[GRID < 0].sum())
        gains.append(after - now)
    return float(np.mean(gains))
