"""The frozen prefix of a policy with adapters on its last layers, computed once per PPO step.

With LoRA on the last L of a decoder's N layers (the demo: 8 of SmolLM2's 30), the first N − L
layers carry no adapter and no trainable weight. They compute the same function for the
policy, for its reference (the adapters switched off) and in every update epoch of a step,
since an update changes only the adapted layers. PPO ran them four times per step on the
same sequences (the old log-probs, the reference, two epochs); `prefix_states` runs them once
and `suffix_logits` runs the adapted layers on top, so each later pass costs L/N of a forward.
The result is the same computation as a whole forward pass, in the same order
(tests/trainer/test_prefix.py).

This reaches into the decoder's `layers` and `norm` (Llama-style models: SmolLM2, the tiny
test Llama); `frozen_layers` answers 0 for any model it cannot split, and PPO then runs whole
forward passes as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from trainer.models import unwrap_peft
from trainer.ops import distinct_rows, position_ids_from_mask
from trainer.sampling import cache_argument


def _decoder(model: nn.Module) -> nn.Module | None:
    """The module holding the embeddings, the decoder layers and the final norm, or None."""
    inner = unwrap_peft(model)
    decoder = getattr(inner, "model", None)
    layers = getattr(decoder, "layers", None)
    parts = (getattr(decoder, "norm", None), getattr(decoder, "embed_tokens", None))
    if isinstance(layers, nn.ModuleList) and all(isinstance(m, nn.Module) for m in parts):
        return decoder
    return None


def frozen_layers(model: nn.Module) -> int:
    """How many leading decoder layers have no trainable weight (and so no adapter): 0 when
    the embeddings or the first layer train, when the model cannot be split, or when nothing
    trains at all."""
    decoder = _decoder(model)
    if decoder is None or any(p.requires_grad for p in decoder.embed_tokens.parameters()):
        return 0
    for index, layer in enumerate(decoder.layers):
        if any(p.requires_grad for p in layer.parameters()):
            return index
    return 0


def shared_layers(model: nn.Module, other: nn.Module, cut: int) -> int:
    """`cut` when `other` (a separate reference) has the same embeddings and the same first
    `cut` decoder layers as `model`, compared in `other`'s dtype, so that `model`'s prefix
    states serve it too; else 0. Round 2's policy is round 1's, whose LoRA changed only the
    last layers: its first layers are still the base model's, its reference."""
    mine, theirs = _decoder(model), _decoder(other)
    if cut <= 0 or mine is None or theirs is None or len(theirs.layers) < cut:
        return 0
    pairs = [(mine.embed_tokens, theirs.embed_tokens)]
    pairs += list(zip(list(mine.layers)[:cut], list(theirs.layers)[:cut], strict=True))
    for a, b in pairs:
        ours, others = dict(a.named_parameters()), dict(b.named_parameters())
        if ours.keys() != others.keys():
            return 0
        for name, weight in others.items():
            if not torch.equal(ours[name].detach().to(weight.dtype), weight):
                return 0
    return cut


@contextmanager
def _running(decoder: nn.Module, part: slice, final_norm: bool = True) -> Iterator[None]:
    """Inside: the decoder runs only `part` of its layers (the same modules), numbered from 0
    for a KV cache made inside (an attention module files its keys under its `layer_idx`,
    and the decoder reads the cache's length from entry 0), and without its final norm unless
    `final_norm`."""
    layers, norm = decoder.layers, decoder.norm
    running = list(layers)[part]
    numbers = [getattr(getattr(layer, "self_attn", None), "layer_idx", None) for layer in running]
    decoder.layers = nn.ModuleList(running)
    for index, layer in enumerate(running):
        if numbers[index] is not None:
            layer.self_attn.layer_idx = index
    if not final_norm:
        decoder.norm = nn.Identity()
    try:
        yield
    finally:
        decoder.layers, decoder.norm = layers, norm
        for layer, number in zip(running, numbers, strict=True):
            if number is not None:
                layer.self_attn.layer_idx = number


def prefix_states(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, cut: int
) -> torch.Tensor:
    """The hidden states (B, T, H) that the first `cut` layers hand to layer `cut`."""
    decoder = _decoder(model)
    with torch.no_grad(), _running(decoder, slice(0, cut), final_norm=False):
        return decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state


def suffix_logits(
    model: nn.Module,
    states: torch.Tensor,
    attention_mask: torch.Tensor,
    cut: int,
    logits_to_keep: int = 0,
) -> torch.Tensor:
    """The causal LM's logits from `prefix_states`: layers `cut`… the norm and the LM head,
    at the last `logits_to_keep` positions (> 0) or all, the states in the model's own dtype
    (a bf16 reference reads a policy's fp32 states). Gradients reach the adapters."""
    decoder = _decoder(model)
    with _running(decoder, slice(cut, None)):
        return causal_logits(
            model,
            attention_mask,
            logits_to_keep,
            inputs_embeds=states.to(decoder.embed_tokens.weight.dtype),
        )


@dataclass
class SplitStates:
    """`prefix_states` of sequences whose first `width` positions are prompts that several
    rows share (PPO's K samples of a prompt: left padded, so the same columns): each distinct
    prompt's states once, and each row's response states."""

    prompt_states: torch.Tensor  # (D, width, H), one row per distinct prompt
    prompt_mask: torch.Tensor  # (D, width)
    prompt_of: torch.Tensor  # (B,) each row's distinct prompt
    response_states: torch.Tensor  # (B, N, H)
    attention_mask: torch.Tensor  # (B, width + N), the whole rows'


def split_states(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, cut: int, width: int
) -> SplitStates:
    """`prefix_states` with each distinct prompt (the first `width` columns) run once: its
    KV cache is copied to the rows that share it, and only the responses run on top."""
    decoder = _decoder(model)
    prompts, prompt_mask = input_ids[:, :width], attention_mask[:, :width]
    first, prompt_of = distinct_rows(torch.cat([prompts, prompt_mask.to(prompts.dtype)], 1))
    cache_arg = cache_argument(decoder)
    with torch.no_grad(), _running(decoder, slice(0, cut), final_norm=False):
        before = decoder(
            input_ids=prompts[first],
            attention_mask=prompt_mask[first],
            position_ids=position_ids_from_mask(prompt_mask[first]),
            use_cache=True,
        )
        cache = before[cache_arg]
        cache.batch_select_indices(prompt_of)
        after = decoder(
            input_ids=input_ids[:, width:],
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask)[:, width:],
            use_cache=True,
            **{cache_arg: cache},
        )
    return SplitStates(
        before.last_hidden_state,
        prompt_mask[first],
        prompt_of,
        after.last_hidden_state,
        attention_mask,
    )


def split_suffix_logits(
    model: nn.Module, split: SplitStates, cut: int, rows: torch.Tensor | slice = slice(None)
) -> torch.Tensor:
    """`suffix_logits` of `split`'s rows (all, or `rows`) at the last prompt position and every
    response position, (B, N + 1, V): layers `cut`… on each distinct prompt of those rows once
    (with gradients to the adapters, through the copied KV cache too), then on the responses."""
    decoder = _decoder(model)
    prompts, prompt_of = torch.unique(split.prompt_of[rows], return_inverse=True)
    dtype = decoder.embed_tokens.weight.dtype
    mask = split.attention_mask[rows]
    width = split.prompt_mask.size(1)
    cache_arg = cache_argument(model)
    with _running(decoder, slice(cut, None)):
        before = model(
            inputs_embeds=split.prompt_states[prompts].to(dtype),
            attention_mask=split.prompt_mask[prompts],
            position_ids=position_ids_from_mask(split.prompt_mask[prompts]),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = before[cache_arg]
        cache.batch_select_indices(prompt_of)
        after = model(
            inputs_embeds=split.response_states[rows].to(dtype),
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask)[:, width:],
            use_cache=True,
            **{cache_arg: cache},
        )
    return torch.cat([before.logits[prompt_of], after.logits], 1)


def causal_logits(
    model: nn.Module, attention_mask: torch.Tensor, logits_to_keep: int = 0, **inputs
) -> torch.Tensor:
    """A causal LM's logits from `input_ids` or `inputs_embeds`, positions from the mask (left
    padding), no cache; with `logits_to_keep` > 0 at the last that many positions only."""
    extra = {"logits_to_keep": logits_to_keep} if logits_to_keep > 0 else {}
    return model(
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
        **inputs,
        **extra,
    ).logits
