"""Losses against values worked out by hand (see each test's comment)."""

import math

import pytest
import torch

from trainer.losses import (
    AdaptiveKLController,
    gae,
    kl_penalized_rewards,
    leave_one_out_advantages,
    pairwise_correct,
    ppo_policy_loss,
    ppo_value_loss,
    ranking_loss,
    sequence_logprob_loss,
)


def nll_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))  # -log sigmoid(x)


def test_ranking_loss_k3_with_tie_skips_tied_pair():
    # ranking [[0], [1, 2]]: 0 beats 1 and 2; 1 and 2 tie -> 2 pairs, not C(3,2) = 3.
    rewards = torch.tensor([[1.0, 0.0, -1.0]])
    ranks = torch.tensor([[0, 1, 1]])
    expected = (nll_sigmoid(1.0) + nll_sigmoid(2.0)) / 2  # 0.2200948...
    assert ranking_loss(rewards, ranks).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.2200948, abs=1e-6)


def test_ranking_loss_averages_per_ranking_then_weights_rankings():
    # Ranking A (K=3): [[0], [1, 2]] as above. Ranking B (K=2, padded): completion 1 beats 0.
    # Ranking C: both completions tied -> no strict pair -> excluded from the mean.
    rewards = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, 0.0], [5.0, -5.0, 0.0]])
    ranks = torch.tensor([[0, 1, 1], [1, 0, -1], [0, 0, -1]])
    weights = torch.tensor([1.0, 3.0, 10.0])
    loss_a = (nll_sigmoid(1.0) + nll_sigmoid(2.0)) / 2
    loss_b = nll_sigmoid(0.0 - 2.0)
    expected = (1.0 * loss_a + 3.0 * loss_b) / 4.0
    assert ranking_loss(rewards, ranks, weights).item() == pytest.approx(expected, abs=1e-6)


def test_ranking_loss_k4_counts_all_six_pairs():
    rewards = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    ranks = torch.tensor([[0, 1, 2, 3]])
    margins = [1, 2, 3, 1, 2, 1]  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    expected = sum(nll_sigmoid(m) for m in margins) / 6
    assert ranking_loss(rewards, ranks).item() == pytest.approx(expected, abs=1e-6)
    correct, pairs = pairwise_correct(torch.tensor([[3.0, 2.0, 0.0, 1.0]]), ranks)
    assert (correct.item(), pairs.item()) == (5, 6)


def test_gae_on_hand_worked_sequence():
    # gamma 1, lambda 0.95. Row 0, three valid tokens, score 1 at the end:
    #   t2: delta = 1 + 0 - 0.4 = 0.6            A2 = 0.6
    #   t1: delta = 0 + 0.4 - 0.2 = 0.2          A1 = 0.2 + 0.95 * 0.6 = 0.77
    #   t0: delta = 0 + 0.2 - 0.5 = -0.3         A0 = -0.3 + 0.95 * 0.77 = 0.4315
    # Row 1, two valid tokens (garbage after): the last valid token does not bootstrap.
    #   t1: delta = 1 + 0 - 0.2 = 0.8            A1 = 0.8
    #   t0: delta = 0 + 0.2 - 0.5 = -0.3         A0 = -0.3 + 0.95 * 0.8 = 0.46
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.5, 0.2, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    assert torch.allclose(
        advantages, torch.tensor([[0.4315, 0.77, 0.6], [0.46, 0.8, 0.0]]), atol=1e-6
    )
    assert torch.allclose(returns, torch.tensor([[0.9315, 0.97, 1.0], [0.96, 1.0, 0.0]]), atol=1e-6)


def test_gae_discount():
    # gamma 0.5, lambda 1: A1 = 1 - 0 = 1 ; A0 = (0 + 0.5 * 0 - 0) + 0.5 * 1 = 0.5
    advantages, _ = gae(
        torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, lam=1.0
    )
    assert advantages.tolist() == [[0.5, 1.0]]


def test_kl_penalty_per_token_and_score_at_eos():
    beta = 0.1
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, -0.5]])
    lengths = torch.tensor([2, 3])  # row 0 ended with EOS at index 1; row 1 ran to the limit
    scores = torch.tensor([10.0, 20.0])
    rewards, non_score, kl = kl_penalized_rewards(logprobs, ref_logprobs, scores, lengths, beta)
    # row 0: kl = [0.5, 0, (after EOS) 0]; -beta*kl = [-0.05, 0, 0]; score at index 1 (EOS)
    # row 1: kl = [1, 0, -0.5]; -beta*kl = [-0.1, 0, 0.05]; score at the last token
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0], [1.0, 0.0, -0.5]]))
    assert torch.allclose(non_score, torch.tensor([[-0.05, 0.0, 0.0], [-0.1, 0.0, 0.05]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 10.0, 0.0], [-0.1, 0.0, 20.05]]))


def test_ppo_policy_loss_clips_and_reports_clip_fraction():
    # token A: ratio 1.5, A=+1 -> max(-1.5, -1.2) = -1.2 (clipped)
    # token B: ratio 0.5, A=+1 -> max(-0.5, -0.8) = -0.5 (not clipped: pessimistic bound)
    # token C is masked out.
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 7.0]]))
    advantages = torch.tensor([[1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0]])
    stats = ppo_policy_loss(new, old, advantages, mask, clip_range=0.2)
    assert stats.loss.item() == pytest.approx(-0.85, abs=1e-6)
    assert stats.clip_fraction.item() == pytest.approx(0.5)
    expected_kl = 0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2
    assert stats.approx_kl.item() == pytest.approx(expected_kl, abs=1e-6)


def test_ppo_value_loss_takes_clipped_when_worse():
    # v_new 1, v_old 0, R 2, clip 0.2 -> v_clip 0.2: max((1-2)^2, (0.2-2)^2) = 3.24 -> 1.62
    loss, clip_fraction = ppo_value_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.2
    )
    assert loss.item() == pytest.approx(1.62, abs=1e-6)
    assert clip_fraction.item() == 1.0


def test_adaptive_kl_controller():
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    # KL 12 -> error clipped to +0.2 -> beta * (1 + 0.2 * 100 / 10000)
    assert controller.update(12.0, 100) == pytest.approx(0.1002)
    # KL 4.5 -> error -0.25 clipped to -0.2
    assert controller.update(4.5, 100) == pytest.approx(0.1002 * (1 - 0.002))
    # with a floor at the initial beta: KL 0 would lower beta by 20% * 16 / 32 = 10%, but it
    # stays at the floor; KL 12 then raises it by 10% a step
    floored = AdaptiveKLController(0.05, target=6.0, horizon=32, floor=0.05)
    assert floored.update(0.0, 16) == 0.05
    assert floored.update(12.0, 16) == pytest.approx(0.055)
    assert floored.update(12.0, 16) == pytest.approx(0.0605)
    assert floored.update(0.0, 16) == pytest.approx(0.05445)  # down 10%, above the floor
    assert floored.update(0.0, 16) == 0.05


def test_sequence_loss_only_counts_masked_labels():
    # Uniform logits over 4 tokens: every counted position costs log 4.
    logits = torch.zeros(1, 4, 4)
    labels = torch.tensor([[0, 1, 2, 3]])
    mask = torch.tensor([[0, 0, 1, 1]])
    assert sequence_logprob_loss(logits, labels, mask).item() == pytest.approx(math.log(4))
    # Make position 1 predict token 2 with certainty: only that term changes.
    logits[0, 1, 2] = 100.0
    assert sequence_logprob_loss(logits, labels, mask).item() == pytest.approx(
        math.log(4) / 2, abs=1e-4
    )


def test_leave_one_out_advantages_by_hand():
    # two prompts, three responses each: returns 1, 2, 6 | 0, 0, 3
    returns = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    advantages = leave_one_out_advantages(returns, 3)
    # 1 - (2 + 6)/2 = -3, 2 - (1 + 6)/2 = -1.5, 6 - 1.5 = 4.5; 0 - 1.5, 0 - 1.5, 3 - 0
    assert advantages.tolist() == [-3.0, -1.5, 4.5, -1.5, -1.5, 3.0]
    # what every prompt has in common (here +10 on the second) leaves no trace
    shifted = returns + torch.tensor([0.0, 0.0, 0.0, 10.0, 10.0, 10.0])
    assert torch.equal(leave_one_out_advantages(shifted, 3), advantages)
    with pytest.raises(ValueError):
        leave_one_out_advantages(returns, 4)
    with pytest.raises(ValueError):
        leave_one_out_advantages(returns, 1)
