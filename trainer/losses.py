"""The losses of the three InstructGPT stages as small pure functions.

- ``ranking_loss``: reward-model loss, InstructGPT eq. 1, one K-way ranking per batch element.
- ``kl_penalized_rewards``: per-token KL penalty plus the RM score at the last valid token.
- ``gae``: generalised advantage estimation over response tokens.
- ``leave_one_out_advantages``: RLOO's critic-free baseline over responses to one prompt.
- ``ppo_policy_loss`` / ``ppo_value_loss``: clipped PPO objectives.
- ``AdaptiveKLController``: Ziegler et al. (2019) proportional controller for beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer.ops import masked_mean


def ranking_pair_mask(ranks: torch.Tensor) -> torch.Tensor:
    """Strict preference pairs of each ranking.

    ``ranks`` (B, K): the best-first group index of each completion (0 = best group), or -1
    where a row has fewer than K completions. Returns (B, K, K) bool: ``[b, i, j]`` is true
    when completion i is strictly preferred to completion j. Tied pairs are false.
    """
    present = ranks >= 0
    better = ranks.unsqueeze(2) < ranks.unsqueeze(1)
    return better & present.unsqueeze(2) & present.unsqueeze(1)


def ranking_loss(
    rewards: torch.Tensor, ranks: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """InstructGPT eq. 1 with each ranking as one batch element.

    loss_b = mean over strict pairs (w, l) of ranking b of -log sigmoid(r_w - r_l); the batch
    loss is the weighted mean of loss_b over rankings that have at least one strict pair.
    ``rewards`` and ``ranks`` are (B, K) (see ``ranking_pair_mask``); ``weights`` is (B,).
    """
    pairs = ranking_pair_mask(ranks)
    margins = rewards.unsqueeze(2) - rewards.unsqueeze(1)
    pair_losses = -F.logsigmoid(margins) * pairs
    pair_counts = pairs.sum(dim=(1, 2))
    per_ranking = pair_losses.sum(dim=(1, 2)) / pair_counts.clamp(min=1)
    if weights is None:
        weights = torch.ones_like(per_ranking)
    weights = weights.to(per_ranking.dtype) * (pair_counts > 0)
    return (per_ranking * weights).sum() / weights.sum().clamp(min=1e-12)


def pairwise_correct(
    rewards: torch.Tensor, ranks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ranking: (number of strict pairs ordered correctly, number of strict pairs)."""
    pairs = ranking_pair_mask(ranks)
    correct = (rewards.unsqueeze(2) > rewards.unsqueeze(1)) & pairs
    return correct.sum(dim=(1, 2)), pairs.sum(dim=(1, 2))


def kl_penalized_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    scores: torch.Tensor,
    lengths: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token rewards for PPO.

    r_t = -beta * (log pi(a_t) - log pi_ref(a_t)) on valid tokens, and the sequence score is
    added at the last valid token (the EOS, or the last token of a truncated response).
    Returns ``(rewards, non_score_rewards, kl)``, all (B, T) and zero after ``lengths``.
    """
    width = logprobs.size(1)
    mask = torch.arange(width, device=logprobs.device).unsqueeze(0) < lengths.unsqueeze(1)
    kl = (logprobs - ref_logprobs) * mask
    non_score = -beta * kl
    rewards = non_score.clone()
    last = (lengths - 1).clamp(min=0)
    rows = torch.arange(logprobs.size(0), device=logprobs.device)
    rewards[rows, last] += scores.to(rewards.dtype) * (lengths > 0)
    return rewards, non_score, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (B, T) response tokens.

    Positions where ``mask`` is false (after the EOS) get advantage 0 and do not bootstrap:
    the value after the last valid token is taken as 0. Returns ``(advantages, returns)`` with
    returns = advantages + values.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    width = rewards.size(1)
    last_advantage = torch.zeros_like(rewards[:, 0])
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(width)):
        next_value = values[:, t + 1] if t + 1 < width else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_advantage = (delta + gamma * lam * last_advantage) * mask[:, t]
        advantages[:, t] = last_advantage
    return advantages, advantages + values


def leave_one_out_advantages(returns: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO's baseline (Kool et al. 2019; Ahmadian et al. 2024, arXiv 2402.14740): each
    response's return minus the mean return of the *other* responses to the same prompt.

    ``returns`` (B,) holds ``B / group_size`` consecutive groups of responses to one prompt
    each. The baseline needs no value model, and it removes what differs between prompts
    (some prompts score higher whatever the answer) from the signal.
    """
    if group_size < 2 or returns.numel() % group_size:
        raise ValueError(f"{returns.numel()} returns do not split into groups of {group_size} ≥ 2")
    groups = returns.view(-1, group_size)
    others = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


@dataclass
class PolicyLossStats:
    loss: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor
    ratio_mean: torch.Tensor


def ppo_policy_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> PolicyLossStats:
    """Clipped surrogate: mean over valid tokens of max(-A r, -A clip(r, 1-e, 1+e))."""
    log_ratio = (new_logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
        ratio_mean = masked_mean(ratio, mask)
    return PolicyLossStats(loss, clip_fraction, approx_kl, ratio_mean)


def ppo_value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * mean(max((v - R)^2, (v_clip - R)^2)); also the clip fraction."""
    clipped = old_values + torch.clamp(new_values - old_values, -clip_range, clip_range)
    unclipped_loss = (new_values - returns) ** 2
    clipped_loss = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_loss, clipped_loss), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped_loss > unclipped_loss).float(), mask)
    return loss, clip_fraction


class AdaptiveKLController:
    """beta <- beta * (1 + clip(KL/target - 1, -0.2, 0.2) * n / horizon) (Ziegler et al. 2019),
    never below ``floor``.

    With a floor at the initial beta the controller only restrains: in a run of a few dozen
    steps, which starts at KL 0, the unfloored rule spends the first steps lowering beta
    (×0.9 a step at n / horizon = 0.5), so that it is weakest when the policy starts to run
    away from the reference."""

    def __init__(self, init_beta: float, target: float, horizon: int, floor: float = 0.0):
        self.value = max(init_beta, floor)
        self.target = target
        self.horizon = horizon
        self.floor = floor

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value = max(self.floor, self.value * (1.0 + error * n_steps / self.horizon))
        return self.value


class FixedKLController:
    def __init__(self, beta: float):
        self.value = beta

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value


def sequence_logprob_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor
) -> torch.Tensor:
    """Causal-LM cross entropy over the positions where ``label_mask`` is true.

    ``logits`` (B, T, V) predict ``labels`` (B, T) shifted by one inside: position t predicts
    token t+1. Used for SFT (completion tokens only) and the PPO-ptx term.
    """
    shift_logits = logits[:, :-1]
    shift_labels = labels[:, 1:]
    shift_mask = label_mask[:, 1:].to(logits.dtype)
    token_losses = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), reduction="none"
    ).view_as(shift_labels)
    return (token_losses * shift_mask).sum() / shift_mask.sum().clamp(min=1.0)
