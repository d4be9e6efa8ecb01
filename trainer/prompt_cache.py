"""Hidden states of rows that share prompts, with each distinct prompt run once.

A reward model scores K answers to each prompt, and with SmolLM2's chat template (its system
line included) the prompt is about half of every row's tokens. ``shared_prompt_states`` runs
the distinct prompts of a batch once, left padded, copies their KV cache to the rows that
share them, and runs only the answers on top. Left padding on the prompt and right padding on
the answer keep each row's real tokens contiguous, so the states come back in one (B, T, H)
layout per depth, each row shifted right by its prompt's padding, with the row's attention
mask and its pooling span moved by the same offset: a caller pools them as it pools a whole
pass's states. The sampler shares its prompts' prefill the same way
(``trainer.sampling._prefill``).
"""

from __future__ import annotations

import torch

from trainer import models
from trainer.ops import pad_sequences, position_ids_from_mask
from trainer.sampling import cache_argument


def split_point(row: list[int], span: tuple[int, int]) -> int | None:
    """Where ``row`` splits into the prompt part run once and the answer part: at the pooling
    span's start (the answer's first token), kept at least one token from either end; None
    for a row too short to split."""
    if len(row) < 2:
        return None
    return min(max(span[0], 1), len(row) - 1)


def shared_prompt_states(
    trunk, rows: list[list[int]], spans: list[tuple[int, int]], pad_token_id: int, device
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor] | None:
    """(hidden states per depth, each (B, T, H); attention mask (B, T); span mask (B, T)) of
    ``rows`` through ``trunk`` (a bare decoder: hidden_states[-1] after its final norm), or
    None when a row is too short to split (the caller runs the batch whole)."""
    cuts = [split_point(row, span) for row, span in zip(rows, spans, strict=True)]
    if any(cut is None for cut in cuts):
        return None
    prompts = [tuple(row[:cut]) for row, cut in zip(rows, cuts, strict=True)]
    distinct = list(dict.fromkeys(prompts))
    where = {prompt: i for i, prompt in enumerate(distinct)}
    inverse = torch.tensor([where[prompt] for prompt in prompts], device=device)
    prompt_ids, prompt_mask = pad_sequences([list(p) for p in distinct], pad_token_id, "left")
    answer_ids, answer_mask = pad_sequences(
        [row[cut:] for row, cut in zip(rows, cuts, strict=True)], pad_token_id, "right"
    )
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    cache_arg = cache_argument(trunk)
    first = trunk(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=position_ids_from_mask(prompt_mask),
        use_cache=True,
        output_hidden_states=True,
    )
    cache = first[cache_arg]
    cache.batch_select_indices(inverse)
    mask = torch.cat([prompt_mask[inverse], answer_mask.to(device)], 1)
    width = prompt_ids.size(1)
    second = trunk(
        input_ids=answer_ids.to(device),
        attention_mask=mask,
        position_ids=position_ids_from_mask(mask)[:, width:],
        use_cache=True,
        output_hidden_states=True,
        **{cache_arg: cache},
    )
    hidden = tuple(
        torch.cat([before[inverse], after], 1)
        for before, after in zip(first.hidden_states, second.hidden_states, strict=True)
    )
    # a row's token t sits at t + (width - its prompt's length) in this layout
    offsets = [width - cut for cut in cuts]
    span_mask = models.span_mask(
        mask.size(1),
        [a + off for (a, _), off in zip(spans, offsets, strict=True)],
        [b + off for (_, b), off in zip(spans, offsets, strict=True)],
    )
    return hidden, mask, span_mask.to(device)
