"""Reward model training (InstructGPT section 3.5, eq. 1).

The K completions of a ranking go through the trunk together and the ranking contributes one
loss term: the mean of -log sigmoid(r_w - r_l) over its strict pairs (ties skipped). After
training, a bias is fitted so that reference completions score 0 on average.

    python -m trainer rm --model SFT_DIR --train rankings.jsonl --out RM_DIR
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from trainer import models
from trainer.contract import RewardConfig
from trainer.data import DataError, Ranking, read_demonstrations, read_rankings
from trainer.losses import pairwise_correct, ranking_loss
from trainer.ops import pad_sequences
from trainer.runlog import MetricsLog, progress, seed_everything, use_threads


@dataclass
class EncodedRanking:
    rows: list[list[int]]
    ranks: list[int]
    weight: float
    k: int


def encode_ranking(tokenizer, ranking: Ranking, max_length: int) -> EncodedRanking:
    prompt_ids = models.encode_prompt(tokenizer, ranking.prompt)
    rows = []
    for completion in ranking.completions:
        completion_ids = models.encode_completion(tokenizer, completion, max_length)
        room = max(max_length - len(completion_ids), 0)
        rows.append((prompt_ids[-room:] if room else []) + completion_ids)
    return EncodedRanking(rows, ranking.ranks, ranking.weight, ranking.k)


def collate(batch: list[EncodedRanking], pad_token_id: int):
    """Flatten the completions of every ranking into one trunk batch."""
    flat = [row for item in batch for row in item.rows]
    input_ids, attention_mask = pad_sequences(flat, pad_token_id, side="right")
    width = max(item.k for item in batch)
    ranks = torch.full((len(batch), width), -1, dtype=torch.long)
    for b, item in enumerate(batch):
        ranks[b, : item.k] = torch.tensor(item.ranks)
    ks = torch.tensor([item.k for item in batch])
    weights = torch.tensor([item.weight for item in batch], dtype=torch.float32)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "ranks": ranks,
        "ks": ks,
        "weights": weights,
    }


def unflatten(flat_rewards: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """(sum K,) rewards -> (B, max K), zero-filled where a ranking has fewer completions."""
    width = int(ks.max())
    out = flat_rewards.new_zeros((ks.numel(), width))
    offset = 0
    for b, k in enumerate(ks.tolist()):
        out[b, :k] = flat_rewards[offset : offset + k]
        offset += k
    return out


def batch_rewards(model, batch: dict, device) -> torch.Tensor:
    """(B, max K) rewards; ``model`` is a reward model or a (DDP-wrapped) RewardReadout."""
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    if isinstance(model, torch.nn.Module) and hasattr(model, "config"):
        rewards = models.reward_scores(model, ids, mask)
    else:
        rewards = model(ids, mask)
    return unflatten(rewards, batch["ks"].to(device))


def split_by_prompt(rankings: list[Ranking], fraction: float, seed: int):
    prompts = sorted({r.prompt for r in rankings})
    random.Random(seed).shuffle(prompts)
    n_valid = max(1, int(round(len(prompts) * fraction))) if fraction > 0 else 0
    if n_valid >= len(prompts):
        raise DataError("too few distinct prompts to hold some out; pass --valid")
    held = set(prompts[:n_valid])
    return [r for r in rankings if r.prompt not in held], [r for r in rankings if r.prompt in held]


@torch.no_grad()
def evaluate_rankings(
    model, tokenizer, rankings: list[Ranking], max_length: int, batch_size: int = 16, device=None
) -> dict:
    """Held-out pairwise accuracy (overall and per K) and mean ranking loss."""
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct_by_k: dict[int, int] = defaultdict(int)
    pairs_by_k: dict[int, int] = defaultdict(int)
    losses, weights = [], []
    encoded = [encode_ranking(tokenizer, r, max_length) for r in rankings]
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], tokenizer.pad_token_id)
        rewards = batch_rewards(model, batch, device).float().cpu()
        correct, pairs = pairwise_correct(rewards, batch["ranks"])
        for k, c, p in zip(batch["ks"].tolist(), correct.tolist(), pairs.tolist(), strict=True):
            correct_by_k[k] += c
            pairs_by_k[k] += p
        n = float((pairs > 0).sum())
        if n:
            losses.append(float(ranking_loss(rewards, batch["ranks"])) * n)
            weights.append(n)
    model.train(was_training)
    total_pairs = sum(pairs_by_k.values())
    return {
        "accuracy": sum(correct_by_k.values()) / total_pairs if total_pairs else float("nan"),
        "accuracy_by_k": {
            str(k): correct_by_k[k] / pairs_by_k[k] for k in sorted(pairs_by_k) if pairs_by_k[k]
        },
        "pairs": total_pairs,
        "loss": sum(losses) / sum(weights) if weights else float("nan"),
    }


@torch.no_grad()
def fit_reward_bias(
    model, tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int = 16
) -> float:
    """Set config.reward_bias so the given (prompt, completion) pairs score 0 on average."""
    device = next(model.parameters()).device
    model.config.reward_bias = 0.0
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows = [
            encode_ranking(tokenizer, Ranking(p, [c, c], [[0, 1]]), max_length).rows[0]
            for p, c in chunk
        ]
        ids, mask = pad_sequences(rows, tokenizer.pad_token_id, side="right")
        scores.append(models.reward_scores(model, ids.to(device), mask.to(device)).float().cpu())
    mean = float(torch.cat(scores).mean()) if scores else 0.0
    model.config.reward_bias = -mean
    return -mean


def _cosine(step: int, total: int) -> float:
    progress_ = min(step / max(total, 1), 1.0)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))


def train_reward_model(
    config: RewardConfig, train: list[Ranking] | None = None, valid: list[Ranking] | None = None
) -> dict:
    """Python API and the ``rm`` command. Returns the final metrics."""
    from accelerate import Accelerator

    use_threads(config.threads)
    seed_everything(config.seed)
    if train is None:
        train = read_rankings(config.train)
    if valid is None:
        if config.valid:
            valid = read_rankings(config.valid)
        else:
            train, valid = split_by_prompt(train, config.valid_fraction, config.seed)
    accelerator = Accelerator(cpu=config.device == "cpu")
    model, tokenizer = models.load_scalar_model(config.model)
    models.disable_dropout(model)
    if config.lora_r > 0:
        model = models.apply_lora(model, config.lora_r, config.lora_alpha, 0.0, "SEQ_CLS")
    encoded = [encode_ranking(tokenizer, r, config.max_length) for r in train]
    encoded = [e for e in encoded if len(set(e.ranks)) > 1]  # all-tied rankings teach nothing
    if not encoded:
        raise DataError(f"{config.train}: no ranking has a strict preference to learn from")
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        encoded,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda b: collate(b, tokenizer.pad_token_id),
    )
    optimizer = models.adamw(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    readout, optimizer, loader = accelerator.prepare(models.RewardReadout(model), optimizer, loader)
    total_steps = config.epochs * len(loader)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine(s, total_steps))
    log = MetricsLog(config.out) if accelerator.is_main_process else None
    bar = progress(total_steps, "rm")
    step = 0
    readout.train()
    for epoch in range(config.epochs):
        for batch in loader:
            if step >= total_steps:
                break
            rewards = batch_rewards(readout, batch, accelerator.device)
            loss = ranking_loss(rewards.float(), batch["ranks"], batch["weights"])
            accelerator.backward(loss)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(readout.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            with torch.no_grad():
                correct, pairs = pairwise_correct(rewards.detach().float(), batch["ranks"])
                accuracy = float(correct.sum()) / max(float(pairs.sum()), 1.0)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if log:
                log.log(
                    step,
                    total_steps=total_steps,
                    epoch=epoch,
                    loss=loss.item(),
                    train_pair_accuracy=accuracy,
                    lr=scheduler.get_last_lr()[0],
                    rankings=len(batch["ks"]),
                )
    bar.close()
    accelerator.wait_for_everyone()
    trained = models.merge_lora(accelerator.unwrap_model(readout).model)
    trained.eval()
    if config.reference:
        reference = [(d.prompt, d.completion) for d in read_demonstrations(config.reference)]
    else:
        reference = [(r.prompt, c) for r in train for c in r.completions]
    reference = reference[: config.reference_limit]
    bias = fit_reward_bias(trained, tokenizer, reference, config.max_length, config.eval_batch_size)
    held_out = (
        evaluate_rankings(trained, tokenizer, valid, config.max_length, config.eval_batch_size)
        if valid
        else {}
    )
    if not accelerator.is_main_process:
        return {}
    models.save_model(trained, tokenizer, Path(config.out), config)
    return log.finish(
        steps=step,
        train_rankings=len(encoded),
        valid_rankings=len(valid or []),
        reward_bias=bias,
        valid_accuracy=held_out.get("accuracy"),
        valid_accuracy_by_k=held_out.get("accuracy_by_k"),
        valid_loss=held_out.get("loss"),
        valid_pairs=held_out.get("pairs"),
        config=asdict(config),
    )
