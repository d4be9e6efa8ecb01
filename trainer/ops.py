"""Small tensor helpers: masking, whitening, padding, EOS handling, nucleus filtering.

Plain functions on tensors, each tested against hand-computed values.
"""

from __future__ import annotations

import torch

# Log-probability written into padded positions so a bug that forgets the mask shows up loudly.
INVALID_LOGPROB = 1.0


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() if dim is None else (values * mask).sum(dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is true (0 where nothing is valid)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the valid positions (Bessel-corrected by default)."""
    mean = masked_mean(values, mask)
    centred = values - mean
    variance = masked_mean(centred**2, mask)
    if unbiased:
        count = mask.sum().to(values.dtype)
        if count < 2:
            raise ValueError("masked_var needs two or more valid positions (unbiased)")
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale to unit variance over valid positions; optionally shift to zero mean.

    Invalid positions are returned as 0 so they cannot leak into later sums.
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def first_true_indices(bools: torch.Tensor) -> torch.Tensor:
    """Index of the first True in each row; the row length where a row has none."""
    length = bools.size(-1)
    positions = torch.arange(length, device=bools.device).expand_as(bools)
    return torch.where(bools, positions, torch.full_like(positions, length)).min(-1).values


def truncate_after_eos(
    responses: torch.Tensor, eos_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply the EOS rules to sampled responses (B, T).

    Returns ``(truncated, lengths, contains_eos)``: tokens after the first EOS replaced by PAD,
    the number of valid tokens per row (the EOS itself counts), and whether a row has an EOS.
    """
    is_eos = responses == eos_token_id
    first_eos = first_true_indices(is_eos)
    contains_eos = is_eos.any(-1)
    full = torch.full_like(first_eos, responses.size(1))
    lengths = torch.where(contains_eos, first_eos + 1, full)
    positions = torch.arange(responses.size(1), device=responses.device).expand_as(responses)
    truncated = responses.masked_fill(positions >= lengths.unsqueeze(1), pad_token_id)
    return truncated, lengths, contains_eos


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    positions = torch.arange(max_length, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def pad_sequences(
    sequences: list[list[int]], pad_value: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists into (ids, attention_mask) tensors, on the left or the right."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def distinct_rows(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the first row of each distinct row of ``keys`` (B, T), the distinct row of each row):
    a batch's K samples of one prompt run its prompt once, then copy the result to each."""
    distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((distinct.size(0),), keys.size(0), device=keys.device)
    rows = torch.arange(keys.size(0), device=keys.device)
    return first.scatter_reduce(0, inverse, rows, "amin"), inverse


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on each row's first real token (left padding safe)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)


#: Tokens a nucleus draw looks at first: a row whose nucleus reaches past them is sorted whole
NUCLEUS_CANDIDATES = 256


def nucleus_keep(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering on probabilities sorted best-first (B, W): true for the smallest
    prefix whose mass reaches ``top_p`` (a token is dropped when the mass strictly before it
    already does). The most likely token is always kept."""
    keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
    keep[..., 0] = True
    return keep


def sample_nucleus(
    logits: torch.Tensor,
    top_p: float,
    generators: list[torch.Generator] | None = None,
    candidates: int = NUCLEUS_CANDIDATES,
) -> torch.Tensor:
    """One token per row of ``logits`` (B, V), drawn from the nucleus (``nucleus_keep``) of
    softmax(logits); with ``generators``, row i draws with generators[i] (on the CPU).

    Sorting the whole vocabulary at every step took more time than SmolLM2's forward pass on
    a 2-core CPU (49,152 tokens × 32 rows); the nucleus is the same when looked for among the
    ``candidates`` most likely tokens wherever their mass reaches ``top_p``, and only the
    rows where it does not are sorted whole."""
    probs = logits.float().softmax(-1)
    if top_p >= 1.0:
        return _draw(probs, generators)
    top, index = probs.topk(min(candidates, probs.size(-1)), dim=-1)
    whole = top.sum(-1) < top_p
    chosen = torch.empty(probs.size(0), dtype=torch.long, device=probs.device)
    for rows, sort_whole in ((~whole, False), (whole, True)):
        if not bool(rows.any()):
            continue
        ranked, ranked_index = (
            probs[rows].sort(-1, descending=True) if sort_whole else (top[rows], index[rows])
        )
        row_generators = (
            None
            if generators is None
            else [g for g, row in zip(generators, rows.tolist(), strict=True) if row]
        )
        positions = _draw(ranked * nucleus_keep(ranked, top_p), row_generators)
        chosen[rows] = ranked_index.gather(-1, positions.unsqueeze(-1)).squeeze(-1)
    return chosen


def _draw(weights: torch.Tensor, generators: list[torch.Generator] | None) -> torch.Tensor:
    """One index per row, in proportion to ``weights`` (B, W)."""
    if generators is None:
        return torch.multinomial(weights, 1).squeeze(-1)
    return torch.stack(
        [
            torch.multinomial(row.cpu(), 1, generator=generator).squeeze(0)
            for row, generator in zip(weights, generators, strict=True)
        ]
    ).to(weights.device)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) for each position: logits (B, T, V), tokens (B, T) -> (B, T)."""
    return torch.gather(logits.log_softmax(-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    log_probs = logits.log_softmax(-1)
    return -(log_probs.exp() * log_probs).sum(-1)
