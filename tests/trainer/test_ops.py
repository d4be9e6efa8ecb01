import math

import torch

from trainer.ops import (
    distinct_rows,
    first_true_indices,
    masked_mean,
    masked_var,
    masked_whiten,
    nucleus_keep,
    pad_sequences,
    position_ids_from_mask,
    sample_nucleus,
    truncate_after_eos,
)
from trainer.sampling import make_generators


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
    ranked = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert nucleus_keep(ranked, 0.8).tolist() == [[True, True, False, False]]  # 0.5 + 0.3
    assert nucleus_keep(ranked, 0.81).tolist() == [[True, True, True, False]]
    assert nucleus_keep(ranked, 0.1).tolist() == [[True, False, False, False]]  # top survives


def _nucleus_frequencies(logits, top_p, candidates, draws=4000):
    generators = make_generators([7] * logits.size(0))
    counts = torch.zeros_like(logits)
    for _ in range(draws):
        chosen = sample_nucleus(logits, top_p, generators, candidates=candidates)
        counts[torch.arange(logits.size(0)), chosen] += 1
    return counts / draws


def test_nucleus_draws_follow_the_renormalised_nucleus_on_both_paths():
    # row 0: the nucleus (0.5 + 0.3 >= 0.8) lies within 2 candidates; row 1 (flat) does not,
    # so it is sorted whole; tokens are shuffled so that positions are not ranks
    probs = torch.tensor([[0.05, 0.3, 0.5, 0.15, 0.0], [0.22, 0.18, 0.2, 0.21, 0.19]]).clamp(
        min=1e-9
    )
    frequencies = _nucleus_frequencies(probs.log(), 0.8, candidates=2)
    # row 1: 0.22 + 0.21 + 0.2 = 0.63 < 0.8, + 0.19 = 0.82 reaches it; 0.18 is dropped
    expected = torch.tensor(
        [[0, 0.3 / 0.8, 0.5 / 0.8, 0, 0], [0.22 / 0.82, 0, 0.2 / 0.82, 0.21 / 0.82, 0.19 / 0.82]]
    )
    assert torch.allclose(frequencies, expected, atol=0.03)
    assert frequencies[0, [0, 3, 4]].sum() == 0 and frequencies[1, 1] == 0


def test_nucleus_draws_do_not_depend_on_the_other_rows():
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    alone = sample_nucleus(logits[1:2], 0.9, make_generators([11]), candidates=4)
    together = sample_nucleus(logits, 0.9, make_generators([5, 11, 6]), candidates=4)
    assert together[1] == alone[0]
    assert sample_nucleus(logits, 1.0, make_generators([1, 2, 3])).shape == (3,)


def test_distinct_rows_gives_each_first_occurrence_and_every_rows_distinct_row():
    keys = torch.tensor([[5, 1], [2, 2], [5, 1], [2, 2], [7, 0]])
    first, inverse = distinct_rows(keys)
    # distinct rows sorted: [2, 2], [5, 1], [7, 0]; first seen at rows 1, 0 and 4
    assert first.tolist() == [1, 0, 4]
    assert inverse.tolist() == [1, 0, 1, 0, 2]
    assert torch.equal(keys[first][inverse], keys)
