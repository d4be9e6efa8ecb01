"""Sampling K completions per prompt: batched, left padded, with the KV cache.

Each completion has its own seed (derived from the run seed, the prompt id and the index), and
its own random generator, so a completion does not depend on which other rows shared its batch.
``generate`` is also the rollout engine of PPO: it returns the log-probabilities of the sampled
tokens at the sampling temperature.

    python -m trainer sample --model DIR --prompts prompts.jsonl --k 4 --out OUTDIR
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from trainer import models
from trainer.contract import SampleConfig
from trainer.data import DataError, Prompt, read_prompts, write_jsonl
from trainer.ops import distinct_rows, pad_sequences, position_ids_from_mask, sample_nucleus
from trainer.runlog import (
    METRICS_JSON,
    MetricsLog,
    derive_seed,
    progress,
    rebalance_threads,
    use_threads,
)


@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generators: list[torch.Generator] | None = None,
    min_new_tokens: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample continuations of left-padded prompts with the KV cache.

    Returns ``(tokens, logprobs)``, both (B, N) with N <= max_new_tokens: the sampled tokens
    (PAD after a row's EOS) and log pi(token) under ``logits / temperature`` (before nucleus
    filtering, as PPO needs). Generation stops early once every row has emitted EOS. EOS is
    masked out of the first ``min_new_tokens`` steps (``mask_early_eos``), and the
    log-probabilities are those of the masked distribution, the policy actually sampled.
    """
    batch = input_ids.size(0)
    device = input_ids.device
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    positions = position_ids_from_mask(attention_mask)
    cache_arg = cache_argument(model)
    past, logits = _prefill(model, input_ids, attention_mask, positions, cache_arg)
    next_position = positions[:, -1:] + 1
    tokens, logprobs = [], []
    for step in range(max_new_tokens):
        scaled = logits / temperature if temperature > 0 else logits
        if step < min_new_tokens:
            scaled = scaled.clone()
            scaled[:, eos_token_id] = torch.finfo(scaled.dtype).min
        log_probs = scaled.log_softmax(-1)
        if temperature <= 0:
            chosen = scaled.argmax(-1)
        else:
            chosen = sample_nucleus(scaled, top_p, generators)
        chosen = torch.where(finished, torch.full_like(chosen, pad_token_id), chosen)
        tokens.append(chosen)
        logprobs.append(log_probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1))
        finished |= chosen == eos_token_id
        if bool(finished.all()):
            break
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], 1)
        out = model(
            input_ids=chosen.unsqueeze(-1),
            attention_mask=attention_mask,
            position_ids=next_position,
            use_cache=True,
            **{cache_arg: past},
        )
        past = out[cache_arg]
        logits = out.logits[:, -1, :].float()
        next_position = next_position + 1
    return torch.stack(tokens, 1), torch.stack(logprobs, 1)


def _prefill(model, input_ids, attention_mask, positions, cache_arg: str):
    """The KV cache and next-token logits (float) of every row, running the forward pass once
    per distinct prompt: a sampler asks for K answers to each prompt (PPO's RLOO too), and on
    a 2-core CPU the prompts' forward pass was half of sampling 32 tokens."""
    rows, inverse = distinct_rows(torch.cat([input_ids, attention_mask.to(input_ids.dtype)], 1))
    shared = rows.size(0) < input_ids.size(0)
    if not shared:  # every row its own prompt: run them in their order, nothing to copy
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
    out = model(
        input_ids=input_ids[rows],
        attention_mask=attention_mask[rows],
        position_ids=positions[rows],
        use_cache=True,
    )
    past, logits = out[cache_arg], out.logits[:, -1, :].float()
    if shared:
        past.batch_select_indices(inverse)
        logits = logits[inverse]
    return past, logits


def mask_early_eos(
    step_logits: torch.Tensor, eos_token_id: int, min_new_tokens: int
) -> torch.Tensor:
    """Response logits (B, N, V) with EOS impossible at the first ``min_new_tokens``
    positions: the distribution `generate` samples from with the same setting, so PPO's
    ratios and KL compare like with like. A finite minimum, not -inf, keeps entropies finite."""
    if min_new_tokens <= 0:
        return step_logits
    masked = step_logits.clone()
    masked[:, :min_new_tokens, eos_token_id] = torch.finfo(masked.dtype).min
    return masked


def cache_argument(model) -> str:
    """transformers >= 5.2x names the KV cache ``cache``; earlier releases ``past_key_values``."""
    import inspect

    from trainer.models import unwrap_peft

    parameters = inspect.signature(unwrap_peft(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def make_generators(seeds: list[int]) -> list[torch.Generator]:
    generators = []
    for seed in seeds:
        generator = torch.Generator()
        generator.manual_seed(seed)
        generators.append(generator)
    return generators


def decode_completion(tokenizer, tokens: list[int]) -> tuple[str, str]:
    """(text, finish_reason): text up to the first EOS, "eos" or "length"."""
    eos = tokenizer.eos_token_id
    if eos in tokens:
        return tokenizer.decode(tokens[: tokens.index(eos)], skip_special_tokens=True), "eos"
    pad = tokenizer.pad_token_id
    return tokenizer.decode([t for t in tokens if t != pad], skip_special_tokens=True), "length"


def sample_completions(
    model,
    tokenizer,
    prompts: list[Prompt],
    *,
    k: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    max_prompt_tokens: int = 512,
    model_name: str = "",
    on_batch=None,
    min_new_tokens: int = 0,
) -> tuple[list[dict], dict]:
    """Python API: K completions per prompt as samples.jsonl rows, plus throughput stats."""
    device = next(model.parameters()).device
    jobs = [(p, i) for p in prompts for i in range(k)]
    encoded = {p.id: models.encode_prompt(tokenizer, p.prompt, max_prompt_tokens) for p in prompts}
    # Rows of similar prompt length share a batch: less padding, same results (per-row seeds).
    order = sorted(range(len(jobs)), key=lambda j: len(encoded[jobs[j][0].id]))
    rows: list[dict | None] = [None] * len(jobs)
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    if min_new_tokens:
        sampling["min_new_tokens"] = min_new_tokens
    new_tokens = 0
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        rebalance_threads()
        chunk = order[start : start + batch_size]
        seeds = [derive_seed(seed, jobs[j][0].id, jobs[j][1]) for j in chunk]
        ids, mask = pad_sequences(
            [encoded[jobs[j][0].id] for j in chunk], tokenizer.pad_token_id, side="left"
        )
        tokens, _ = generate(
            model,
            ids.to(device),
            mask.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            temperature=temperature,
            top_p=top_p,
            generators=make_generators(seeds),
            min_new_tokens=min_new_tokens,
        )
        for row, j in enumerate(chunk):
            prompt, index = jobs[j]
            token_list = tokens[row].tolist()
            text, reason = decode_completion(tokenizer, token_list)
            produced = (
                len(token_list)
                if reason == "length"
                else token_list.index(tokenizer.eos_token_id) + 1
            )
            new_tokens += produced
            rows[j] = {
                "prompt_id": prompt.id,
                "prompt": prompt.prompt,
                "index": index,
                "completion": text,
                "seed": seeds[row],
                "sampling": sampling,
                "model": model_name,
                "finish_reason": reason,
                "category": prompt.category,
                "num_tokens": produced,
            }
        if on_batch is not None:
            on_batch(len(chunk), new_tokens, time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    done = [r for r in rows if r is not None]
    stats = {
        "completions": len(done),
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "seconds": round(elapsed, 3),
        "tokens_per_second": round(new_tokens / max(elapsed, 1e-9), 2),
        "eos_fraction": sum(r["finish_reason"] == "eos" for r in done) / max(len(done), 1),
    }
    return done, stats


def sample(config: SampleConfig) -> dict:
    """The ``sample`` command: writes OUTDIR/samples.jsonl and metrics.json."""
    import json

    if config.k < 1 or config.max_new_tokens < 1:
        raise DataError("--k and --max-new-tokens must be at least 1")
    check_min_new_tokens(config.min_new_tokens, config.max_new_tokens)
    if not 0 < config.top_p <= 1:
        raise DataError(f"--top-p must be in (0, 1], got {config.top_p}")
    out = Path(config.out)
    settings = asdict(config)
    inputs = inputs_fingerprint(config.model, config.prompts)
    previous = out / METRICS_JSON
    if config.reuse and previous.is_file() and (out / "samples.jsonl").is_file():
        cached = json.loads(previous.read_text())
        if cached.get("config") == settings and cached.get("inputs") == inputs:
            return {**cached, "reused": True}
    prompts = read_prompts(config.prompts, split=config.split)
    use_threads(config.threads, config.adapt_threads)
    device = models.pick_device(config.device)
    config = replace(config, precision=models.resolve_precision(config.precision, device))
    torch.manual_seed(config.seed)
    model, tokenizer = models.load_policy(
        config.model, device, dtype=models.dtype_of(config.precision)
    )
    log = MetricsLog(out)
    total = len(prompts) * config.k
    bar = progress(total, "sample")
    done = {"batches": 0, "completions": 0}

    def on_batch(rows: int, new_tokens: int, seconds: float) -> None:
        done["batches"] += 1
        done["completions"] += rows
        bar.update(rows)
        log.log(
            done["batches"],
            completions_done=done["completions"],
            completions_total=total,
            new_tokens=new_tokens,
            tokens_per_second=new_tokens / max(seconds, 1e-9),
        )

    rows, stats = sample_completions(
        model,
        tokenizer,
        prompts,
        k=config.k,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
        batch_size=config.batch_size,
        max_prompt_tokens=config.max_prompt_tokens,
        model_name=config.model,
        on_batch=on_batch,
        min_new_tokens=config.min_new_tokens,
    )
    bar.close()
    if config.reward_model:
        del model
        _add_rewards(rows, config, device)
        stats["rewards_from"] = config.reward_model
    write_jsonl(out / "samples.jsonl", rows)
    return log.finish(
        **stats, device=str(device), precision=config.precision, config=settings, inputs=inputs
    )


def _add_rewards(rows: list[dict], config: SampleConfig, device) -> None:
    """Score every sample with the reward model, in place ("reward")."""
    from trainer.evaluate import reward_judge

    judge = reward_judge(config.reward_model, device, config.batch_size, config.reward_max_length)
    rewards = judge([row["prompt"] for row in rows], [row["completion"] for row in rows])
    for row, reward in zip(rows, rewards, strict=True):
        row["reward"] = float(reward)


def check_min_new_tokens(min_new_tokens: int, max_new_tokens: int) -> None:
    if not 0 <= min_new_tokens <= max_new_tokens:
        raise DataError(
            f"--min-new-tokens must be between 0 and --max-new-tokens ({max_new_tokens}), "
            f"got {min_new_tokens}"
        )


def inputs_fingerprint(model: str, prompts: str) -> str:
    """Changes when the prompts file's bytes or the model directory's files change, so a
    cached sample run is reused only for the very same inputs."""
    import hashlib

    digest = hashlib.sha256()
    prompts_path = Path(prompts)
    if prompts_path.is_file():
        digest.update(prompts_path.read_bytes())
    model_path = Path(model)
    if model_path.is_dir():
        for item in sorted(model_path.iterdir()):
            if item.is_file() and not item.name.startswith("metrics"):
                stat = item.stat()
                digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        digest.update(model.encode())
    return digest.hexdigest()
