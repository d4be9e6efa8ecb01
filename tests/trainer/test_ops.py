import math

import torch

from trainer.ops import (
    first_true_indices,
    masked_mean,
    masked_var,
    masked_whiten,
    pad_sequences,
    position_ids_from_mask,
    top_p_filter,
    truncate_after_eos,
)


def test_masked_mean_ignores_masked_positions():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, -50.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(values, mask).item() == 2.0  # (1 + 2 + 3) / 3
    assert masked_mean(values, mask, dim=1).tolist() == [1.5, 3.0]


def test_masked_whiten_uses_only_valid_tokens():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([1, 1, 1, 0])
    # mean 2, unbiased variance ((1 + 0 + 1) / 3) * 3 / 2 = 1
    assert math.isclose(masked_var(values, mask).item(), 1.0, rel_tol=1e-6)
    whitened = masked_whiten(values, mask)
    assert torch.allclose(whitened, torch.tensor([-1.0, 0.0, 1.0, 0.0]), atol=1e-5)
    unshifted = masked_whiten(values, mask, shift_mean=False)
    assert torch.allclose(unshifted, torch.tensor([1.0, 2.0, 3.0, 0.0]), atol=1e-5)


def test_first_true_indices_returns_length_when_none():
    bools = torch.tensor([[False, True, True], [False, False, False], [True, False, False]])
    assert first_true_indices(bools).tolist() == [1, 3, 0]


def test_truncate_after_first_eos_and_flag_missing_eos():
    eos, pad = 1, 0
    responses = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 9, 9, 9]])
    truncated, lengths, contains_eos = truncate_after_eos(responses, eos, pad)
    assert truncated.tolist() == [[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]]
    assert lengths.tolist() == [2, 4, 1]  # the EOS itself is a valid token
    assert contains_eos.tolist() == [True, False, True]


def test_pad_sequences_left_and_right():
    ids, mask = pad_sequences([[4, 5, 6], [7]], pad_value=0, side="left")
    assert ids.tolist() == [[4, 5, 6], [0, 0, 7]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_sequences([[4, 5, 6], [7]], pad_value=0, side="right")
    assert ids.tolist() == [[4, 5, 6], [7, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_position_ids_start_at_first_real_token_under_left_padding():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_top_p_keeps_smallest_set_reaching_mass():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(top_p_filter(logits, 0.81))
    assert kept.tolist() == [[True, True, True, False]]
    kept = torch.isfinite(top_p_filter(logits, 0.1))
    assert kept.tolist() == [[True, False, False, False]]  # the top token always survives
    shuffled = torch.log(torch.tensor([[0.05, 0.3, 0.5, 0.15]]))
    assert torch.isfinite(top_p_filter(shuffled, 0.8)).tolist() == [[False, True, True, False]]
